"""Plot functions return the artists they drew; the tests check those objects."""
import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from analysis import plotting
from analysis.plotting import (Portrait, plot_ghosts, plot_points, plot_portrait,
                               plot_speed_heatmap, plot_timeline, plot_trajectories,
                               save_figure)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


def _portrait_2d(**changes):
    xs = np.linspace(-2, 2, 30)
    ys = np.linspace(-1, 1, 20)
    gx, gy = np.meshgrid(xs, ys)
    velocity = np.stack([-gx, gy], axis=-1)  # a saddle at the origin
    base = dict(epoch=7, loss=0.0123, labels=("PC1", "PC2"),
                limits=np.array([[-2.0, 2.0], [-1.0, 1.0]]),
                points=np.array([[0.0, 0.0], [1.0, 0.5], [-1.0, -0.5]]),
                kinds=np.array(["saddle", "stable", "stable"]),
                ghosts=np.array([[0.5, -0.5]]), ghost_directions=np.array([[0.0, 2.0]]),
                slow_regions=(np.array([[-1.5, 0.8], [-1.0, 0.8], [-0.5, 0.8]]),),
                trajectories=np.cumsum(np.full((3, 10, 2), 0.05), axis=1),
                grid=(xs, ys), grid_speed=0.5 * np.sum(velocity ** 2, axis=-1),
                grid_velocity=velocity, title="2 stable · 1 saddle")
    base.update(changes)
    return Portrait(**base)


