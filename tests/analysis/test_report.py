"""Portraits, timeline, GIF, report.html: closed-form heatmaps, caching, a self-contained page."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from analysis import analyze_checkpoint, analyze_series
from analysis.projection import ProjectionFitter, latent_basis
from analysis.html import write_html
from analysis.portraits import PortraitOptions, build_portrait, portrait_trajectories
from analysis.report import write_gif, write_report
from analysis.sources import ModelSource
from fixedpoints import from_module, systems

B_VALUES = [0.40, 0.45, 0.50, 0.55, 0.60]
SMALL = PortraitOptions(n_trajectories=4, n_steps=30, grid=20, dpi=50)  # fast drawings


@pytest.fixture(scope="module")
def tanh_series():
    """The tanh map swept through its saddle-node (b_c ≈ 0.533): five epochs."""
    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate(B_VALUES)]
    return series, analyze_series(series, n_initial=48)


@pytest.fixture(scope="module")
def tanh_report(tanh_series, tmp_path_factory):
    series, analysis = tanh_series
    out = tmp_path_factory.mktemp("tanh_report")
    return out, write_report(analysis, out, models=dict(series), title="tanh <map>",
                             source="synthetic & swept")


def _fit(*pairs):
    fitter = ProjectionFitter()
    for states, basis, points in pairs:
        fitter.add(states, basis, points=points)
    return fitter.fit()


def test_identity_heatmap_is_the_map_velocity(tanh_series):
    series, analysis = tanh_series
    result, dynamics = analysis.results[1], series[1][1]
    projection = _fit((np.linspace(-1, 1, 50)[:, None], None, result.fixed_points.x))
    assert projection.kind == "identity"
    portrait = build_portrait(result, projection, dynamics=dynamics, grid=40)
    xs = portrait.grid[0]
    expected = np.tanh(2.0 * xs + B_VALUES[1]) - xs  # F(x) - x in closed form
    np.testing.assert_allclose(portrait.grid_velocity, expected, atol=1e-12)
    np.testing.assert_allclose(portrait.grid_speed, 0.5 * expected ** 2, atol=1e-12)
    # the fixed points sit where the closed-form velocity vanishes
    for x in portrait.points[:, 0]:
        assert abs(np.tanh(2.0 * x + B_VALUES[1]) - x) < 1e-9


def test_rank_one_latent_heatmap_matches_the_closed_form():
    from checkpoints.models import RankOneRNN

    torch.manual_seed(3)
    model = RankOneRNN(40).double()
    with torch.no_grad():
        model.m.mul_(8.0)  # bistable in κ
    result = analyze_checkpoint(model, n_initial=48)
    basis = latent_basis(model)
    dynamics = from_module(model)
    states = dynamics.simulate(torch.randn(8, 40, dtype=torch.float64) * 0.5, 30).numpy()
    projection = _fit((states, basis, result.fixed_points.x))
    assert projection.kind == "latent" and projection.n_components == 1
    portrait = build_portrait(result, projection, basis=basis, dynamics=dynamics, grid=30)
    kappa = torch.as_tensor(portrait.grid[0])
    with torch.no_grad():
        closed = model.alpha * model.kappa_velocity(kappa).numpy()  # Δκ per map step
    np.testing.assert_allclose(portrait.grid_velocity, closed, atol=1e-12)
    np.testing.assert_allclose(portrait.points[:, 0], result.fixed_points.x @ basis[0])


def test_rank_two_latent_velocity_is_exact():
    from checkpoints.models import LeakyRNN

    torch.manual_seed(4)
    model = LeakyRNN(2, 30, 1, rank=2, gain=2.0).double()
    u = np.array([0.3, -0.2])
    result = analyze_checkpoint(model, n_initial=48, input=tuple(u))
    basis = latent_basis(model)
    dynamics = from_module(model, input=u)
    states = dynamics.simulate(torch.randn(6, 30, dtype=torch.float64), 20).numpy()
    projection = _fit((states, basis, result.fixed_points.x))
    portrait = build_portrait(result, projection, basis=basis, dynamics=dynamics, grid=12)
    xs, ys = portrait.grid
    kappa = np.stack(np.meshgrid(xs, ys), axis=-1)
    with torch.no_grad():
        drive = (torch.as_tensor(kappa) @ model.S_l.T + model.W_in(torch.as_tensor(u)))
        closed = model.alpha * (-kappa + (torch.tanh(drive) @ model.S_r.T).numpy())
    np.testing.assert_allclose(portrait.grid_velocity, closed, atol=1e-10)
    assert portrait.grid_speed.shape == (12, 12)


def test_trajectories_start_near_the_points(tanh_series):
    series, analysis = tanh_series
    result, dynamics = analysis.results[0], series[0][1]
    traj = portrait_trajectories(dynamics, result, n_trajectories=5, n_steps=30)
    n_points = len(result.fixed_points)
    kinds = list(result.fixed_points.kind)
    anchored = 2 * sum(k in ("saddle", "unstable") for k in kinds) + sum(
        k == "stable" for k in kinds)
    assert traj.shape == (anchored + 5, 31, 1)
    starts = traj[:anchored, 0, 0]
    distance = np.min(np.abs(starts[:, None] - result.fixed_points.x[:, 0][None]), axis=1)
    assert np.all(distance < 0.1 * result.scale + 1e-12) and n_points == 3
    np.testing.assert_allclose(traj[:, 1, 0], np.tanh(2 * traj[:, 0, 0] + B_VALUES[0]))


def test_report_files(tanh_report):
    out, html_path = tanh_report
    assert html_path == out / "report.html"
    for e in range(5):
        assert (out / "portraits" / f"epoch_{e:04d}.png").stat().st_size > 5000
    assert (out / "timeline.png").exists() and (out / "projection.json").exists()
    from PIL import Image
    with Image.open(out / "portraits.gif") as gif:
        assert gif.n_frames == 5 and gif.info.get("loop") == 0
    html = html_path.read_text()
    assert html.count("<img data-epoch=") == 5 and html.count("data:image/png;base64,") == 6
    assert "<title>tanh &lt;map&gt;</title>" in html and "synthetic &amp; swept" in html
    assert "saddle_node" in html  # the event between b = 0.50 and 0.55 is in the table
    assert "found from" in html and "fixed points certified" in html  # issue 12
    # ... as a sentence, the JSON detail staying in events.csv / events.json
    assert "collided and vanished" in html and "&quot;direction&quot;" not in html
    assert not any(s in html for s in ("http://", "https://", "<link ", "src=\"//"))


def test_portraits_are_reused_then_redrawn_when_something_changes(tanh_series, tmp_path):
    series, analysis = tanh_series
    out = tmp_path / "r"
    write_report(analysis, out, models=dict(series), options=SMALL)
    pngs = sorted((out / "portraits").glob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in pngs]
    write_report(analysis, out, models=dict(series), options=SMALL)
    assert [p.stat().st_mtime_ns for p in pngs] == stamps  # nothing to redraw
    write_report(analysis, out, models=dict(series), force=True, options=SMALL)
    assert all(p.stat().st_mtime_ns != s for p, s in zip(pngs, stamps))
    stamps = [p.stat().st_mtime_ns for p in pngs]
    fewer = replace(analysis, results=analysis.results[:3], events=())  # a new projection
    write_report(fewer, out, models=dict(series), options=SMALL)
    assert all(p.stat().st_mtime_ns != s for p, s in zip(pngs[:3], stamps[:3]))
    assert (out / "report.html").read_text().count("<img data-epoch=") == 3


def test_report_without_models_and_with_a_broken_one(tanh_series, tmp_path):
    series, analysis = tanh_series
    plain = write_report(analysis, tmp_path / "plain", options=SMALL)  # points only
    assert plain.read_text().count("<img data-epoch=") == 5
    broken = {e: ModelSource(path=str(tmp_path / "missing.pt")) for e, _ in series}
    html = write_report(analysis, tmp_path / "broken", models=broken, options=SMALL).read_text()
    assert html.count("<img data-epoch=") == 5  # still drawn, from the points
    assert "portrait_problems" in html and "missing.pt" in html


def test_counts_include_ghosts_and_regions(tanh_series):
    _, analysis = tanh_series
    counts = analysis.results[0].counts()
    assert counts["stable"] == 2 and {"ghost", "slow_region"} <= set(counts)


def test_gif_subsamples_frames(tanh_report, tmp_path):
    out, _ = tanh_report
    pngs = sorted((out / "portraits").glob("*.png"))
    gif = write_gif(pngs * 4, tmp_path / "a.gif", max_frames=7, width=200)
    from PIL import Image
    with Image.open(gif) as image:
        assert image.n_frames == 7 and image.width == 200
    assert write_gif([], tmp_path / "none.gif") is None


def test_html_escapes_and_handles_no_frames(tmp_path):
    page = write_html(tmp_path / "r.html", title="t", subtitle="s", facts=[("a", "<b>")],
                      frames=[], timeline=None,
                      events=[{"epoch": 1.0, "epoch_before": 0, "epoch_after": 1,
                               "kind": "<script>alert(1)</script>", "points": ["x"],
                               "lead_time": None, "detail": {"k": "<i>"}}],
                      failed=[{"epoch": 2, "source": "f.pt", "reason": "bad & broken"}],
                      details={"v": 1}).read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "No epoch could be analyzed" in page and "bad &amp; broken" in page
    assert page.count("<script>") == 1  # only the page's own


def test_options_change_the_drawing(tanh_series, tmp_path):
    series, analysis = tanh_series
    write_report(analysis, tmp_path / "o", models=dict(series),
                 options=replace(SMALL, dpi=60, gif_frames=2))
    from PIL import Image
    with Image.open(tmp_path / "o" / "portraits" / "epoch_0000.png") as image:
        assert image.width < 450  # 60 dpi instead of 100
    with Image.open(tmp_path / "o" / "portraits.gif") as gif:
        assert gif.n_frames == 2


def test_the_report_reads_its_inputs_through_their_declared_types():
    """No getattr/hasattr probing of the project's own results in the report's modules (what is
    left reads a user's module's optional initial_state, and PortraitOptions its own fields)."""
    import ast
    from pathlib import Path

    import analysis

    here = Path(analysis.__file__).parent
    probes = {}
    for name in ("report.py", "portraits.py", "html.py"):
        tree = ast.parse((here / name).read_text())
        probes[name] = sorted(ast.unparse(node.args[0]) for node in ast.walk(tree)
                              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                              and node.func.id in ("getattr", "hasattr"))
    assert probes["report.py"] == probes["html.py"] == []
    assert set(probes["portraits.py"]) == {"model", "self"} and probes["portraits.py"].count(
        "model") == 1
