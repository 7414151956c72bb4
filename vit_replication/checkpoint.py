"""Checkpoint files: written atomically, read with errors that name the file. What a checkpoint holds is turned back
into a model by ``trained`` (a run of the reader's own, else the model shipped in ``assets/``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import UserError


def save_checkpoint(path: str | Path, **state) -> None:
    """Write ``state`` with torch.save to a temporary file, then rename it over ``path`` (atomic on POSIX):
    an interrupted save never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``; a missing or unreadable file is a ``UserError`` that
    names it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated zip, not a checkpoint at all, unpickling errors
        raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__}); it may be truncated: "
                        "delete it, or train again without --resume") from err


def config_differences(stored: dict, requested: dict) -> list[str]:
    """'name: stored -> requested' for every field whose value differs between two config dicts."""
    return [f"{key}: {stored.get(key)!r} -> {requested.get(key)!r}"
            for key in sorted(set(stored) | set(requested)) if stored.get(key) != requested.get(key)]
