"""Look at an issue before it goes out: the exact email parts as files (`preview.server`
serves them and rebuilds on changes)."""

from newsletter.preview.files import PreviewResult, summary_line, write_preview_from_sources

__all__ = ["PreviewResult", "summary_line", "write_preview_from_sources"]
