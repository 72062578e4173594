"""SCIENCE.md's rank-one delayed-activation runs (ghost paper, Fig. 3/6), re-run with the trainer.

Setup: N = 100, α = 0.5, m, n ~ N(0, 1/N) (m drawn first), b = 0, x0 = −0.3·1, readout
sigmoid(10(κ − 1)), target 0 for 20 steps then 1 for 20, loss Σ(o − y)²/20, plain SGD, one
trial per epoch, torch float32, seed 40. The network closes in one dimension,
dκ/dt = g(κ) = −κ + n·tanh(mκ + b); its fixed points are the roots of g, found here by a scan
of that 1-D function (independent of the fixed-point finder).

Both runs train for minutes: ``pytest -m slow tests/checkpoints/test_paper_runs.py``.
"""
import numpy as np
import pytest
import torch
from scipy.optimize import brentq, minimize_scalar

from checkpoints.models import build_model
from checkpoints.train import train

pytestmark = pytest.mark.slow


def _reduced_flow(state):
    m, n, b = (state[k].double().numpy() for k in ("m", "n", "b"))

    def g(kappa):
        return -kappa + np.tanh(np.multiply.outer(kappa, m) + b) @ n

    def dg(kappa):
        return -1.0 + (1.0 - np.tanh(np.multiply.outer(kappa, m) + b) ** 2) @ (m * n)

    return g, dg


def _roots(state, lo=-15.0, hi=15.0, n_grid=300_001):
    """Roots of the reduced flow with their stability, from a sign-change scan + Brent."""
    g, dg = _reduced_flow(state)
    grid = np.linspace(lo, hi, n_grid)
    values = g(grid)
    crossings = np.nonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0)[0]
    roots = [brentq(g, grid[i], grid[i + 1], xtol=1e-12) for i in crossings]
    roots = np.sort(np.concatenate([roots, grid[values == 0.0]]))  # exact zeros on the grid
    return roots, dg(roots) < 0


def _ghosts(state, lo=-15.0, hi=15.0, n_grid=300_001, min_speed=1e-3):
    """Local minima of |g| that are not roots (|g| > min_speed): the ghost candidates."""
    g, _ = _reduced_flow(state)
    grid = np.linspace(lo, hi, n_grid)
    speed = np.abs(g(grid))
    interior = np.nonzero((speed[1:-1] < speed[:-2]) & (speed[1:-1] < speed[2:]))[0] + 1
    found = []
    for i in interior:
        res = minimize_scalar(lambda k: abs(float(g(np.array([k]))[0])),
                              bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                              options={"xatol": 1e-10})
        if res.fun > min_speed:
            found.append((float(res.x), float(res.fun)))
    return found


