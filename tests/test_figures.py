"""The architecture figure (paper Fig. 1) draws the shapes of the config it is given, and the shipped PNG exists."""

import matplotlib

matplotlib.use("Agg")

from vit_replication.analysis.figures import ARCHITECTURE_PNG, draw_architecture, main  # noqa: E402
from vit_replication.model import get_config  # noqa: E402


def texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts) + fig._suptitle.get_text()


def test_default_is_vit_b_16_with_its_shapes():
    text = texts(draw_architecture())
    assert "[196, 768]" in text and "[197, 768]" in text and "L = 12" in text and "Linear(D, 1000)" in text
    for eq in ("Eq. 1", "Eq. 2", "Eq. 3", "Eq. 4"):
        assert eq in text


def test_shapes_follow_the_config():
    text = texts(draw_architecture(get_config("vit_cifar_cpu")))
    assert "[64, 48]" in text and "[65, 128]" in text and "4 heads of D/k = 32" in text and "L = 6" in text


def test_main_writes_the_png(tmp_path, capsys):
    path = main([str(tmp_path / "fig.png")])
    assert path.stat().st_size > 10_000 and "wrote" in capsys.readouterr().out
    assert ARCHITECTURE_PNG.is_file()  # the committed copy in assets/, shown by the README
