// CityTwin: a value over the terrain (e.g. a depth in m) → blue colour and opacity, with a gently
// animated surface normal. Inserted into VTK's fragment shader (see shaders/README.md and
// twin/view/shaders.py). The per-vertex value arrives as `fieldValueVSOut`; `fieldXY` is the
// model-space x, y (metres).
uniform float time;            // seconds since the layer appeared; drives the ripples
uniform float value_max;       // value at which the colour reaches its deepest tone, e.g. 2.0
uniform float cutoff;          // values at or below this are not drawn, e.g. 0.01
uniform float max_opacity;     // opacity at high values (0..1)
uniform float ripple_strength; // size of the normal perturbation (0 = flat mirror), e.g. 0.12
uniform float ripple_scale;    // ripple wavelength in metres, e.g. 6.0

vec4 citytwin_field_colour(float d) {
  if (!(d > cutoff)) return vec4(0.0);
  float t = clamp(d / value_max, 0.0, 1.0);
  vec3 shallow = vec3(0.55, 0.80, 0.95);
  vec3 deep = vec3(0.03, 0.19, 0.45);
  vec3 c = mix(shallow, deep, sqrt(t));
  float a = mix(0.35, max_opacity, smoothstep(0.0, 0.5, t)) * smoothstep(cutoff, cutoff + 0.05, d);
  return vec4(c, a);
}

vec3 citytwin_perturb_normal(vec3 n, vec2 xy) {
  float k = 6.2831853 / max(ripple_scale, 0.1);
  float s1 = sin(k * xy.x + 1.3 * time) + 0.6 * sin(0.7 * k * (xy.x + xy.y) + 0.9 * time);
  float s2 = cos(k * xy.y + 1.1 * time) + 0.6 * cos(0.8 * k * (xy.x - xy.y) + 0.7 * time);
  return normalize(n + ripple_strength * vec3(s1, s2, 0.0));
}
