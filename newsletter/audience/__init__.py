"""Who gets the issue: the hand-written subscribers file, the state's subscribers, link tokens."""

from newsletter.audience.subscribers import (
    SubscriberFile,
    SubscriberList,
    audience,
    import_subscribers,
    load_subscribers,
    make_subscriber,
    normalize_email,
    read_subscribers,
)

__all__ = [
    "SubscriberFile",
    "SubscriberList",
    "audience",
    "import_subscribers",
    "load_subscribers",
    "make_subscriber",
    "normalize_email",
    "read_subscribers",
]
