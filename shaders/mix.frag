#version 330
// Two scenes' finished pictures: a crossfade (u_mode 0) or a wipe (u_mode 1) from left to
// right with a soft edge. u_amount is the incoming picture's share, 0..1.
uniform sampler2D u_a;
uniform sampler2D u_b;
uniform float u_amount;
uniform float u_mode;
uniform float u_softness;
in vec2 v_uv;
out vec4 f_color;

void main() {
    vec3 a = texture(u_a, v_uv).rgb;
    vec3 b = texture(u_b, v_uv).rgb;
    float k = u_amount;
    if (u_mode > 0.5) {
        // the edge travels from just left of the picture to just right of it, so amount 0
        // shows only a and amount 1 only b, whatever the softness
        float edge = u_amount * (1.0 + u_softness);
        k = 1.0 - smoothstep(edge - u_softness, edge, v_uv.x);
    }
    f_color = vec4(mix(a, b, clamp(k, 0.0, 1.0)), 1.0);
}
