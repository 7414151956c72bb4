"""Notebook parameters in one plain line each: a default, a smaller value for CI's smoke mode, and an override.

    EPOCHS = setting("EPOCHS", 10, smoke=1)          # VIT_EPOCHS=3 in the environment overrides both
    RUN_DIR = setting("RUN_DIR", Path("../runs/05"))  # a Path default gives a Path

``VIT_SMOKE=1`` (set by CI) selects the ``smoke`` values: smaller data, fewer epochs, never another model.
``VIT_<NAME>`` in the environment wins over both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UserError

SMOKE = os.environ.get("VIT_SMOKE") == "1"
_UNSET = object()
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def setting(name: str, default: Any, smoke: Any = _UNSET, environ: dict[str, str] | None = None,
            smoke_mode: bool | None = None) -> Any:
    """``VIT_<name>`` from the environment if set, converted to the type of ``default`` (or of
    ``smoke`` when the default is None), else ``smoke`` in smoke mode (if given), else ``default``.
    ``environ`` and ``smoke_mode`` are for tests."""
    environ = os.environ if environ is None else environ
    smoke_mode = SMOKE if smoke_mode is None else smoke_mode
    text = environ.get(f"VIT_{name}")
    if text is not None:
        return _convert(name, text, default if default is not None else (None if smoke is _UNSET else smoke))
    if smoke_mode and smoke is not _UNSET:
        return smoke
    return default


def _convert(name: str, text: str, like: Any) -> Any:
    if isinstance(like, bool):
        if text.strip().lower() not in _TRUE | _FALSE:
            raise UserError(f"VIT_{name}={text!r}: expected 1 or 0 (true or false)")
        return text.strip().lower() in _TRUE
    for kind in (int, float):
        if isinstance(like, kind):
            try:
                return kind(text)
            except ValueError:
                raise UserError(f"VIT_{name}={text!r}: expected {'an integer' if kind is int else 'a number'}, "
                                f"like {like!r}") from None
    if isinstance(like, Path):
        return Path(text)
    return text
