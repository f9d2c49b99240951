"""newsletter: a self-hosted weekly research-paper digest."""

from __future__ import annotations

__version__ = "0.1.0"
