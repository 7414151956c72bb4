"""Figures a reader can trust: maps that are compared share one colour scale with a colour bar, heads are numbered
from 1, the resolution switch is marked, error bars are the statistic the text uses, and a trade-off is one plot."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vit_replication.analysis import visualize  # noqa: E402
from vit_replication.errors import UserError  # noqa: E402


def _images(fig):
    return [image for ax in fig.axes for image in ax.get_images()]


def test_attention_heads_share_one_scale_with_a_colour_bar():
    maps = torch.rand(4, 8, 8)
    maps[0] = 1 / 64  # a uniform head beside sharper ones
    fig = visualize.plot_attention_heads(torch.rand(3, 32, 32), maps, layer=6)
    overlays = [image for image in _images(fig) if image.get_cmap().name == "inferno"]
    assert len(overlays) == 4 and {image.get_clim() for image in overlays} == {(0, float(maps.max()))}
    titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("head")]
    assert titles == ["head 1", "head 2", "head 3", "head 4"]
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes) and "layer 6" in fig._suptitle.get_text()
    assert fig._suptitle.get_text().startswith("class-token attention")
    plt.close(fig)
    gap = visualize.plot_attention_heads(torch.rand(3, 32, 32), maps, pool="gap")  # what the mean patch token reads
    assert gap._suptitle.get_text().startswith("mean attention of the patch tokens")
    plt.close(gap)
    with pytest.raises(UserError, match="pool must be one of cls, gap"):  # a misspelt pool is not titled "gap"
        visualize.plot_attention_heads(torch.rand(3, 32, 32), maps, pool="avg")


def test_rollout_is_a_heat_overlay_on_one_scale():
    fig = visualize.plot_rollout(torch.rand(3, 3, 32, 32), torch.rand(3, 8, 8) * torch.tensor([1, 10, 100])[:, None,
                                                                                                           None])
    overlays = [image for image in _images(fig) if image.get_cmap().name == "jet"]
    assert len(overlays) == 3 and {image.get_clim() for image in overlays} == {(0, 1)}
    assert all(image.get_alpha() < 1 for image in overlays)  # the image stays visible under the map
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    plt.close(fig)


def _dashed(fig) -> list[list[float]]:
    """The x data of the dashed lines of each axes of ``fig``."""
    return [[list(line.get_xdata()) for line in ax.get_lines() if line.get_linestyle() == "--"] for ax in fig.axes]


HISTORY = {"epoch": [1, 2, 3, 4], "train_loss": [2, 1.5, 1.2, 1.0], "train_acc": [0.2, 0.4, 0.5, 0.6],
           "test_loss": [None, 1.4, None, 1.1], "test_acc": [None, 0.45, None, 0.6], "steps": [5, 5, 5, 5]}


@pytest.mark.parametrize("low_res_steps, switch", [
    ([5, 5, 5, 0], 3.5),  # after epoch 3: between its point and epoch 4's
    ([5, 5, 2, 0], 2.9),  # 2 of epoch 3's 5 steps: 0.4 of the way through it
    ([5, 0, 0, 0], 1.5),
])
def test_history_marks_the_end_of_the_low_resolution_phase(low_res_steps, switch):
    fig = visualize.plot_history(HISTORY | {"low_res_steps": low_res_steps})
    assert _dashed(fig) == [[[pytest.approx(switch)] * 2]] * 2  # one dashed line in both plots
    for ax in fig.axes:
        assert "low resolution ends" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


@pytest.mark.parametrize("low_res_steps", [[0, 0, 0, 0], [5, 5, 5, 5], None])
def test_history_without_the_end_of_a_low_resolution_phase_has_no_dashed_line(low_res_steps):
    history = HISTORY | {"low_res_steps": low_res_steps} if low_res_steps else HISTORY  # None: not recorded
    fig = visualize.plot_history(history)
    assert _dashed(fig) == [[], []]  # none, or the run ended still at low resolution
    assert [list(line.get_xdata()) for line in fig.axes[0].get_lines()] == [[1, 2, 3, 4], [2, 4]]  # train, test
    plt.close(fig)


def test_seed_error_bars_are_standard_errors():
    runs = {"a": [{"test_acc": a} for a in (0.60, 0.62, 0.64)], "b": [{"test_acc": b} for b in (0.70, 0.70)]}
    fig = visualize.plot_seeds(runs)
    bars = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.LineCollection)]
    lengths = sorted(float(seg[1][1] - seg[0][1]) for bar in bars for seg in bar.get_segments())
    assert lengths == pytest.approx([0.0, 2 * 2 / 3 ** 0.5])  # std 2 points over 3 seeds: +-1.155 points
    plt.close(fig)


def test_only_a_series_of_one_design_is_joined_by_a_line():
    def seeds(name, parameters, accs):
        return [{"name": name, "parameters": parameters, "test_acc": a} for a in accs]

    towers = {f"D={d}": seeds(f"D={d}", d * 1000, (0.6 + d / 1000,) * 3) for d in (64, 128, 192)}
    varying = {"64-128-192": seeds("64-128-192", 120_000, (0.7, 0.7, 0.7)),
               "96-192": seeds("96-192", 90_000, (0.68, 0.68, 0.68))}
    fig = visualize.plot_accuracy_vs_parameters({"tower": towers, "width-varying": varying}, connected=["tower"])
    styles = {bar.get_label(): bar.lines[0].get_linestyle() for bar in fig.axes[0].containers}
    assert styles == {"tower": "-", "width-varying": "None"}
    plt.close(fig)


def test_accuracy_vs_parameters_bars_are_standard_errors_of_each_variant():
    runs = [{"name": "D=64", "parameters": 64_000, "test_acc": a} for a in (0.60, 0.62, 0.64)]
    fig = visualize.plot_accuracy_vs_parameters({"tower": {"D=64": runs}})
    bars = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.LineCollection)]
    lengths = [float(seg[1][1] - seg[0][1]) for bar in bars for seg in bar.get_segments()]
    assert lengths == pytest.approx([2 * 2 / 3 ** 0.5])  # std 2 points over 3 seeds: +-1.155 points
    dots = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.PathCollection)]
    assert sorted(float(y) for c in dots for _, y in c.get_offsets()) == pytest.approx([60.0, 62.0, 64.0])
    plt.close(fig)


def test_tome_tradeoff_draws_accuracy_against_speed_on_an_axis_that_shows_a_one_point_drop():
    fig = visualize.plot_tome_tradeoff([0, 4, 8], [800.0, 1100.0, 1500.0], [0.84, 0.835, 0.83])
    low, high = fig.axes[0].get_ylim()
    assert len(fig.axes) == 1 and 82 < low < 83 and 84 < high < 85  # the 1-point drop fills the axis
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [800.0, 1100.0, 1500.0]
    assert [t.get_text() for t in fig.axes[0].texts] == ["r=0: +0.0", "r=4: -0.5", "r=8: -1.0"]
    plt.close(fig)


def test_group_boundaries_are_drawn_between_different_groups_only():
    groups = torch.tensor([0, 0, 1, 1,
                           0, 0, 1, 1,
                           2, 2, 2, 2,
                           2, 2, 2, 2])
    fig, ax = plt.subplots()
    visualize.draw_group_boundaries(ax, groups, patch_size=4)
    # vertical edges between columns 1|2 in rows 0-1 (2), horizontal edges between rows 1|2 in all 4 columns (4)
    assert len(ax.get_lines()) == 6
    plt.close(fig)


def test_transfer_figure_shows_standard_errors_and_keeps_its_legends_off_the_data():
    results = {50: {"linear probe": [0.3, 0.3, 0.3], "fine-tuning": [0.5, 0.6, 0.7], "from scratch": [0.1] * 3},
               500: {"linear probe": [0.4] * 3, "fine-tuning": [0.8, 0.8, 0.8], "from scratch": [0.1] * 3}}
    curve = {"steps": [10, 20], "test_acc": [[0.2, 0.6], [0.2, 0.8]], "train_images": 500, "batch_size": 100}
    fig = visualize.plot_transfer(results, 10, 200, 64, curve)
    left, right = fig.axes
    bars = {bar.get_label(): [float(seg[1][1] - seg[0][1]) for seg in bar.lines[2][0].get_segments()]
            for bar in left.containers}
    assert bars["fine-tuning, 200 steps"][0] == pytest.approx(2 * 10 / 3 ** 0.5)  # std 10 points, 3 seeds
    assert bars["from scratch, 20 steps of 100"] == pytest.approx([20.0])  # std 14.1 points over 2 seeds: +-10
    curve_line = right.get_lines()[0]
    assert list(curve_line.get_xdata()) == [1.0, 2.0] and list(curve_line.get_ydata()) == pytest.approx([20.0, 70.0])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    plt.close(fig)


def test_inside_the_model_figures_number_their_panels_and_colour_the_similarities_there_are():
    torch.manual_seed(0)
    fig = visualize.plot_embedding_filters(torch.randn(32, 3, 4, 4), count=14)
    assert [ax.get_title() for ax in fig.axes[:14]] == [str(k) for k in range(1, 15)]
    plt.close(fig)
    positions = torch.randn(16, 8) + 3.0  # similar embeddings: every cosine well above 0
    low = visualize.position_similarity(positions).min().item()
    fig = visualize.plot_position_similarity(positions)
    assert fig.axes[0].images[0].get_clim() == (math.floor(10 * low) / 10, 1)  # not -1..1: the spread shows
    plt.close(fig)


def test_merged_patches_name_each_image_s_class():
    images, groups = torch.rand(2, 3, 8, 8), {4: torch.tensor([[0, 0, 1, 1]] * 2)}
    fig = visualize.plot_merged_patches(images, groups, patch_size=4, labels=["cat", "ship"])
    assert [fig.axes[0].get_title(), fig.axes[2].get_title()] == ["cat", "ship"]
    plt.close(fig)
