"""What a command printed, with rich's line wrapping undone (wrap points move with path lengths)."""

from __future__ import annotations

from click.testing import Result


def said(result: Result) -> str:
    """The output of `result` with every run of whitespace as one space."""
    return " ".join(result.output.split())
