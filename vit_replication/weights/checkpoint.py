"""Checkpoint files: written atomically, read with errors that name the file.

A checkpoint holds tensors and plain data only (dicts, lists, tuples, str, int, float, bool, None):
state dicts, config dicts, history lists. It is read with torch.load's weights_only unpickler, which
rebuilds nothing else, so that a file crafted to run code when unpickled is refused instead of run.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from ..errors import UserError


def save_checkpoint(path: str | Path, **state) -> None:
    """Write ``state`` with torch.save to a temporary file, then rename it over ``path`` (atomic on
    POSIX): an interrupted save never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``: tensors and plain data only (weights_only),
    so loading a file never runs code from it. A missing, unsafe or unreadable file is a one-line
    ``UserError`` that names it and leaves it as it is."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            # a pickle protocol torch.save does not write: the error below (or none) is all there is to say
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # refused globals, calls and classes are content; an opcode torch does not know is a damaged pickle
        if "Weights only load failed" in str(err) and "Unsupported operand" not in str(err):
            raise UserError(f"{path} holds objects other than tensors and plain data ({_refused(str(err))}refused: "
                            "loading it could run code); delete it, or train again without --resume") from err
        raise _unreadable(path, err) from err
    except Exception as err:  # truncated zip, not a checkpoint at all
        raise _unreadable(path, err) from err
    if not isinstance(checkpoint, dict):
        raise UserError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint's dict; delete it, or train "
                        "again without --resume")
    return checkpoint


def _refused(message: str) -> str:
    """'it asks for <name>; ' when torch's weights_only error names the global or function the file asks for."""
    found = re.search(r"GLOBAL (\S+) |unrecognized function (<[^>]*>|\S+)", message)
    return f"it asks for {found.group(1) or found.group(2)}; " if found else ""


def _unreadable(path: Path, err: Exception) -> UserError:
    """The error for a file torch cannot read at all (truncated, corrupt, not written by torch.save)."""
    return UserError(f"{path} is not a readable checkpoint ({type(err).__name__}); it may be truncated or corrupt: "
                     "delete it, or train again without --resume")


def config_differences(stored: dict, requested: dict) -> list[str]:
    """'name: stored -> requested' for every field whose value differs."""
    return [f"{key}: {stored.get(key)!r} -> {requested.get(key)!r}"
            for key in sorted(set(stored) | set(requested)) if stored.get(key) != requested.get(key)]
