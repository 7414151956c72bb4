"""Colab, where every notebook runs in a runtime of its own: keep ``runs/`` and ``data/`` on Google
Drive, so that notebook 06's trained model reaches the later notebooks and CIFAR-10 downloads once.
The notebooks' setup cell clones the repository, installs the package and calls ``setup``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

KEPT = ("runs", "data")  # the folders that outlive a runtime on Drive
DRIVE_FOLDER = "vit_replication"  # under "My Drive"


def keep_on_drive(repo: Path, drive_root: Path, folders: tuple[str, ...] = KEPT) -> list[Path]:
    """Make each of ``repo``/``folders`` a link to a folder of that name under ``drive_root``/vit_replication.
    What the local folder holds is moved there first, never deleted or overwritten (on a clash Drive's copy wins
    and the local one is kept as ``<name>.local``). Idempotent; returns the Drive folders."""
    targets = []
    for name in folders:
        target, link = drive_root / DRIVE_FOLDER / name, repo / name
        target.mkdir(parents=True, exist_ok=True)
        targets.append(target)
        if link.is_symlink() and link.resolve() == target.resolve():
            continue
        if link.is_symlink():
            link.unlink()  # a link to somewhere else: only the link goes
        elif link.is_dir():
            for item in list(link.iterdir()):
                if not (target / item.name).exists():
                    shutil.move(str(item), str(target / item.name))
            if any(link.iterdir()):  # items Drive already had: keep them beside, under another name
                link.rename(link.with_name(f"{name}.local"))
            else:
                link.rmdir()
        link.symlink_to(target, target_is_directory=True)
    return targets


def setup(repo: Path, drive: bool = True, mount: Callable[[str], None] | None = None,
          mount_point: str = "/content/drive") -> Path:
    """With ``drive``, mount Google Drive (default ``google.colab.drive.mount``) and keep ``runs/`` and ``data/``
    there; then work in ``repo``/notebooks, so the notebooks' relative paths and imports mean what they do in a local
    clone."""
    if drive:
        if mount is None:
            from google.colab import drive as colab_drive  # only on Colab

            mount = colab_drive.mount
        mount(mount_point)
        folders = keep_on_drive(repo, Path(mount_point) / "MyDrive")
        print(f"runs/ and data/ are kept on Google Drive: {', '.join(str(f) for f in folders)}")
    else:
        print("runs/ and data/ last as long as this runtime (set DRIVE = True to keep them on Google Drive)")
    os.chdir(repo / "notebooks")
    sys.path.insert(0, str(repo / "notebooks"))  # the exercises beside the notebooks
    return repo / "notebooks"
