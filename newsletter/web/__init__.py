"""The web side: sign-up with double opt-in, one-click unsubscribe, preferences, archive, feed."""

from newsletter.web.app import create_app, serve

__all__ = ["create_app", "serve"]