def test_seed40_lr002_gets_stuck_in_the_no_learning_zone(tmp_path):
    """SCIENCE.md: bistable near epoch 5,100 (≈ −3.9 stable, −1.0 saddle, +5.0 stable), the state
    on the wrong side, loss 1.0 and gradient exactly 0 from then on.

    Measured here (torch 2.13 CPU, float32): stuck from epoch 5,125 with fixed points
    −6.45 (stable), −0.81 (saddle), +7.20 (stable). The values after the erratic jumps of
    epochs 5,050–5,125 (gradient norms 3–7 at lr 0.02) depend on float rounding: float64
    gives −5.07 / −0.97 / +6.03, stuck from 5,122, and another host's float32 (an AVX-512
    machine, 2026-12-02) −7.23 / −0.498 / +7.70. So the test checks the structure and the
    stuck epoch, not the exact positions: a saddle between the two attractors, on the
    negative side as in the paper.
    """
    out = tmp_path / "lr002"
    result = train("delayed_activation", "rank_one_rnn", out, epochs=6000, lr=0.02,
                   optimizer="sgd", seed=40, save_every=500)
    losses, grads = result.losses, result.grad_norms
    stuck = (losses == 1.0) & (grads == 0.0)
    assert stuck[-1], f"final loss {losses[-1]}, gradient {grads[-1]}: not stuck"
    first = int(len(stuck) - np.argmin(stuck[::-1]))  # start of the final stuck stretch
    assert 4850 <= first <= 5350, f"stuck from epoch {first}; SCIENCE.md says near 5,100"
    assert losses[:4900].max() < 1.0 and grads[:4900].min() > 0, "plateau before: still learning"
    # weights frozen: the checkpoint after getting stuck equals the last one bit for bit
    frozen = torch.load(out / "model_epoch5500.pt", weights_only=True)
    final = torch.load(out / "model_epoch6000.pt", weights_only=True)
    assert all(torch.equal(frozen[k], final[k]) for k in final)

    roots, stable = _roots(final)
    assert len(roots) == 3, f"fixed points of the reduced flow: {roots}"
    assert stable.tolist() == [True, False, True]
    assert roots[0] < -2.0 and roots[0] < roots[1] < 0.0 and roots[2] > 2.0, roots
    # the trial's state settles on the wrong (negative, output-0) attractor
    model = build_model("rank_one_rnn")
    model.load_state_dict(final)
    model.double()
    with torch.no_grad():
        _, states = model(torch.zeros(1, 400, 0, dtype=torch.float64))
    kappa = float(model.kappa(states[:, -1]).detach())
    assert kappa == pytest.approx(roots[0], abs=1e-6)


def test_seed40_lr0003_drops_abruptly_near_epoch_33650(tmp_path):
    """SCIENCE.md: a plateau with one stable fixed point drifting from κ ≈ 0 to 0.5, an abrupt drop
    near epoch 33,650, then loss ≈ 0.02 with a large gradient, one stable fixed point near 3.5
    and a ghost near −1.5.

    Measured here (float32): loss first below 0.5 at epoch 33,641, 18 epochs after it was last
    above 0.95; the fixed point at 0.015 (epoch 5,000), 0.08 (20,000), 0.19 (30,000), 0.45
    (33,500); at epoch 35,000 loss 0.019 (mean 0.021 over the last 1,000 epochs), gradient norm
    2.9, stable fixed point 3.58, ghost at −1.58 with |dκ/dt| = 0.13.
    """
    out = tmp_path / "lr0003"
    result = train("delayed_activation", "rank_one_rnn", out, epochs=35000, lr=0.003,
                   optimizer="sgd", seed=40, save_every=5000)
    losses, grads = result.losses, result.grad_norms
    drop = int(np.argmax(losses < 0.5))
    assert losses[drop] < 0.5
    assert 33150 <= drop <= 34150, f"loss first below 0.5 at epoch {drop}; SCIENCE.md: ~33,650"
    assert losses[:33000].min() > 0.98, "plateau"
    last_high = int(np.nonzero(losses[:drop] > 0.95)[0][-1])
    assert drop - last_high <= 100, f"loss 0.95 -> 0.5 took {drop - last_high} epochs: not abrupt"

    previous = -np.inf
    for epoch in range(0, 30001, 5000):
        roots, stable = _roots(torch.load(out / f"model_epoch{epoch}.pt", weights_only=True))
        assert len(roots) == 1 and stable[0], (epoch, roots)
        assert -0.05 < roots[0] < 0.6 and roots[0] >= previous, (epoch, roots)
        previous = roots[0]

    assert 0.005 < losses[-1000:].mean() < 0.05, losses[-1000:].mean()
    assert grads[-1000:].mean() > 0.5, "oscillatory minimum: the gradient does not vanish"
    final = torch.load(out / "model_epoch35000.pt", weights_only=True)
    roots, stable = _roots(final)
    assert len(roots) == 1 and stable[0] and 3.0 < roots[0] < 4.2, roots
    ghosts = [(k, s) for k, s in _ghosts(final) if -2.0 < k < -1.0]
    assert len(ghosts) == 1, _ghosts(final)
    kappa, speed = ghosts[0]
    assert 0.01 < speed < 0.5 and np.min(np.abs(roots - kappa)) > 1.0
