"""Running scenarios and what comes of runs: the run driver (:mod:`.runner`), compare (:mod:`.experiment`),
branch, replay, exports and per-field, per-feature and trajectory series, statistics, reports, the
research studies (uncertainty, explore, sensitivity, calibrate) and the video of a run (:mod:`.render`).
Sits on the scenario and view packages (twin/scenario/, twin/view/)."""
