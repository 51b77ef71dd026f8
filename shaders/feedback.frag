#version 330
// Video feedback: blend the new frame with the previous output, zoomed and rotated
// about the centre, for trails and tunnels. u_amount 0 = off, near 1 = long trails.
// Alpha is the picture's coverage (0 on a letterbox bar, see post.py) and trails with the
// colour, so a trail drawn out over a bar stays picture while the bar itself stays border.
// The trail lies over the new frame as far as it covers: where there is no history yet (the
// first frame, a bar) the new frame shows whole, not faded towards black.
uniform sampler2D u_src;
uniform sampler2D u_prev;
uniform vec2 u_out_size;
uniform float u_amount;
uniform float u_zoom;    // >1 pushes the trail outwards each frame
uniform float u_rotate;  // radians per frame
in vec2 v_uv;
out vec4 f_color;

void main() {
    float aspect = u_out_size.x / u_out_size.y;
    vec2 p = (v_uv - 0.5) * vec2(aspect, 1.0);
    float c = cos(u_rotate), s = sin(u_rotate);
    p = mat2(c, s, -s, c) * p / max(u_zoom, 1e-3);
    vec2 q = p / vec2(aspect, 1.0) + 0.5;
    vec4 cur = texture(u_src, v_uv);
    vec4 prev = texture(u_prev, q);
    float k = clamp(u_amount, 0.0, 0.999);
    f_color = cur * (1.0 - k * prev.a) + prev * k;
}
