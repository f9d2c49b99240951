"""The circuit breaker: one refusal about our side, said to several recipients, stops the run.

A relay that refuses our sender, our size or our lack of a login refuses everyone the same way.
Failing each row would lose the issue for the whole list, and suppressing would lose the list
itself; so a refusal that is not about the recipient's mailbox (`replies.classify` says "fail")
is held back, and when the same one (same stage, code and enhanced code) comes back for
`BREAKER_RECIPIENTS` different recipients the run stops with one line that quotes the reply and
says what to fix. The rows it refused stay pending, so a rerun after the fix sends them; the
attempt is not counted against them. A refusal that stays alone (one message rejected as spam)
fails its row for good when the run ends, without suppressing anyone.

This is Postfix's dead-destination throttle (after failed sessions its queue manager stops
trying a destination and keeps the mail queued) applied to refusals about us from our one relay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.delivery.replies import Reply, advice
from newsletter.delivery.transport import SendResult

# Different recipients refused alike before the run stops; a run with fewer rows stops when all
# of them (at least two) are refused alike.
BREAKER_RECIPIENTS = 5


@dataclass
class _Held:
    first: str  # the first refusal's detail, quoted in the stop line
    rows: dict[str, str] = field(default_factory=dict)  # address -> the refusal it got


class CircuitBreaker:
    """Hold the rows refused for a reason on our side; trip on the same refusal repeated.

    Not thread-safe: delivery calls it under its ledger lock.
    """

    def __init__(self, rows_to_send: int, recipients: int = BREAKER_RECIPIENTS) -> None:
        self.threshold = max(2, min(recipients, rows_to_send))
        self._held: dict[tuple[str, int, str], _Held] = {}
        self._tripped: set[tuple[str, int, str]] = set()

    def hold(self, email: str, result: SendResult) -> str | None:
        """Hold a refused row back; return the stop line when its refusal trips the breaker."""
        reply = Reply.parse(result.detail)
        key = reply.key if reply is not None else ("", result.code or 0, result.detail)
        held = self._held.setdefault(key, _Held(result.detail))
        held.rows[email] = result.detail
        if key in self._tripped or len(held.rows) < self.threshold:
            return None
        self._tripped.add(key)
        fix = advice(reply) if reply is not None else "fix what the reply names"
        return (
            f"{len(held.rows)} recipients were refused alike, for a reason on our side: "
            f'"{held.first}"; {fix}; nobody was suppressed, and a rerun after the fix sends '
            "the rows left pending"
        )

    @property
    def tripped(self) -> bool:
        return bool(self._tripped)

    def settle(self, *, stopped: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Split the held rows into (keep pending, fail for good), each (address, refusal).

        A refusal that tripped the breaker keeps its rows; so does any when the run stopped
        early, since it cannot tell whether the refusal would have repeated.
        """
        keep: list[tuple[str, str]] = []
        fail: list[tuple[str, str]] = []
        for key, held in self._held.items():
            target = keep if stopped or key in self._tripped else fail
            target.extend(held.rows.items())
        return keep, fail
