"""What the window and the headless renderer share, without Qt: the city scene (:mod:`.scene`), the 3D
renderer of a frame on any pyvista plotter (:mod:`.render`, :mod:`.shaders`), alerts, the timeline's
frames, fonts, and the video (:mod:`.video_spec`, :mod:`.video`). Sits on :mod:`twin.core` only, so the
app (``app/``) and ``citytwin render`` (:mod:`twin.runs.render`) draw the same pictures."""
