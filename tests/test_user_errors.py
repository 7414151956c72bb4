"""Every user error of the command line is one line, ``error: ...``, exit status 2, no traceback, and leaves
nothing the user had damaged or an empty output folder behind (the README's bad-input table lists these cases)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vit_replication import train
from vit_replication.errors import UserError, one_line
from vit_replication.model import Runtime, ViTConfig
from vit_replication.variants.width_varying import WidthVaryingConfig
from vit_replication.weights.npz import load_npz

# 64 synthetic images and vit_cifar's 32x32 images and 4x4 patches at tiny widths, in fp32 as asked (not the
# precision --precision auto would time on this machine)
TINY = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32", "--no-progress",
        "--hidden-dim", "32", "--num-layers", "2", "--num-heads", "2", "--mlp-dim", "64", "--precision", "fp32"]


def fails(argv, capsys) -> str:
    """Run the CLI in-process; assert exit status 2 and a one-line message; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("error: ") or "error: " in err.splitlines()[-1]  # argparse prints usage first
    return err.strip()


def image_folder(root: Path, broken: bool = False) -> Path:
    """A 2-class ImageFolder of 8x8 JPEGs; with ``broken``, one train image cut in half."""
    from PIL import Image

    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (8, 8), (40 * i, 200 if c == "a" else 0, 90)).save(root / split / c / f"{i}.jpg")
    if broken:
        path = root / "train" / "b" / "2.jpg"
        path.write_bytes(path.read_bytes()[:40])
    return root


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--epochs", "-3"], "--epochs must be at least 1, got -3"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--batch-size", "65"], "--batch-size 65 is larger than the 64 training images"),
    (["--train-size", "0"], "--train-size must be at least 1, got 0"),
    (["--save-every", "0"], "--save-every must be at least 1, got 0"),
    (["--eval-every", "0"], "--eval-every must be at least 1, got 0"),
    (["--lr", "0"], "--lr must be > 0, got 0.0"),
    (["--label-smoothing", "1.5"], r"--label-smoothing must be in [0, 1), got 1.5"),
    (["--patch-dropout", "1"], r"--patch-dropout must be in [0, 1), got 1.0"),
    (["--mixup", "-1"], "--mixup must be >= 0, got -1.0"),
    (["--time-budget", "0"], "--time-budget must be > 0 seconds, got 0"),
    (["--time-budget", "0.5"], "--time-budget 0.5 s leaves"),
    (["--low-res-size", "16"], "--low-res-size needs --loader device"),
    (["--image-size", "30"], "ViTConfig: image_size 30 is not divisible by patch_size 4"),
    (["--num-heads", "5"], "ViTConfig: hidden_dim 32 is not divisible by num_heads 5"),
    (["--resize", "--loader", "device"], "--loader device needs images of the model's size"),
])
def test_bad_options_are_one_line_and_leave_no_folder(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    line = fails(TINY + ["--epochs", "1"] + argv + ["--out", str(out)], capsys)
    assert message in line
    assert not out.exists()  # nothing was written: the error came before any work


@pytest.mark.parametrize("argv, message", [
    (["--model", "vit_z"], "invalid choice: 'vit_z'"),
    (["--precision", "fp8"], "invalid choice: 'fp8'"),
    (["--epochs", "two"], "invalid int value: 'two'"),
])
def test_argparse_errors_are_exit_status_2_too(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_missing_image_folder_does_not_fall_back_to_synthetic(tmp_path, capsys):
    line = fails(["--dataset", "imagefolder", "--data-dir", str(tmp_path / "typo"), "--out", str(tmp_path / "o")],
                 capsys)
    assert f"no train and test folder in {tmp_path / 'typo'}" in line and "check --data-dir" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("loader", ["dataloader", "device"])
def test_truncated_jpeg_is_named(tmp_path, capsys, loader):
    root = image_folder(tmp_path / "images", broken=True)
    line = fails(["--dataset", "imagefolder", "--data-dir", str(root), "--image-size", "8", "--patch-size", "4",
                  "--batch-size", "4", "--epochs", "1", "--loader", loader, "--no-progress", "--out",
                  str(tmp_path / "o")], capsys)
    assert f"cannot read image {root / 'train' / 'b' / '2.jpg'}" in line and "replace or delete that file" in line


def test_image_folder_records_what_was_loaded(tmp_path):
    root = image_folder(tmp_path / "images")
    metrics = train.main(["--dataset", "imagefolder", "--data-dir", str(root), "--image-size", "8", "--patch-size",
                          "4", "--batch-size", "4", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o")])
    assert metrics["loaded"] == f"ImageFolder {root / 'train'}" and metrics["dataset"] == "imagefolder"
    from PIL import Image

    # measured on these images: every pixel of the 8 training JPEGs as decoded, scaled to [0, 1], per channel
    pixels = np.concatenate([np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).reshape(-1, 3) / 255
                             for path in sorted((root / "train").rglob("*.jpg"))])
    assert metrics["mean"] == pytest.approx(pixels.mean(0).tolist(), abs=5.1e-5)  # stored to 4 decimals
    assert metrics["std"] == pytest.approx(pixels.std(0, ddof=1).tolist(), abs=5.1e-5)


def test_resume_errors_name_the_checkpoint_and_keep_it(tmp_path, capsys):
    out = tmp_path / "run"
    line = fails(TINY + ["--epochs", "1", "--resume", "--out", str(out)], capsys)
    assert f"--resume: no checkpoint at {out / 'checkpoint.pt'}; run once without --resume first" in line
    train.main(TINY + ["--epochs", "1", "--out", str(out)])
    saved = (out / "checkpoint.pt").read_bytes()
    line = fails(TINY + ["--epochs", "2", "--resume", "--hidden-dim", "128", "--out", str(out)], capsys)
    assert f"--resume: {out / 'checkpoint.pt'} holds another model (hidden_dim: 32 -> 128)" in line
    assert (out / "checkpoint.pt").read_bytes() == saved  # untouched
    (out / "checkpoint.pt").write_bytes(saved[: len(saved) // 3])
    line = fails(TINY + ["--epochs", "2", "--resume", "--out", str(out)], capsys)
    assert f"{out / 'checkpoint.pt'} is not a readable checkpoint" in line


def test_out_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    line = fails(TINY + ["--epochs", "1", "--out", str(target)], capsys)
    assert f"--out {target} is a file, not a folder" in line and target.read_text() == "mine"


def test_debug_shows_the_traceback_instead(tmp_path):
    with pytest.raises(UserError, match="epochs must be at least 1"):  # the library speaks of its parameter
        train.main(TINY + ["--epochs", "0", "--debug", "--out", str(tmp_path / "o")])


def test_real_command_line_prints_one_line_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vit_replication.train", "--epochs", "0", "--out",
                             str(tmp_path / "o")], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2 and result.stderr == "error: --epochs must be at least 1, got 0\n"
    assert result.stdout == "" and not (tmp_path / "o").exists()


def test_config_validates_every_field():
    for field, bad in (("patch_size", 0), ("hidden_dim", -8), ("num_layers", 0), ("num_heads", 1.5),
                       ("num_classes", True), ("image_size", None)):
        with pytest.raises(UserError, match=f"ViTConfig.{field} must be a positive integer, got {bad!r}"):
            ViTConfig(**{field: bad})
    for field in ("dropout", "attn_dropout"):
        with pytest.raises(UserError, match=rf"ViTConfig.{field} must be in \[0, 1\), got 1"):
            ViTConfig(**{field: 1})
    for field in ("drop_path", "patch_dropout", "use_sdpa"):  # runtime settings, not the architecture
        with pytest.raises(TypeError, match=field):
            ViTConfig(**{field: 0})
    with pytest.raises(UserError, match="ViTConfig.pool must be one of cls, gap, got 'max'"):
        ViTConfig(pool="max")


def test_runtime_validates_every_setting():
    for field in ("drop_path", "patch_dropout"):
        with pytest.raises(UserError, match=rf"Runtime.{field} must be in \[0, 1\), got 1"):
            Runtime(**{field: 1})
    with pytest.raises(UserError, match="Runtime.attention must be one of sdpa, explicit, got 'flash'"):
        Runtime(attention="flash")
    with pytest.raises(UserError, match="Runtime.dynamic_image_size must be True or False, got 1"):
        Runtime(dynamic_image_size=1)
    with pytest.raises(UserError, match="WidthVaryingConfig.pool must be one of cls, gap, got 'max'"):
        WidthVaryingConfig(pool="max")


def test_drop_path_option_is_checked_before_any_work(tmp_path, capsys):
    line = fails(TINY + ["--epochs", "1", "--drop-path", "1.5", "--out", str(tmp_path / "o")], capsys)
    assert line == "error: --drop-path must be in [0, 1), got 1.5" and not (tmp_path / "o").exists()


def test_truncated_npz_is_named(tmp_path):
    path = tmp_path / "ViT-B_16.npz"
    np.savez(path, a=np.zeros(1000))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match=f"{path} is not a readable .npz checkpoint .*download it again"):
        load_npz(path)
    with pytest.raises(UserError, match=f"no .npz checkpoint at {tmp_path / 'none.npz'}"):
        load_npz(tmp_path / "none.npz")


def test_worker_error_message_becomes_its_last_line():
    wrapped = UserError("Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\nvit_replication.errors.UserError: cannot read image a.jpg")
    assert one_line(wrapped) == "cannot read image a.jpg"
    assert one_line(UserError("two\nlines")) == "two lines"
