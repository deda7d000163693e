"""What a study asks for, checked before anything runs: the scenario file (:mod:`.scenario`), its
``[experiment]`` sweeps (:mod:`.sweeps`) and the plan of variants × replications they make (:mod:`.plan`),
the ``[outputs]`` and ``[[alerts]]`` settings, the models' own documentation, and the preflight of
every command. Sits on :mod:`twin.core` and the model registry (:mod:`agents.registry`); never runs a model."""
