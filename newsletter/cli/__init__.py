"""The command line: `newsletter COMMAND`, one package function per command."""

from newsletter.cli.main import main

__all__ = ["main"]
