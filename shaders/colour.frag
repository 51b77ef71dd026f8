#version 330
// Colour grade: brightness (added), contrast (about mid grey), saturation, hue
// rotation (in turns, in YIQ space) and invert. Of the picture only: alpha is its coverage
// (premultiplied; 0 on letterbox bars, see post.py), so the grade is applied to the colour
// under it and put back over black. A flash lights the picture, never the bars around it.
uniform sampler2D u_src;
uniform float u_brightness;
uniform float u_contrast;
uniform float u_saturation;
uniform float u_hue;
uniform float u_invert;
in vec2 v_uv;
out vec4 f_color;
const mat3 RGB2YIQ = mat3(0.299, 0.596, 0.211, 0.587, -0.274, -0.523, 0.114, -0.322, 0.312);
const mat3 YIQ2RGB = mat3(1.0, 1.0, 1.0, 0.956, -0.272, -1.106, 0.621, -0.647, 1.703);

void main() {
    vec4 src = texture(u_src, v_uv);
    float cover = clamp(src.a, 0.0, 1.0);
    vec3 rgb = cover > 0.0 ? src.rgb / cover : vec3(0.0);
    vec3 yiq = RGB2YIQ * rgb;
    float a = u_hue * 6.28318530718;
    float c = cos(a), s = sin(a);
    yiq.yz = mat2(c, s, -s, c) * yiq.yz * u_saturation;
    rgb = YIQ2RGB * yiq;
    rgb = (rgb - 0.5) * u_contrast + 0.5 + u_brightness;
    rgb = mix(rgb, 1.0 - rgb, clamp(u_invert, 0.0, 1.0));
    f_color = vec4(clamp(rgb, 0.0, 1.0) * cover, cover);
}
