#version 330
// Smooth upscaling, first stage: the generator's image resampled with a cubic
// B-spline to a few times its size. The B-spline's 16 taps are taken as 4 bilinear
// fetches. The blit pass then needs one bilinear fetch per output pixel, which keeps
// 4K output cheap even on a software renderer.
uniform sampler2D u_src;
in vec2 v_uv;
out vec4 f_color;

vec4 bspline_weights(float t) {
    vec4 n = vec4(1.0, 2.0, 3.0, 4.0) - t;
    vec4 s = n * n * n;
    float x = s.x;
    float y = s.y - 4.0 * s.x;
    float z = s.z - 4.0 * s.y + 6.0 * s.x;
    return vec4(x, y, z, 6.0 - x - y - z) / 6.0;
}

vec4 texture_bicubic(sampler2D tex, vec2 uv) {
    vec2 size = vec2(textureSize(tex, 0));
    vec2 px = uv * size - 0.5;
    vec2 f = fract(px);
    px -= f;
    vec4 wx = bspline_weights(f.x);
    vec4 wy = bspline_weights(f.y);
    vec4 c = px.xxyy + vec2(-0.5, 1.5).xyxy;
    vec4 s = vec4(wx.xz + wx.yw, wy.xz + wy.yw);
    vec4 o = (c + vec4(wx.yw, wy.yw) / s) / size.xxyy;
    vec4 a = texture(tex, o.xz), b = texture(tex, o.yz);
    vec4 d = texture(tex, o.xw), e = texture(tex, o.yw);
    float sx = s.x / (s.x + s.y);
    float sy = s.z / (s.z + s.w);
    return mix(mix(e, d, sx), mix(b, a, sx), sy);
}

void main() {
    f_color = vec4(texture_bicubic(u_src, v_uv).rgb, 1.0);
}
