"""The state: subscriptions, suppressions, the send ledger, the issue archive, and locks."""

from newsletter.store.locks import issue_lock, lock_path, scheduler_lock, send_lock
from newsletter.store.schema import (
    ArchivedIssue,
    IssueSummary,
    LedgerRow,
    StoredSubscriber,
    Suppression,
)
from newsletter.store.state import Store, state_url

__all__ = [
    "ArchivedIssue",
    "IssueSummary",
    "LedgerRow",
    "Store",
    "StoredSubscriber",
    "Suppression",
    "issue_lock",
    "lock_path",
    "scheduler_lock",
    "send_lock",
    "state_url",
]
