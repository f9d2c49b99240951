"""Deliver rendered variants to the audience through the ledger, by outbox or SMTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.delivery.outbox import OutboxTransport
from newsletter.delivery.plan import Enqueued, Selection, enqueue
from newsletter.delivery.report import DeliveryReport
from newsletter.delivery.send import RetryPolicy, deliver
from newsletter.delivery.smtp import SmtpTransport
from newsletter.delivery.transport import SendResult, Transport

if TYPE_CHECKING:
    from newsletter.config.stages import TransportSettings

__all__ = [
    "DeliveryReport",
    "Enqueued",
    "RetryPolicy",
    "SendResult",
    "Selection",
    "Transport",
    "deliver",
    "enqueue",
    "make_transport",
]


def make_transport(settings: TransportSettings) -> Transport:
    """Return the transport `delivery.transport` names, not yet opened."""
    if settings.delivery.transport == "smtp":
        return SmtpTransport(settings.delivery.smtp)
    return OutboxTransport(settings.outbox)
