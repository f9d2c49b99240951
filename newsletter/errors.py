"""One exception family: the CLI catches `NewsletterError`, prints one line, exits non-zero.

Every error the program reports to its user is one of the classes below, named for what went
wrong; the root itself is never raised. A message is one line that names the object (file,
line, key, URL, address) and the fix. Library errors are wrapped with `raise ... from e`.
"""

from __future__ import annotations

from typing import Literal


class NewsletterError(Exception):
    """Root of every error the program reports to its user (never raised itself)."""

    exit_code = 1


class ConfigError(NewsletterError):
    """The configuration is invalid; the message lists every problem, one per line."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class PreflightError(NewsletterError):
    """A check before a run failed, so the run wrote nothing; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SecretKeyError(NewsletterError):
    """`NEWSLETTER_SECRET_KEY` is missing or unusable, so no link can be signed."""


class SecretsFileError(NewsletterError):
    """The secrets file beside the config (`secrets.env`) cannot be read."""


class AlreadyExistsError(NewsletterError):
    """A file a command would create exists already (nothing is ever overwritten)."""


class WriteError(NewsletterError):
    """A file or folder cannot be written (no permission, disk full, not a folder)."""


class SourceError(NewsletterError):
    """A paper source could not be read or parsed."""


class FetchError(SourceError):
    """An HTTP fetch failed after its retries."""


class DnsUnavailable(NewsletterError):
    """DNS gave no answer (offline, timeout, server failure): a record could not be checked."""


class NotFoundError(NewsletterError):
    """Something the user named (an issue, a paper, a file) does not exist."""


class RenderError(NewsletterError):
    """A template failed to render or compile."""


class PreviewError(NewsletterError):
    """The preview cannot be written or served (folder not writable, port taken)."""


class MessageError(NewsletterError):
    """A message cannot be built (a header value would break the message)."""


class TransportError(NewsletterError):
    """The transport cannot deliver anything (login refused, TLS failed, outbox not writable)."""


class StoreError(NewsletterError):
    """The state database cannot be opened, migrated or written."""


class BusyError(NewsletterError):
    """Another process holds the lock this command needs (a send, a scheduler)."""


class SubscribersError(NewsletterError):
    """A subscriber list or address cannot be used (not YAML or CSV, wrong shape, bad address)."""


class TokenError(NewsletterError):
    """A link's token is invalid (`kind == "bad"`) or too old (`kind == "expired"`)."""

    def __init__(self, message: str, kind: Literal["bad", "expired"]) -> None:
        super().__init__(message)
        self.kind = kind
