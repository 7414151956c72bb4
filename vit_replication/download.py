"""Downloads that fail in one line instead of hanging: every socket operation is bounded, and a failure becomes a
``DownloadError`` that says what could not be fetched and how to get it by hand."""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Callable
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TypeVar

from .errors import UserError

T = TypeVar("T")
TIMEOUT_SECONDS = 30


class DownloadError(UserError, RuntimeError):
    """Something could not be downloaded (closed network, time-out, bad checksum); the message says what to do."""


@contextmanager
def network_timeout(seconds: float):
    """Bound every socket operation, so a download on a closed network fails instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


class HomeAsTilde(io.TextIOBase):
    """Writes through to ``stream`` with the home folder shown as ``~``, so that what downloaders
    print names no machine's paths in a notebook's outputs."""

    def __init__(self, stream):
        self.stream, self.home = stream, str(Path.home())

    def write(self, text: str) -> int:
        return self.stream.write(text.replace(self.home, "~"))

    def flush(self) -> None:
        self.stream.flush()


def fetch(what: str, how_to_get: str, download: Callable[[], T], error: type[UserError] = DownloadError) -> T:
    """Run ``download()`` with a bounded network time; any failure becomes ``error``: '<what> could
    not be downloaded (<cause>); <how_to_get>'."""
    try:
        with network_timeout(TIMEOUT_SECONDS), redirect_stdout(HomeAsTilde(sys.stdout)), \
                redirect_stderr(HomeAsTilde(sys.stderr)):
            return download()
    except Exception as err:  # URLError, socket time-outs, HTTP errors, checksum or missing-file errors
        raise error(f"{what} could not be downloaded ({type(err).__name__}: {err}); {how_to_get}") from err
