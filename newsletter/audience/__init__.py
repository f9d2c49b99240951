"""Who gets the issue: the hand-written subscribers file, the state's subscribers, link tokens."""

from newsletter.audience.subscribers import (
    SubscriberList,
    audience,
    import_subscribers,
    load_subscribers,
    make_subscriber,
    normalize_email,
)

__all__ = [
    "SubscriberList",
    "audience",
    "import_subscribers",
    "load_subscribers",
    "make_subscriber",
    "normalize_email",
]
