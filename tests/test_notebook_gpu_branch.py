"""Notebook 05's GPU settings, run where CI can run them: on the CPU with only the device different (``VIT_GPU=1``):
epochs instead of a time budget, fp16 autocast with loss scaling, the data held on the device, one smoke epoch of
the ViT's written-out loop and of the CNN. This project has no GPU; the same cells on a GPU have not run here."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_train_cifar10.ipynb"


def test_notebook_05_runs_its_gpu_settings_on_the_cpu(tmp_path, monkeypatch):
    for name, value in {"SMOKE": "1", "GPU": "1", "RUN_DIR": str(tmp_path / "run")}.items():
        monkeypatch.setenv(f"VIT_{name}", value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "device cpu, precision fp16 (loss scaling on)" in text  # the GPU settings: fp16 where bf16 is not native
    assert "1 epochs, " in text and "the CNN minus the ViT" in text  # the written-out loop, then the CNN
    assert (tmp_path / "run" / "results.json").is_file()
