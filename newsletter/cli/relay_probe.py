"""Try the SMTP relay the way a send opens it, and report what it offers (TLS, SIZE).

The probe is the SMTP transport itself (same TLS context, certificate checks and login), so a
relay that passes here is one that a send can use; it only adds a look at the connection the
transport made: the TLS version and the EHLO SIZE limit (RFC 1870), which caps a message.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.delivery.smtp import SmtpTransport

if TYPE_CHECKING:
    from newsletter.config import SmtpConfig


@dataclass(frozen=True)
class RelayProbe:
    where: str  # "smtp host:port"
    tls: str | None  # the TLS version in use ("TLSv1.3"), None without TLS
    logged_in: bool
    size_limit: int | None  # EHLO SIZE in bytes; None when not announced, 0 for "no limit"


class _ProbingTransport(SmtpTransport):
    """The SMTP transport, remembering what the last connection it made offered."""

    seen: tuple[str | None, int | None] = (None, None)

    def _connect(self) -> smtplib.SMTP:
        conn = super()._connect()
        sock = conn.sock
        tls = sock.version() if isinstance(sock, ssl.SSLSocket) else None
        size = conn.esmtp_features.get("size")
        limit = int(size) if size is not None and size.strip().isdigit() else None
        if size is not None and not size.strip():
            limit = 0  # SIZE without a number: the server declares no fixed limit
        self.seen = (tls, limit)
        return conn


def probe_relay(
    settings: SmtpConfig,
    *,
    ssl_context: ssl.SSLContext | None = None,
    environ: Mapping[str, str] | None = None,
) -> RelayProbe:
    """Connect, secure and log in as a send would, then quit; raise TransportError on failure."""
    transport = _ProbingTransport(
        settings, ssl_context=ssl_context, environ=None if environ is None else dict(environ)
    )
    try:
        transport.open()
    finally:
        transport.close()
    tls, limit = transport.seen
    return RelayProbe(transport.where, tls, bool(settings.username), limit)
