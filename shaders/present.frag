#version 330
// The final canvas (or the HUD) onto the window; the viewport does the fitting.
uniform sampler2D u_src;
uniform float u_alpha;
uniform float u_flip_y;  // 1 for images uploaded top row first (the HUD)
in vec2 v_uv;
out vec4 f_color;

void main() {
    vec4 c = texture(u_src, vec2(v_uv.x, mix(v_uv.y, 1.0 - v_uv.y, u_flip_y)));
    f_color = vec4(c.rgb, c.a * u_alpha);
}
