"""The polish's Levenberg–Marquardt systems in closed form for leaky low-rank tanh networks
(fixedpoints.polish_systems) against the dense ones from the Jacobians, and the finder with
either: the same points, kinds and status."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fixedpoints as fp
import fixedpoints.finder as finder_mod
from checkpoints.models import LeakyRNN
from fixedpoints.lowrank import low_rank_form
from fixedpoints.lowrank_speed import low_rank_speed
from fixedpoints.polish_systems import DenseSystems, LowRankSystems, PolishNewton, polish_newton


def _low_rank(n=24, rank=2, alpha=0.3, seed=0, gain=2.2):
    rng = np.random.default_rng(seed)
    model = LeakyRNN(1, n, 1, alpha=alpha, rank=rank).double()
    with torch.no_grad():
        model.S_l.copy_(torch.as_tensor(gain * rng.standard_normal((n, rank)) / np.sqrt(n)))
        model.S_r.copy_(torch.as_tensor(rng.standard_normal((rank, n))))
        model.W_in.weight.zero_()
        model.W_in.bias.copy_(torch.as_tensor(0.3 * rng.standard_normal(n)))
    return model


def _attractors(n=40, rank=2, seed=0, gain=3.0, alpha=0.5):
    """``L ≈ gain Rᵀ / n``: W's rank-K part has eigenvalues near ``gain``, several attractors
    (and slow points for rank 3)."""
    rng = np.random.default_rng(seed)
    model = LeakyRNN(1, n, 1, alpha=alpha, rank=rank).double()
    right = rng.standard_normal((rank, n))
    left = gain * right.T / n + 0.5 * rng.standard_normal((n, rank)) / np.sqrt(n)
    with torch.no_grad():
        model.S_l.copy_(torch.as_tensor(left))
        model.S_r.copy_(torch.as_tensor(right))
        model.W_in.weight.zero_()
        model.W_in.bias.copy_(torch.as_tensor(0.1 * rng.standard_normal(n)))
    return model


def _states(n, k, seed=1, spread=1.0):
    return torch.as_tensor(np.random.default_rng(seed).uniform(-spread, spread, size=(k, n)))


def _systems(dyn, x):
    closed = low_rank_speed(dyn, low_rank_form(dyn), x)
    assert closed is not None
    with torch.no_grad():
        v = dyn.velocity(x)
    return DenseSystems(dyn, x, v), LowRankSystems(closed, x, v)


@pytest.mark.parametrize("time,rank", [("discrete", 1), ("discrete", 2), ("continuous", 2),
                                       ("discrete", 3)])
def test_closed_form_systems_equal_the_dense_ones(time, rank):
    """Gradient, diagonal, Gauss–Newton and exact-Hessian matrices and the damped solves of
    the closed form equal those from the Jacobians (Gram, speed_hessian, Cholesky / LU)."""
    n = 30
    dyn = fp.from_module(_low_rank(n=n, rank=rank, gain=2.5, seed=rank), input=[0.0], time=time)
    x = _states(n, 48, seed=2)
    dense, closed = _systems(dyn, x)
    jac = dyn.jacobian(x)
    scale = float(torch.linalg.matrix_norm(jac, ord=2).max()) ** 2
    g_scale = float(dense.gradient.abs().max())
    assert torch.allclose(closed.gradient, dense.gradient, rtol=0, atol=1e-13 * g_scale)
    assert torch.allclose(closed.diagonal(), dense.diagonal(), rtol=0, atol=1e-13 * scale)
    rows = torch.arange(len(x))
    assert torch.allclose(closed._system.matrix(rows), jac.transpose(1, 2) @ jac, rtol=0,
                          atol=1e-13 * scale)
    exact = torch.arange(0, len(x), 2)  # every other row: the exact Hessian
    dense.use_exact_hessian(exact)
    closed.use_exact_hessian(exact)
    hess = dyn.speed_hessian(x[exact])
    assert torch.allclose(closed._system.matrix(exact), hess, rtol=0, atol=1e-13 * scale)
    assert torch.allclose(closed.diagonal()[exact], torch.diagonal(hess, dim1=1, dim2=2),
                          rtol=0, atol=1e-13 * scale)
    indefinite = 0
    for shift in (1e-8, 1e-4, 1e-2, 1.0):
        damping = shift * scale * torch.linspace(0.5, 2.0, len(x), dtype=x.dtype)
        want, sane_dense = dense.solve(damping)
        got, sane = closed.solve(damping)
        assert bool(sane.all()) and bool(sane_dense.all())
        matrix = closed._system.matrix(rows) + damping[:, None, None] * torch.eye(n,
                                                                                 dtype=x.dtype)
        cond = torch.linalg.cond(matrix)
        error = (got - want).norm(dim=1) / want.norm(dim=1)
        assert (error <= 1e-13 * cond).all(), float((error / cond).max())
        indefinite += int((torch.linalg.eigvalsh(matrix)[:, 0] < 0).sum())
    assert indefinite > 0  # damped exact Hessians that are not definite: the dense fallback


def test_closed_form_solve_stops_non_finite_rows():
    n = 20
    dyn = fp.from_module(_low_rank(n=n), input=[0.0], time="discrete")
    x = _states(n, 6)
    dense, closed = _systems(dyn, x)
    damping = torch.full((6,), 1e-3, dtype=x.dtype)
    damping[2] = float("nan")
    for systems in (dense, closed):
        delta, sane = systems.solve(damping)
        assert sane.tolist() == [True, True, False, True, True, True]
        assert bool((delta[2] == 0).all()) and bool(torch.isfinite(delta).all())


def test_jacobian_product_equals_the_jacobian():
    n = 16
    dyn = fp.from_module(_low_rank(n=n, rank=3), input=[0.0], time="continuous")
    x, offset = _states(n, 9, seed=3), _states(n, 9, seed=4)
    closed = low_rank_speed(dyn, low_rank_form(dyn), x)
    want = (dyn.jacobian(x) @ offset.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(closed.jacobian_product(x, offset), want, rtol=0,
                          atol=1e-14 * float(want.abs().max()))


def test_polish_newton_chooses_the_closed_form_only_where_it_holds():
    n = 24
    x = _states(n, 8)
    dyn = fp.from_module(_low_rank(n=n), input=[0.0], time="discrete")
    assert polish_newton(dyn, x).closed is not None
    full = LeakyRNN(1, n, 1, alpha=0.3).double()  # full rank: no low-rank form
    assert polish_newton(fp.from_module(full, input=[0.0], time="discrete"), x).closed is None
    plain = fp.DiscreteDynamics(lambda y, u: dyn.fn(y, u) + y, n)  # the map, no form
    assert polish_newton(plain, x).closed is None
    wide = fp.from_module(_low_rank(n=8, rank=3), input=[0.0], time="discrete")  # 3 > 8 / 4
    assert polish_newton(wide, _states(8, 4)).closed is None


def _dense_finder(monkeypatch):
    monkeypatch.setattr(finder_mod, "polish_newton", lambda dynamics, x: PolishNewton(dynamics))


def _matched(a, b):
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    return max(d.min(1).max(), d.min(0).max()) if len(a) and len(b) else 0.0


def _same(a, b, scale):
    """Same status, kinds and points. Fixed points converge to round-off, and the two paths
    find them within 1e-9 · scale. Slow points stop where ‖∇q‖ passes the stationarity test,
    so iterates that differ at round-off stop at slightly different states (3e-9 · scale on
    the rank-3 network warm-started), matched like warm and cold searches (1e-6 · scale,
    analysis.epoch.points_differ); their marginal eigenvalue (|λ| = 1 ± 1e-6) may then fall on
    either side of 1, so their index is not compared."""
    assert a.status == b.status
    assert sorted(a.kind.tolist()) == sorted(b.kind.tolist())
    fixed_a, fixed_b = a.kind != "slow", b.kind != "slow"
    assert sorted(a.n_unstable[fixed_a].tolist()) == sorted(b.n_unstable[fixed_b].tolist())
    assert _matched(a.x[fixed_a], b.x[fixed_b]) <= 1e-9 * scale
    assert _matched(a.x[~fixed_a], b.x[~fixed_b]) <= 1e-6 * scale
    assert len(a.slow_regions) == len(b.slow_regions)


@pytest.mark.parametrize("time,rank,seed", [("discrete", 2, 0), ("discrete", 1, 5),
                                            ("continuous", 2, 3), ("discrete", 3, 7)])
def test_finder_finds_the_same_points_with_the_closed_form(monkeypatch, time, rank, seed):
    """Random low-rank networks with several fixed points: the closed-form polish finds the
    points, kinds and status of the dense one, also warm-started."""
    n = 40
    dyn = fp.from_module(_attractors(n=n, rank=rank, seed=seed), input=[0.0], time=time)
    init = fp.sample_initial_states(dyn, 256, n_steps=40, noise=0.1, seed=seed)
    closed = fp.find_fixed_points(dyn, init, complete=False, certify=False)
    assert closed.info["closed_form_polish"]
    assert len(closed.x) >= 3  # more than one attractor: midpoints and saddles polished
    assert closed.info["midpoints"] > 0
    warm_closed = fp.find_fixed_points(dyn, init, complete=False, certify=False,
                                       warm_starts=closed.x[closed.kind != "slow"] + 1e-3)
    _dense_finder(monkeypatch)
    dense = fp.find_fixed_points(dyn, init, complete=False, certify=False)
    assert not dense.info["closed_form_polish"]
    warm_dense = fp.find_fixed_points(dyn, init, complete=False, certify=False,
                                      warm_starts=closed.x[closed.kind != "slow"] + 1e-3)
    _same(closed, dense, closed.scale)
    _same(warm_closed, warm_dense, closed.scale)
    if not (closed.kind == "slow").any():
        assert _matched(closed.x, dense.x) <= 1e-12 * closed.scale


def test_finder_on_a_trained_checkpoint_is_the_same_with_the_closed_form(monkeypatch,
                                                                          tmp_path):
    """A 100-unit rank-2 leaky RNN after a few real training steps (the bench series'
    network), through the whole finder (certificates and the complete search included)."""
    from checkpoints.loading import load_checkpoint
    from checkpoints.train import train

    train("cue_discrimination", "leaky_rnn", tmp_path, epochs=2, lr=0.01, save_every=1,
          n_states=100, rank=2, seed=0, overwrite=True)
    results = []
    for dense in (False, True):
        if dense:
            _dense_finder(monkeypatch)
        model = load_checkpoint(tmp_path / "model_epoch2.pt").model.double()
        dyn = fp.from_module(model, input=[0.0], time="discrete")
        init = fp.sample_initial_states(dyn, 128, n_steps=40, noise=0.1, seed=0)
        results.append(fp.find_fixed_points(dyn, init))
    assert results[0].info["closed_form_polish"] and not results[1].info["closed_form_polish"]
    _same(results[0], results[1], results[0].scale)


def test_attribution_prediction_in_closed_form_equals_the_jacobians():
    """The linear prediction ``v(p) + J_v(p)(x − p)`` of the attribution test, closed form vs
    the Jacobians at the found points."""
    n = 24
    dyn = fp.from_module(_attractors(n=n, rank=2, seed=1), input=[0.0], time="discrete")
    points, x = _states(n, 5, seed=5), _states(n, 40, seed=6)
    closed = finder_mod._Found(dyn, points, dyn.speed(points), 1e-3, polish_newton(dyn, x))
    dense = finder_mod._Found(dyn, points, dyn.speed(points), 1e-3, PolishNewton(dyn))
    assert closed.newton.closed is not None and dense.newton.closed is None
    nearest = closed.nearest(x)
    assert torch.equal(nearest, dense.nearest(x)) and len(torch.unique(nearest)) > 1
    want = dense.predicted_velocity(x, nearest)
    assert torch.allclose(closed.predicted_velocity(x, nearest), want, rtol=0,
                          atol=1e-14 * float(want.abs().max()))
