// CityTwin: a value → heat colour in six steps, between the five band bounds a model declares
// (FieldStyle.bands, e.g. a level-of-service scale). Inserted into VTK's fragment shader (see
// shaders/README.md and twin/view/shaders.py). The per-vertex value arrives as `fieldValueVSOut`
// (vertex attribute "fieldValue").
uniform float vmax;        // value at the top of the ramp, e.g. 3.0
uniform float cutoff;      // values at or below this are not drawn (transparent), e.g. 0.02
uniform float max_opacity; // opacity of the highest cells (0..1)
uniform float band_1;      // upper bound of the first band
uniform float band_2;
uniform float band_3;
uniform float band_4;
uniform float band_5;      // upper bound of the fifth band (above: the sixth)
uniform float time;        // seconds; makes cells above the fifth band pulse gently

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
  // Position on the ramp by band: each band gets an equal share, so the six read as steps.
  float band;
  if (v <= band_1) band = 0.0 + v / band_1;
  else if (v <= band_2) band = 1.0 + (v - band_1) / (band_2 - band_1);
  else if (v <= band_3) band = 2.0 + (v - band_2) / (band_3 - band_2);
  else if (v <= band_4) band = 3.0 + (v - band_3) / (band_4 - band_3);
  else if (v <= band_5) band = 4.0 + (v - band_4) / (band_5 - band_4);
  else band = 5.0 + clamp((v - band_5) / max(vmax - band_5, 1e-3), 0.0, 1.0);
  float stepped = floor(band) + 0.35 * fract(band);  // mostly stepped, a little gradient inside a band
  vec3 c = citytwin_heat(stepped / 6.0);
  float a = max_opacity * smoothstep(cutoff, max(band_1, cutoff * 2.0), v);
  if (v > band_5) {
    c *= 0.85 + 0.15 * sin(time * 4.0);
    a = max_opacity;
  }
  return vec4(c, a);
}
