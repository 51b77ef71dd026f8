#version 330
// See blit.vert: the quad carries the image's coordinates, so this is one fetch.
uniform sampler2D u_src;
in vec2 v_uv;
out vec4 f_color;

void main() {
    f_color = vec4(texture(u_src, v_uv).rgb, 1.0);  // alpha 1: picture; the cleared bars have 0
}
