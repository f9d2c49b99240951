"""Check MJML with the reference validator (the npm `mjml` package), where it is installed.

`mjml-python` compiles anything that is well-formed XML: an unknown tag or an `mj-text` outside a
column silently renders as nothing or as broken layout. The reference validator knows every
component's allowed parents and attributes, so `newsletter check` and the tests run it when
`npm ci` has installed it (a development tool: the program never needs node to send mail).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from newsletter import resources
from newsletter.errors import RenderError

log = logging.getLogger(__name__)

INSTALL_HINT = "run `npm ci` at the top of the checkout to install it (needs node)"
# "Line 4 of /tmp/x/email.mjml (mj-text) — mj-text cannot be used inside mj-section, ..."
_LINE = re.compile(r"^Line (\d+) of .*? \(([^)]*)\) [—-] (.*)$")


def find_validator() -> Path | None:
    """Return the `mjml` command of `npm ci` (checkout, current folder, PATH), or None."""
    if shutil.which("node") is None:
        return None
    candidates = [
        resources.PACKAGE_DIR.parent / "node_modules" / ".bin" / "mjml",
        Path.cwd() / "node_modules" / ".bin" / "mjml",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("mjml")
    return Path(found) if found else None


def validate_mjml(
    mjml_text: str, *, name: str = "email.mjml", validator: Path | None = None
) -> list[str]:
    """Run the reference validator on `mjml_text`; return its problems as `name:LINE: ...`."""
    validator = validator or find_validator()
    if validator is None:
        raise RenderError(f"mjml validator not found (node_modules/.bin/mjml); {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="newsletter-mjml-") as tmp:
        path = Path(tmp) / "email.mjml"
        path.write_text(mjml_text, encoding="utf-8")
        try:
            proc = subprocess.run(
                [str(validator), "--validate", str(path)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RenderError(
                f"{validator}: cannot run the mjml validator ({e}); {INSTALL_HINT}"
            ) from e
    problems = _parse(proc.stdout + "\n" + proc.stderr, name)
    if proc.returncode != 0 and not problems:
        detail = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), "no details")
        problems = [f"{name}: the mjml validator failed (exit {proc.returncode}): {detail}"]
    log.debug("mjml validator: %d problem(s) in %s", len(problems), name)
    return problems


def _parse(output: str, name: str) -> list[str]:
    """Turn the validator's report into one line per problem, naming `name` and the line."""
    problems: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        match = _LINE.match(line)
        if match:
            number, tag, message = match.groups()
            problems.append(f"{name}:{number}: <{tag}> {message}")
        elif line.startswith("Error:"):
            # A file it cannot parse at all is reported as "File: ..." then "Error: ...".
            problems.append(f"{name}: {line[len('Error:') :].strip()}")
    # Other lines are its "Command line error:" footer or node's own deprecation warnings.
    return problems
