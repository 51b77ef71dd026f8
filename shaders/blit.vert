#version 330
// The (pre-upscaled) generator image as one quad on the output canvas: aspect-correct
// (contain with black bars, or cover by cropping) and zoomable. Only the pixels the image
// covers are shaded (the rasterizer clips what falls off the canvas; post.py clears the
// bars), and the fragment shader is a single texture fetch: the cheapest pass there is on a
// software renderer. Rows arrive top row first, so v is flipped here.
uniform sampler2D u_src;
uniform vec2 u_out_size;
uniform float u_fit;    // 0 = contain (letterbox), 1 = cover (crop)
uniform float u_zoom;   // 1 = as fitted
out vec2 v_uv;

void main() {
    vec2 src_size = vec2(textureSize(u_src, 0));
    float r = (u_out_size.x / u_out_size.y) / (src_size.x / src_size.y);
    vec2 contain = vec2(max(r, 1.0), max(1.0 / r, 1.0));
    vec2 cover = vec2(min(r, 1.0), min(1.0 / r, 1.0));
    vec2 scale = mix(contain, cover, clamp(u_fit, 0.0, 1.0)) / max(u_zoom, 1e-3);
    vec2 corner = vec2(float(gl_VertexID & 1), float((gl_VertexID >> 1) & 1));  // strip of 4
    v_uv = vec2(corner.x, 1.0 - corner.y);
    gl_Position = vec4((corner * 2.0 - 1.0) / scale, 0.0, 1.0);
}
