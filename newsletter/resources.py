"""Where bundled files live: inside the installed package, or at the top of a checkout."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = PACKAGE_DIR.parent


def _find(name: str) -> Path:
    """A wheel carries `name` inside the package; a checkout (or editable install) at its top."""
    for candidate in (PACKAGE_DIR / name, _CHECKOUT_DIR / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"bundled file {name} is missing from the installation; reinstall")


def default_config_path() -> Path:
    return _find("config.yaml")


def default_config_text() -> str:
    return default_config_path().read_text(encoding="utf-8")


def subscribers_example_text() -> str:
    """The commented example subscriber list (`subscribers.example.yaml`)."""
    return _find("subscribers.example.yaml").read_text(encoding="utf-8")


def templates_dir() -> Path:
    return _find("templates")


def template_dirs(override: Path | None) -> list[Path]:
    """The folders templates load from: a config's `templates_dir` first, then the bundled one."""
    bundled = templates_dir()
    return [bundled] if override is None else [override, bundled]


def sample_papers_path() -> Path:
    """The bundled Daily Papers page used by the quick start (`--papers sample`)."""
    return PACKAGE_DIR / "samples" / "daily-papers-page.txt"


def document_frequencies_path() -> Path:
    """The bundled table of document frequencies the keyword weights start from."""
    return PACKAGE_DIR / "data" / "document-frequencies.tsv.gz"
