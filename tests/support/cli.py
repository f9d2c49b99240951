"""Run the real `python -m newsletter` process, as a user would in a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

NEWSLETTER_VARIABLES = ("NEWSLETTER_CONFIG", "NEWSLETTER_SECRET_KEY", "NEWSLETTER_SMTP_PASSWORD")


def newsletter(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`newsletter ARGS...` in `cwd` (the checkout by default), with none of the program's own
    variables set but those given in `env` (a fresh shell's view)."""
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in NEWSLETTER_VARIABLES:
        environ.pop(name, None)
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=environ,
        timeout=120,
    )
