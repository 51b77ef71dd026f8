#version 330
// The (pre-upscaled) generator image onto the output canvas: aspect-correct
// (contain with black bars, or cover by cropping) and zoomable. Rows arrive top row
// first, so the image is flipped here.
uniform sampler2D u_src;
uniform vec2 u_out_size;
uniform float u_fit;    // 0 = contain (letterbox), 1 = cover (crop)
uniform float u_zoom;   // 1 = as fitted
in vec2 v_uv;
out vec4 f_color;

void main() {
    vec2 src_size = vec2(textureSize(u_src, 0));
    float r = (u_out_size.x / u_out_size.y) / (src_size.x / src_size.y);
    vec2 contain = vec2(max(r, 1.0), max(1.0 / r, 1.0));
    vec2 cover = vec2(min(r, 1.0), min(1.0 / r, 1.0));
    vec2 scale = mix(contain, cover, clamp(u_fit, 0.0, 1.0)) / max(u_zoom, 1e-3);
    vec2 uv = (v_uv - 0.5) * scale + 0.5;
    uv.y = 1.0 - uv.y;
    if (any(lessThan(uv, vec2(0.0))) || any(greaterThan(uv, vec2(1.0)))) {
        f_color = vec4(0.0, 0.0, 0.0, 1.0);
    } else {
        f_color = vec4(texture(u_src, uv).rgb, 1.0);
    }
}