def test_agg_backend_and_only_plotting_imports_matplotlib():
    assert matplotlib.get_backend().lower() == "agg"
    offenders = []
    for package in ("analysis", "fixedpoints", "checkpoints"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "plotting.py" and package == "analysis":
                continue
            text = path.read_text()
            if re.search(r"^\s*(import|from)\s+matplotlib", text, flags=re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_portrait_2d_draws_every_layer():
    portrait = _portrait_2d()
    artists = plot_portrait(portrait)
    (ax,) = artists["axes"]
    assert set(artists["points"]) == {"stable", "saddle"}
    np.testing.assert_allclose(artists["points"]["stable"].get_offsets(),
                               [[1.0, 0.5], [-1.0, -0.5]])
    np.testing.assert_allclose(artists["points"]["saddle"].get_offsets(), [[0.0, 0.0]])
    np.testing.assert_allclose(artists["ghosts"]["markers"].get_offsets(), [[0.5, -0.5]])
    (arrow,) = artists["ghosts"]["directions"]
    # the slow-direction arrow is vertical (direction (0, 2)) and centred on the ghost
    (x1, y1), (x0, y0) = arrow.xy, arrow.xyann
    assert abs(x1 - x0) < 1e-12 and y1 > y0 and abs((y0 + y1) / 2 + 0.5) < 1e-12
    assert artists["heatmap"]["mesh"].norm.__class__.__name__ == "LogNorm"
    assert artists["flow"] is not None
    assert len(artists["regions"]) == 1
    lines = artists["trajectories"]["lines"]
    assert len(lines.get_segments()) == 3 * 9
    assert ax.get_xlim() == (-2.0, 2.0) and ax.get_ylim() == (-1.0, 1.0)
    title = ax.get_title(loc="left")
    assert title.startswith("epoch 7 · loss 0.0123") and "1 saddle" in title
    labels = [t.get_text() for t in artists["legend"].get_texts()]
    assert labels == ["stable", "saddle", "ghost (↔ slow direction)", "slow region",
                      "trajectories"]


def test_portrait_without_grid_or_extras():
    portrait = _portrait_2d(grid=None, grid_speed=None, grid_velocity=None, ghosts=np.empty(
        (0, 2)), ghost_directions=np.empty((0, 2)), slow_regions=(), trajectories=None,
        loss=math.nan)
    artists = plot_portrait(portrait)
    assert artists["heatmap"] is None and artists["flow"] is None
    assert artists["trajectories"] is None and artists["ghosts"]["markers"] is None
    assert artists["axes"][0].get_title(loc="left").startswith("epoch 7\n")  # no NaN loss


def test_portrait_1d_has_velocity_and_time_panels():
    xs = np.linspace(-1, 1, 101)
    velocity = np.tanh(2 * xs + 0.4) - xs
    traj = np.linspace(-0.9, 0.9, 5)[:, None, None] * np.ones((5, 40, 1))
    portrait = Portrait(epoch=1, loss=0.5, labels=("κ",), limits=np.array([[-1.0, 1.0]]),
                        points=np.array([[0.96], [-0.2]]), kinds=np.array(["stable", "saddle"]),
                        ghosts=np.array([[-0.7]]), ghost_directions=np.array([[1.0]]),
                        trajectories=traj, grid=(xs,), grid_speed=0.5 * velocity ** 2,
                        grid_velocity=velocity, time="continuous")
    artists = plot_portrait(portrait)
    top, bottom = artists["axes"]
    np.testing.assert_allclose(artists["velocity"]["line"].get_ydata(), velocity)
    assert top.get_ylabel() == "dκ/dt"
    np.testing.assert_allclose(artists["points"]["stable"].get_offsets(), [[0.96, 0.0]])
    assert artists["heatmap"]["mesh"] is not None
    assert bottom.get_ylabel() == "step" and bottom.get_xlabel() == "κ"
    discrete = plot_portrait(Portrait(**{**portrait.__dict__, "time": "discrete"}))
    assert discrete["axes"][0].get_ylabel() == "Δκ per step"


def test_trajectories_skip_nan_and_point_their_arrow_forward():
    traj = np.zeros((2, 6, 2))
    traj[0, :, 0] = np.arange(6)          # moves right
    traj[1, :, 1] = -np.arange(6.0)       # moves down
    traj[1, 4:] = np.nan                  # ends early
    artists = plot_trajectories(traj)
    assert len(artists["lines"].get_segments()) == 5 + 3
    heads = artists["arrows"]
    np.testing.assert_allclose(heads.U, [1.0, 0.0], atol=1e-12)  # the first moves right
    np.testing.assert_allclose(heads.V, [0.0, -1.0], atol=1e-12)  # the second moves down
    np.testing.assert_allclose(heads.X, [2.0, 0.0])  # halfway along each path
    np.testing.assert_allclose(heads.Y, [0.0, -1.0])
    with pytest.raises(ValueError, match=r"\(b, T, d\)"):
        plot_trajectories(np.zeros((3, 2)))


def test_points_reject_unknown_kinds():
    with pytest.raises(ValueError, match="unknown point kinds"):
        plot_points(np.zeros((1, 2)), np.array(["wobbly"]))


def test_ghost_arrow_keeps_its_length_at_any_aspect():
    import matplotlib.pyplot as plt
    _, ax = plt.subplots()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1)
    artists = plot_ghosts(np.array([[50.0, 0.5]]), np.array([[1.0, 0.01]]), ax)
    (arrow,) = artists["directions"]
    (x1, y1), (x0, y0) = arrow.xy, arrow.xyann
    # direction kept in data space; total length 8% of the axes in axis units
    assert np.isclose((y1 - y0) / (x1 - x0), 0.01)
    assert np.isclose(np.hypot((x1 - x0) / 100, (y1 - y0) / 1), 0.08)


def test_speed_heatmap_log_scale_range():
    xs, ys = np.linspace(0, 1, 5), np.linspace(0, 1, 4)
    q = np.outer(np.arange(1, 5), np.arange(1, 6)).astype(float)
    q[0, 0] = 0.0  # a fixed point on the grid
    artists = plot_speed_heatmap((xs, ys), q)
    norm = artists["mesh"].norm
    assert norm.vmax == 20.0 and norm.vmin == pytest.approx(2.0)  # min positive speed
    assert artists["colorbar"] is not None
    wide = np.logspace(-10, 0, 20).reshape(4, 5)  # ten decades of speed
    far = plot_speed_heatmap((xs, ys), wide, decades=3, colorbar=False)["mesh"].norm
    assert far.vmax == 1.0 and far.vmin == pytest.approx(1e-3)  # three decades shown


def test_timeline_artists():
    epochs = [0, 10, 20, 30]
    artists = plot_timeline(epochs, loss=[1.0, 0.9, 0.05, 0.01],
                            counts={"stable": [1, 1, 2, 2], "saddle": [0, 0, 1, 1],
                                    "ghost": [0, 1, 0, 0]},
                            events=[(20, "saddle_node"), (10, "ghost_appeared"),
                                    (20, "ghost_vanished")], drop_epoch=15.0, failed=[40])
    top, middle, bottom = artists["axes"]
    np.testing.assert_allclose(artists["loss"].get_ydata(), [1.0, 0.9, 0.05, 0.01])
    assert top.get_yscale() == "log"
    assert set(artists["events"]) == {"saddle_node", "ghost_appeared", "ghost_vanished"}
    np.testing.assert_allclose(artists["events"]["saddle_node"].get_offsets()[:, 0], [20])
    assert [t.get_text() for t in middle.get_yticklabels()] == [
        "saddle node", "ghost appeared", "ghost vanished"]
    np.testing.assert_allclose(artists["counts"]["stable"].get_ydata(), [1, 1, 2, 2])
    assert artists["drop"].get_xdata()[0] == 15.0
    assert len(artists["event_marks"]) == 2  # epochs 10 and 20


def test_timeline_draws_the_restructuring_rate_under_the_loss_and_shades_episodes():
    artists = plot_timeline([0, 10, 20, 30], loss=[1.0, 0.9, 0.05, 0.01],
                            counts={"stable": [1, 1, 2, 2]}, events=[(20, "saddle_node")],
                            drop_epoch=15.0, rate=([0, 10, 20, 30], [0.01, 0.3, 0.02]),
                            episodes=[(10, 20)])
    top, rate_axis, middle, bottom = artists["axes"]
    assert rate_axis.get_position().y0 > middle.get_position().y0      # under the loss
    assert top.get_position().y0 > rate_axis.get_position().y0
    np.testing.assert_allclose(artists["rate"].get_data().values, [0.01, 0.3, 0.02])
    np.testing.assert_allclose(artists["rate"].get_data().edges, [0, 10, 20, 30])
    assert len(artists["episodes"]) == 2                                # loss and rate axes
    assert rate_axis.lines and rate_axis.lines[0].get_xdata()[0] == 15.0   # the drop too


def test_timeline_without_loss_or_events():
    artists = plot_timeline([0, 1], counts={"stable": [1, 1]})
    assert artists["loss"] is None and artists["events"] == {} and artists["drop"] is None
    texts = [t.get_text() for t in artists["axes"][0].texts]
    assert any("no training loss" in t for t in texts)


def test_save_figure_is_atomic_and_keeps_metadata(tmp_path):
    from PIL import Image
    artists = plot_portrait(_portrait_2d())
    path = save_figure(artists["figure"], tmp_path / "sub" / "p.png",
                       metadata={"ghostscope-key": "abc"})
    with Image.open(path) as image:
        assert image.text["ghostscope-key"] == "abc"
        assert image.size[0] > 400
    assert [p.name for p in path.parent.iterdir()] == ["p.png"]
    assert not plotting.plt.fignum_exists(artists["figure"].number)  # closed
