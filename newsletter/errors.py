"""One exception family: the CLI catches `NewsletterError`, prints one line, exits non-zero."""

from __future__ import annotations


class NewsletterError(Exception):
    """Root of every error the program reports to its user.

    The message is one line that names the object (file, line, key, URL) and the fix.
    """

    exit_code = 1


class ConfigError(NewsletterError):
    """The configuration is invalid; the message lists every problem, one per line."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SourceError(NewsletterError):
    """A paper source could not be read or parsed."""


class FetchError(SourceError):
    """An HTTP fetch failed after its retries."""


class RenderError(NewsletterError):
    """A template failed to render or compile."""
