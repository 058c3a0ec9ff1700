"""The one base class of the project's errors: the CLI prints any of them as a one-line message."""

from __future__ import annotations


class AigError(Exception):
    """A user-facing failure: the message names the thing and what to do."""
