"""Initial states reach every basin: subspace seeds and continuation across checkpoints."""
import numpy as np
import pytest
import torch

from analysis import analyze_checkpoint, analyze_series
from fixedpoints import ContinuousDynamics, sample_initial_states, subspace_seeds
from fixedpoints.systems import tanh_saddle_node_b

ROOTS = (-4.5, -3.5, 1.0)   # stable, index 1, stable


def _cubic():
    """dx/dt = −(x + 4.5)(x + 3.5)(x − 1)/40: stable points at −4.5 and 1, a saddle at −3.5."""
    a, b, c = ROOTS

    def flow(x, u):
        return -(x - a) * (x - b) * (x - c) / 40.0

    return ContinuousDynamics(flow, 1, dt=0.05, name="cubic")


def test_subspace_seeds_span_a_symmetric_box_beyond_the_states():
    rng = np.random.default_rng(0)
    states = np.c_[rng.uniform(1.0, 3.0, 200), np.zeros(200)]      # one side only, on a line
    seeds = subspace_seeds(states, 11, extend=1.0)
    lo, hi = states[:, 0].min(), states[:, 0].max()
    assert seeds.shape == (11, 2)
    np.testing.assert_allclose(seeds[:, 1], 0.0, atol=1e-12)     # stays in the subspace
    np.testing.assert_allclose([seeds[:, 0].min(), seeds[:, 0].max()],
                               [lo - (hi - lo), hi + (hi - lo)], rtol=1e-12)
    assert subspace_seeds(np.ones((5, 3)), 8).shape == (0, 3)     # no spread: nothing
    with pytest.raises(ValueError, match="extend"):
        subspace_seeds(states, 4, extend=0.0)


def test_a_basin_no_trajectory_enters_still_yields_all_three_fixed_points():
    dyn = _cubic()
    # every random-start trajectory ends in the basin of x = 1
    visited = sample_initial_states(dyn, 256, n_steps=400, n_trajectories=64, seed=0)
    ends = dyn.simulate(torch.as_tensor(visited), 20000)[:, -1, 0].numpy()
    assert np.all(np.abs(ends - 1.0) < 1e-3)
    without = analyze_checkpoint(dyn, subspace_seeds=0, ghosts=False, topology=False)
    assert sorted(np.round(without.fixed_points.x[:, 0], 6)) == [1.0]
    found = analyze_checkpoint(dyn, ghosts=False, topology=False)
    np.testing.assert_allclose(np.sort(found.fixed_points.x[:, 0]), ROOTS, atol=1e-6)
    index = dict(zip(np.round(found.fixed_points.x[:, 0], 3), found.fixed_points.n_unstable))
    assert index == {-4.5: 0, -3.5: 1, 1.0: 0}       # in 1-D the index-1 point is "unstable"


# ------------------------------------------------------------------------ a fold swept through
W = 2.0
B_C = tanh_saddle_node_b(W)          # ≈ 0.5328: three fixed points below, one above
BIASES = (0.10, 0.20, 0.30, 0.40, 0.48, 0.58, 0.66, 0.75)
FACTORY = '''
import torch
from torch import nn


class Latent(nn.Module):
    """dκ/dt = −κ + w·tanh(κ) + b in units y = 10 κ (a user's own model, no input)."""

    time = "continuous"
    n_states = 1
    n_inputs = 0

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([0.0], dtype=torch.float64))

    def velocity(self, x, u=None):
        return -x + 10.0 * (self.w * torch.tanh(x / 10.0) + self.b)


def build():
    return Latent()
'''


def _expect_one_fold(result):
    bracket = [(e.epoch_before, e.epoch_after) for e in result.events_of("saddle_node")]
    assert bracket == [(4, 5)], [e.summary() for e in result.events]
    assert not result.events_of("birth", "death", "stability_change", "pitchfork")
    counts = [int(np.sum(r.fixed_points.kind != "slow")) for r in result.results]
    assert counts == [3, 3, 3, 3, 3, 1, 1, 1]


def test_a_fold_of_a_factory_model_gives_one_saddle_node(tmp_path):
    assert BIASES[4] < B_C < BIASES[5]
    (tmp_path / "latent.py").write_text(FACTORY)
    run = tmp_path / "run"
    run.mkdir()
    for epoch, b in enumerate(BIASES):
        torch.save({"w": torch.tensor([W], dtype=torch.float64),
                    "b": torch.tensor([b], dtype=torch.float64)}, run / f"model_epoch{epoch}.pt")
    result = analyze_series(run, model=f"{tmp_path / 'latent.py'}:build", ghosts=False)
    _expect_one_fold(result)
    # the basin of the negative node is out of reach of the random starts (y0 ~ N(0, 1), the
    # saddle at y < -1.6): without the subspace seeds and continuation the fold is misplaced
    blind = analyze_series(run, model=f"{tmp_path / 'latent.py'}:build", ghosts=False,
                           subspace_seeds=0, continuation=False)
    assert [(e.epoch_before, e.epoch_after) for e in blind.events_of("saddle_node")] != [(4, 5)]


