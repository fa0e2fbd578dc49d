"""Consoles for people: what the CLI prints, whole, whether on a terminal or piped.

rich wraps (and cuts table cells) at the terminal's width, and at 80 columns when the output
is not a terminal; a message id or a replay command cut in two cannot be pasted back. So
lines never wrap (soft wrap), and piped output gets a width no line reaches. Progress bars go
to stderr, so stdout stays the result (``--json`` makes it machine-readable).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import Progress

_PIPED_WIDTH = 100_000  # wider than any line squall prints: nothing is wrapped or cut


def people(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal:
        console.width = _PIPED_WIDTH
    return console


def progress_console() -> Console:
    """Where progress bars and spinners draw: stderr, never mixed into a command's result."""
    return Console(stderr=True)


def progress_bar(*columns: Any, transient: bool = True) -> Progress:
    """A progress bar on stderr; off when stderr is not a terminal (a log gets no bar debris)."""
    console = progress_console()
    return Progress(*columns, console=console, transient=transient, disable=not console.is_terminal)
