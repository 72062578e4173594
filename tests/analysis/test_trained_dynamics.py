"""Train with checkpoints.train, then analyze the trained weights with fixedpoints.

- The demo recipe (a 3-bit flip-flop leaky RNN, 100 units, Adam) trains to full accuracy
  and has exactly 8 stable fixed points, one per memory (the 8 sign patterns of the readout),
  plus the cube's 12 + 6 + 1 saddles.
- A rank-one network's fixed points in N dimensions are exactly the roots of its reduced 1-D
  flow dκ/dt = −κ + n·tanh(mκ + b) (checked against a root scan of that function).
"""
import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from checkpoints.models import RankOneRNN, build_model
from checkpoints.tasks import get_task
from checkpoints.train import FLIPFLOP_DEMO, train
from fixedpoints import find_fixed_points, from_module, sample_initial_states


@pytest.fixture(scope="module")
def flipflop(tmp_path_factory):
    out = tmp_path_factory.mktemp("flipflop") / "run"
    result = train(out_dir=out, **FLIPFLOP_DEMO)
    # rebuild the final model from the files, as the reader would
    config = json.loads((out / "config.json").read_text())
    model = build_model(config["architecture"], **config["model"])
    state = torch.load(out / f"model_epoch{FLIPFLOP_DEMO['epochs']}.pt", weights_only=True)
    model.load_state_dict(state, strict=True)
    task = get_task(**config["task"])
    dynamics = from_module(model)
    inputs, _, _ = task.sample(64, torch.Generator().manual_seed(99), dtype=torch.float64)
    initial = sample_initial_states(dynamics, 1024, inputs=inputs.numpy(), noise=0.1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = find_fixed_points(dynamics, initial)
    return dict(result=result, model=model, task=task, points=points)


def test_flipflop_trains_to_full_accuracy(flipflop):
    # how long it takes is a figure for bench/, not a test: this shared machine's load varies
    task, model = flipflop["task"], flipflop["model"]
    long_task = get_task("flipflop", n_bits=3, trial_steps=300, pulse_prob=0.02)
    for t in (task, long_task):
        inputs, targets, mask = t.sample(256, torch.Generator().manual_seed(7), dtype=torch.float32)
        with torch.no_grad():
            outputs, _ = model(inputs)
        assert t.accuracy(outputs, targets, mask) == 1.0


def test_flipflop_has_exactly_eight_stable_fixed_points_one_per_memory(flipflop):
    points, model = flipflop["points"], flipflop["model"]
    stable = points.of_kind("stable")
    assert len(stable) == 8, points.counts()
    assert (np.abs(stable.eigvals) < 1).all()
    with torch.no_grad():
        readout = model.readout(torch.as_tensor(stable.x, dtype=torch.float32)).numpy()
    assert (np.abs(readout) > 0.5).all(), readout
    patterns = {tuple(np.sign(row).astype(int)) for row in readout}
    assert patterns == set(itertools.product((-1, 1), repeat=3))


def test_flipflop_saddles_complete_the_cube(flipflop):
    points = flipflop["points"]
    assert points.index_counts() == {0: 8, 1: 12, 2: 6, 3: 1}
    assert len(points.of_kind("slow")) == 0


def _reduced_roots(m, n, b):
    def g(k):
        return -k + np.tanh(k * m + b) @ n

    grid = np.linspace(-10, 10, 20001)
    values = np.array([g(k) for k in grid])
    idx = np.nonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0)[0]
    roots = [brentq(g, grid[i], grid[i + 1], xtol=1e-13) for i in idx]
    roots = np.sort(np.concatenate([roots, grid[values == 0.0]]))  # exact zeros on the grid
    slopes = np.array([-1 + ((1 - np.tanh(r * m + b) ** 2) * m) @ n for r in roots])
    return roots, slopes


def test_rank_one_fixed_points_are_the_roots_of_the_reduced_flow():
    rng = np.random.default_rng(0)
    n_states = 20
    v = rng.standard_normal(n_states)
    v /= np.linalg.norm(v)
    m, n, b = 2.0 * v, 1.5 * v, 0.05 * rng.standard_normal(n_states)
    model = RankOneRNN(n_states=n_states)
    with torch.no_grad():
        model.m.copy_(torch.as_tensor(m))
        model.n.copy_(torch.as_tensor(n))
        model.b.copy_(torch.as_tensor(b))
    roots, slopes = _reduced_roots(m, n, b)
    assert len(roots) == 3 and (np.sign(slopes) == [-1, 1, -1]).all()

    dynamics = from_module(model)
    initial = sample_initial_states(dynamics, 256, n_steps=40, init_scale=1.0, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = find_fixed_points(dynamics, initial)
    kappa = np.sort(points.x @ n)
    np.testing.assert_allclose(kappa, roots, atol=1e-8)
    order = np.argsort(points.x @ n)
    assert [points.kind[i] for i in order] == ["stable", "saddle", "stable"]
    # the one non-trivial eigenvalue of the map at each point is 1 + α·g'(κ)
    for i, slope in zip(order, slopes):
        top = points.eigvals[i][np.argmax(np.abs(points.eigvals[i] - 0.5))]
        assert top.real == pytest.approx(1 + 0.5 * slope, abs=1e-8)
