"""Render an issue into email variants: Jinja2 → MJML → premailer, and the plain-text twin."""

from newsletter.render.renderer import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    check_templates,
    render_issue,
)

__all__ = [
    "PREFERENCES_PLACEHOLDER",
    "UNSUBSCRIBE_PLACEHOLDER",
    "check_templates",
    "render_issue",
]
