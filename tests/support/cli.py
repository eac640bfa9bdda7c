"""`deployctl ARGS` in the test process, answered like `subprocess.run([python, -m, deployctl, …])`.

`cli.main` is what the console script calls; run here with the working directory and environment
the subprocess would have had, it exits with the same code and prints the same stdout and stderr
(not a terminal either way, so rich uses COLUMNS or 80 columns). It saves a Python start and the
imports of boto3, docker and typer per call: on a 2-core runner that CPU time is the suite's limit
(docs/testing.md "Suite time"). Tests about the process itself (signals, a terminal on stdin, a
kill, what a fresh interpreter imports) start a real subprocess instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from unittest import mock

import pytest


def run(*args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        replace_env: bool = False) -> subprocess.CompletedProcess[str]:
    """`deployctl ARGS` in `cwd`, with `env` added to this process's environment (or, with
    `replace_env`, as the whole environment), restored afterwards."""
    from deployctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (contextlib.chdir(cwd or os.getcwd()), mock.patch.dict(os.environ, dict(env or {}), clear=replace_env),
          contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info):
        main([*args])
    code = exit_info.value.code
    return subprocess.CompletedProcess(["deployctl", *args], code if isinstance(code, int) else 0, out.getvalue(),
                                       err.getvalue())
