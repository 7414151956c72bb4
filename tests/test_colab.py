"""The Colab setup with an injected Drive: runs/ and data/ become links to Drive folders, what was there is moved and
never lost, a second call changes nothing, and without Drive nothing is linked."""

import os
import sys
from pathlib import Path

from vit_replication.colab import keep_on_drive, setup


def _repo(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "runs" / "06_cpu_recipe").mkdir(parents=True)
    (root / "runs" / "06_cpu_recipe" / "checkpoint.pt").write_text("weights")
    return root


def test_setup_mounts_drive_links_the_folders_and_works_in_notebooks(tmp_path, monkeypatch, capsys):
    repo, mounted = _repo(tmp_path / "content" / "vit_replication"), []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    drive = tmp_path / "content" / "drive"
    workdir = setup(repo, drive=True, mount=lambda point: (mounted.append(point), (Path(point) / "MyDrive").mkdir(
        parents=True)), mount_point=str(drive))
    assert mounted == [str(drive)] and workdir == repo / "notebooks" and Path.cwd() == repo / "notebooks"
    assert sys.path[0] == str(repo / "notebooks")  # the exercises import as they do in a local clone
    kept = drive / "MyDrive" / "vit_replication"
    for name in ("runs", "data"):
        assert (repo / name).is_symlink() and (repo / name).resolve() == (kept / name).resolve()
    # what notebook 05 had written is on Drive now, and a notebook reads it through the usual relative path
    assert (kept / "runs" / "06_cpu_recipe" / "checkpoint.pt").read_text() == "weights"
    assert Path("../runs/06_cpu_recipe/checkpoint.pt").read_text() == "weights"
    assert "kept on Google Drive" in capsys.readouterr().out
    assert keep_on_drive(repo, drive / "MyDrive") == [kept / "runs", kept / "data"]  # again: nothing changes
    assert (kept / "runs" / "06_cpu_recipe" / "checkpoint.pt").read_text() == "weights"


def test_a_file_drive_already_has_is_not_overwritten(tmp_path):
    repo, drive = _repo(tmp_path / "repo"), tmp_path / "drive"
    (drive / "vit_replication" / "runs" / "06_cpu_recipe").mkdir(parents=True)
    (drive / "vit_replication" / "runs" / "06_cpu_recipe" / "checkpoint.pt").write_text("older run on Drive")
    keep_on_drive(repo, drive)
    assert (repo / "runs").is_symlink()
    assert (repo / "runs.local" / "06_cpu_recipe" / "checkpoint.pt").read_text() == "weights"  # kept beside
    assert (drive / "vit_replication" / "runs" / "06_cpu_recipe" / "checkpoint.pt").read_text() == "older run on Drive"


def test_without_drive_nothing_is_linked(tmp_path, monkeypatch, capsys):
    repo = _repo(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    setup(repo, drive=False, mount=lambda point: (_ for _ in ()).throw(AssertionError("mounted")))
    assert not (repo / "runs").is_symlink() and Path(os.getcwd()) == repo / "notebooks"
    assert "last as long as this runtime" in capsys.readouterr().out
