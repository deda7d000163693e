// CityTwin: crowd density (persons per m²) → heat colour with Fruin level-of-service bands.
// Inserted into VTK's fragment shader (see shaders/README.md and twin/view/shaders.py).
// The per-vertex density arrives as `fieldValueVSOut` (vertex attribute "fieldValue").
uniform float vmax;        // density at the top of the ramp (persons/m²), e.g. 3.0
uniform float cutoff;      // densities at or below this are not drawn (transparent), e.g. 0.02
uniform float max_opacity; // opacity of the densest cells (0..1)
uniform float los_a;       // upper bound of LOS A (persons/m²), Fruin walkway: 0.31
uniform float los_b;       // upper bound of LOS B: 0.43
uniform float los_c;       // upper bound of LOS C: 0.72
uniform float los_d;       // upper bound of LOS D: 1.08
uniform float los_e;       // upper bound of LOS E: 2.17 (above: F)
uniform float time;        // seconds; makes LOS F cells pulse gently

vec3 citytwin_heat(float t) {
  // green → yellow → orange → red → dark red
  vec3 c0 = vec3(0.10, 0.60, 0.31);
  vec3 c1 = vec3(1.00, 0.88, 0.30);
  vec3 c2 = vec3(0.99, 0.55, 0.23);
  vec3 c3 = vec3(0.84, 0.19, 0.15);
  vec3 c4 = vec3(0.45, 0.00, 0.10);
  t = clamp(t, 0.0, 1.0);
  if (t < 0.25) return mix(c0, c1, t / 0.25);
  if (t < 0.5) return mix(c1, c2, (t - 0.25) / 0.25);
  if (t < 0.75) return mix(c2, c3, (t - 0.5) / 0.25);
  return mix(c3, c4, (t - 0.75) / 0.25);
}

vec4 citytwin_field_colour(float v) {
  if (!(v > cutoff)) return vec4(0.0);
  // Position on the ramp by LOS band: each band gets an equal share, so A..F read as steps.
  float band;
  if (v <= los_a) band = 0.0 + v / los_a;
  else if (v <= los_b) band = 1.0 + (v - los_a) / (los_b - los_a);
  else if (v <= los_c) band = 2.0 + (v - los_b) / (los_c - los_b);
  else if (v <= los_d) band = 3.0 + (v - los_c) / (los_d - los_c);
  else if (v <= los_e) band = 4.0 + (v - los_d) / (los_e - los_d);
  else band = 5.0 + clamp((v - los_e) / max(vmax - los_e, 1e-3), 0.0, 1.0);
  float stepped = floor(band) + 0.35 * fract(band);  // mostly stepped, a little gradient inside a band
  vec3 c = citytwin_heat(stepped / 6.0);
  float a = max_opacity * smoothstep(cutoff, max(los_a, cutoff * 2.0), v);
  if (v > los_e) {
    c *= 0.85 + 0.15 * sin(time * 4.0);
    a = max_opacity;
  }
  return vec4(c, a);
}
