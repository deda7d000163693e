"""Runs `citytwin` commands for the state-file fuzz test (tests/cli/test_state_fuzz.py), one per line of
stdin, in this one process: a command that crashes the interpreter (a segmentation fault in a kernel)
ends this process, not the test suite, and the test sees it. Each request is a JSON list of
arguments; each answer a line ``@@`` + JSON {"code", "stderr"} (``code`` None: a Python exception
escaped the CLI, with its traceback in ``stderr``)."""
from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
import warnings


def serve() -> None:
    from twin.cli import main

    answers = sys.stdout
    for line in sys.stdin:
        args = json.loads(line)
        err = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code = main(args)
        except BaseException:  # noqa: BLE001 - reported to the test, which fails on it
            code, err = None, io.StringIO(err.getvalue() + traceback.format_exc())
        answers.write("@@" + json.dumps({"code": code, "stderr": err.getvalue()}) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
