"""What one delivery did: the counts a run reports and the one line it ends with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeliveryReport:
    """What one `deliver` call did; `stopped_early` means the caller should exit non-zero."""

    sent: int = 0
    failed: int = 0  # refused for good (a permanent refusal, or given up after max_attempts)
    suppressed: int = 0  # hard bounces, now on the suppression list
    skipped: int = 0
    stopped_early: bool = False
    already_sent: int = 0  # sent before this run started (by an earlier run or another sender)
    failed_before: int = 0  # refused for good in an earlier run (not tried again)
    pending: int = 0  # rows left for a rerun (the `to_retry` ones and any never tried)
    to_retry: int = 0  # pending rows tried and refused for now: a later run tries them again
    variants: int = 0  # variants rendered in this run
    seconds: float = 0.0
    reason: str = ""  # why the run stopped early

    def summary(self) -> str:
        """Return the one-line count the CLI prints."""
        line = f"{self.sent} sent, {self.failed} failed, {self.suppressed} suppressed, "
        line += f"{self.skipped} skipped"
        line += f", {self.already_sent} sent before" if self.already_sent else ""
        line += f", {self.failed_before} failed before" if self.failed_before else ""
        line += "".join(f", {part}" for part in left_over(self.pending, self.to_retry))
        line += f" in {self.seconds:.1f} s"
        return line + (f"; stopped early: {self.reason}" if self.stopped_early else "")


def left_over(pending: int, to_retry: int) -> list[str]:
    """`3 to retry`, `2 pending`: the pending rows a rerun retries, and those never tried."""
    parts = [f"{to_retry} to retry"] if to_retry else []
    untried = pending - to_retry
    return parts + ([f"{untried} pending"] if untried > 0 else [])
