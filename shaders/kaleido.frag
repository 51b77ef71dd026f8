#version 330
// Kaleidoscope: fold the canvas into `u_segments` mirrored wedges around the centre.
uniform sampler2D u_src;
uniform vec2 u_out_size;
uniform float u_segments;
uniform float u_rotate;  // turns
in vec2 v_uv;
out vec4 f_color;
const float TAU = 6.28318530718;

void main() {
    float aspect = u_out_size.x / u_out_size.y;
    vec2 p = (v_uv - 0.5) * vec2(aspect, 1.0);
    float r = length(p);
    float seg = TAU / max(u_segments, 1.0);
    float a = mod(atan(p.y, p.x) - u_rotate * TAU, seg);
    a = min(a, seg - a);  // mirror every other half-wedge so edges meet seamlessly
    vec2 q = r * vec2(cos(a), sin(a)) / vec2(aspect, 1.0) + 0.5;
    f_color = texture(u_src, q);
}