def test_a_fold_of_the_built_in_rank_one_rnn_gives_one_saddle_node():
    from checkpoints.models import RankOneRNN

    series = []
    for epoch, b in enumerate(BIASES):
        model = RankOneRNN(n_states=1).double()
        with torch.no_grad():
            model.m.fill_(1.0)      # κ = n·x, dκ/dt = −κ + n·tanh(κ + b): with u = κ + b,
            model.n.fill_(W)        # du/dt = −u + w·tanh(u) + b
            model.b.fill_(b)
        series.append((epoch, model))
    _expect_one_fold(analyze_series(series, ghosts=False))


def test_the_fold_gives_the_same_events_for_every_finder_seed(tmp_path):
    (tmp_path / "latent.py").write_text(FACTORY)
    run = tmp_path / "run"
    run.mkdir()
    for epoch, b in enumerate(BIASES):
        torch.save({"w": torch.tensor([W], dtype=torch.float64),
                    "b": torch.tensor([b], dtype=torch.float64)}, run / f"model_epoch{epoch}.pt")
    keys = []
    for seed in (0, 1, 2):
        result = analyze_series(run, model=f"{tmp_path / 'latent.py'}:build", seed=seed)
        keys.append(sorted((e.kind, e.epoch_before, e.epoch_after) for e in result.events))
    assert keys[0] == keys[1] == keys[2]
    assert ("saddle_node", 4, 5) in keys[0]


@pytest.mark.slow
@pytest.mark.parametrize("run", ["demo", "flipflop"])
def test_events_agree_over_three_finder_seeds_on_trained_runs(run, tmp_path):
    """bench/events.py's figure as a test: >= 95% of the events (kind and bracketing
    checkpoints) are the same for finder seeds 0, 1 and 2."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "events.py"
    spec = importlib.util.spec_from_file_location("bench_events", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    directory = bench.train_run(run, tmp_path)
    keys = []
    for seed in (0, 1, 2):
        result = analyze_series(directory, seed=seed, run=dict(jobs=2))
        keys.append([(e.kind, e.epoch_before, e.epoch_after) for e in result.events])
    pairwise, strict = bench.agreement(keys)
    assert pairwise >= 0.95 and strict >= 0.95, (pairwise, strict, keys)


def test_runs_that_blow_up_are_cut_before_they_overflow():
    # dy/dt = r + y²: every run passes the ghost at y = 0 and reaches inf in finite time
    # (by t ≈ π/√r = 31 of the 100 unit steps); their spread used to overflow and turn every
    # noisy sample into inf
    from fixedpoints.initial import _ESCAPE
    from fixedpoints.systems import saddle_node

    dyn = saddle_node(0.01, n_states=2)
    x0 = np.random.default_rng(0).standard_normal((64, 2))
    states, spread = sample_initial_states(dyn, 128, x0=x0, n_steps=100, noise=0.01, seed=0,
                                           return_spread=True)
    assert np.isfinite(states).all() and np.isfinite(spread)
    reach = _ESCAPE * np.linalg.norm(x0, axis=1).max()
    assert np.linalg.norm(states, axis=1).max() <= reach * 1.05   # noise may add a little
    # r < 0: the runs past the saddle at y = 0.1 blow up, the others settle on the node at
    # y = -0.1; with noise, the spread of those blown runs made every sample inf before
    dyn = saddle_node(-0.01, n_states=2)
    stable = sample_initial_states(dyn, 128, x0=x0, n_steps=100, noise=0.01, seed=0)
    assert np.isfinite(stable).all()
    assert np.abs(stable @ dyn.Q - [-0.1, 0.0]).max(1).min() < 0.01   # the node is sampled


@pytest.mark.parametrize("r", [0.01, -0.01])
def test_the_pure_saddle_node_normal_form_is_analyzed(r):
    from fixedpoints.systems import saddle_node

    dyn = saddle_node(r, n_states=2)
    result = analyze_checkpoint(dyn)
    y = result.fixed_points.x @ dyn.Q
    kinds = result.fixed_points.kind
    if r > 0:   # no fixed point: one ghost at y = 0, crossed in π/√r
        assert not np.isin(kinds, ["stable", "saddle", "unstable"]).any()
        assert len(result.ghosts) == 1
        np.testing.assert_allclose((result.ghosts.x @ dyn.Q)[0], [0.0, 0.0], atol=1e-8)
        np.testing.assert_allclose(result.ghosts.passage_time, [np.pi / np.sqrt(r)], rtol=1e-6)
    else:       # a stable node at y = -√|r| and a saddle at +√|r|
        assert sorted(kinds) == ["saddle", "stable"]
        np.testing.assert_allclose(y[kinds == "stable"][0], [-0.1, 0.0], atol=1e-9)
        np.testing.assert_allclose(y[kinds == "saddle"][0], [0.1, 0.0], atol=1e-9)
        assert len(result.ghosts) == 0
