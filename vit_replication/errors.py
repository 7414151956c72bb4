"""The project's own errors: what a user can fix (a bad option, a missing or corrupt file). The command line prints
them as one line, ``error: <message>``, with exit status 2 (argparse's convention) and no traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Something the user can fix; the message names the option or file and says what to do. A
    ValueError, so callers that catch bad values catch it too."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` as one line. An error raised in a DataLoader worker process arrives
    with the worker's traceback in its message; its last line holds the original message."""
    text = str(error).strip() or type(error).__name__
    lines = text.splitlines()
    if "Original Traceback" in text:
        return lines[-1].split(": ", 1)[-1]
    return " ".join(line.strip() for line in lines)
