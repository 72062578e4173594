"""The ghost search's closed forms for low-rank tanh networks (fixedpoints.lowrank_speed) and
the vectorized κ-space minimum (fixedpoints.ghost_certificates.kappa_speed_minimum)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import fixedpoints as fp
import fixedpoints.ghosts as ghosts_mod
from checkpoints.models import LeakyRNN
from fixedpoints.ghost_certificates import kappa_speed_minimum
from fixedpoints.lowrank import MAX_RANK, low_rank_form, low_rank_form_or_none
from fixedpoints.lowrank_speed import low_rank_speed


def _rank_two(n=12, alpha=0.3, seed=0, gain=1.8):
    rng = np.random.default_rng(seed)
    model = LeakyRNN(1, n, 1, alpha=alpha, rank=2).double()
    with torch.no_grad():
        model.S_l.copy_(torch.as_tensor(gain * rng.standard_normal((n, 2)) / np.sqrt(n)))
        model.S_r.copy_(torch.as_tensor(rng.standard_normal((2, n))))
        model.W_in.weight.zero_()
        model.W_in.bias.copy_(torch.as_tensor(0.3 * rng.standard_normal(n)))
    return model


def _states(n, k=6, seed=1):
    return torch.as_tensor(np.random.default_rng(seed).uniform(-1, 1, size=(k, n)))


@pytest.mark.parametrize("time", ["discrete", "continuous"])
def test_closed_form_gradient_and_hessian_of_the_speed_match_autograd(time):
    model = _rank_two()
    dyn = fp.from_module(model, input=[0.0], time=time)
    x = _states(12)
    closed = low_rank_speed(dyn, low_rank_form(dyn), x)
    assert closed is not None
    assert closed.leak == pytest.approx(0.3 if time == "discrete" else 1.0, rel=1e-14)
    h, g = closed.hessian_and_gradient(x)
    system = closed.newton_system(x)
    for i in range(len(x)):
        xi = x[i].clone()
        grad = torch.autograd.functional.jacobian(lambda y: dyn.speed(y[None])[0], xi)
        hess = torch.autograd.functional.hessian(lambda y: dyn.speed(y[None])[0], xi)
        assert torch.allclose(g[i], grad, rtol=0, atol=1e-12 * float(grad.abs().max()))
        assert torch.allclose(system.gradient[i], grad, rtol=0,
                              atol=1e-12 * float(grad.abs().max()))
        assert torch.allclose(h[i], hess, rtol=0, atol=1e-12 * float(hess.abs().max()))
        assert torch.allclose(system.diagonal[i], torch.diagonal(hess), rtol=0,
                              atol=1e-12 * float(hess.abs().max()))


def test_low_rank_newton_system_solves_the_damped_system_and_tells_positive_definite():
    model = _rank_two(n=20, gain=2.5)
    dyn = fp.from_module(model, input=[0.0], time="discrete")
    x = _states(20, k=40, seed=3)
    closed = low_rank_speed(dyn, low_rank_form(dyn), x)
    h, g = closed.hessian_and_gradient(x)
    system = closed.newton_system(x)
    rows = torch.arange(len(x))
    lowest = torch.linalg.eigvalsh(h)[:, 0]
    size = torch.linalg.matrix_norm(h, ord=2)
    mixed = False
    for shift in (0.0, 1e-6, 1e-3, 1e-2, 1e-1, 1.0):
        lam = torch.full((len(x),), shift, dtype=x.dtype)
        delta, ok = system.solve(rows, lam)
        definite = lowest + shift
        clear = definite.abs() > 1e-8 * size  # not within round-off of singular
        assert torch.equal(ok[clear], (definite > 0)[clear])
        mixed |= bool((clear & (definite > 0)).any()) and bool((clear & (definite < 0)).any())
        matrix = h + shift * torch.eye(20, dtype=x.dtype)
        residual = (matrix @ delta.unsqueeze(-1)).squeeze(-1) + g
        assert (residual[ok].norm(dim=1) <= 1e-10 * g[ok].norm(dim=1) * (
            1 + torch.linalg.cond(matrix[ok]))).all()
        assert (delta[~ok] == 0).all()
    assert mixed  # some shift had both definite and indefinite systems


def test_no_closed_form_for_a_form_that_does_not_describe_the_system():
    model = _rank_two()
    dyn = fp.from_module(model, input=[0.0], time="discrete")
    x = _states(12)
    form = low_rank_form(dyn)
    wrong = fp.LowRankForm(form.left, form.right, form.bias + 1e-6)
    assert low_rank_speed(dyn, wrong, x) is None
    assert low_rank_speed(dyn, None, x) is None
    plain = fp.DiscreteDynamics(lambda y, u: model.step(y), 12)  # the same map, no form
    assert low_rank_form_or_none(plain, MAX_RANK) is None
    with torch.no_grad():  # R with two equal rows: R Rᵀ is singular, no Schur complement
        model.S_r[1] = model.S_r[0]
    twin = fp.from_module(model, input=[0.0], time="discrete")
    assert low_rank_speed(twin, low_rank_form(twin), x) is None


def test_kappa_speed_minimum_batched_equals_seed_by_seed():
    model = _rank_two(n=30, gain=2.5, seed=4)
    dyn = fp.from_module(model, input=[0.0], time="discrete")
    form = low_rank_form(dyn)
    box = form.box()
    rng = np.random.default_rng(5)
    seeds = rng.uniform(box.lo, box.hi, size=(25, 2))
    metric = np.linalg.pinv(form.right @ form.right.T)
    kappa, grad = kappa_speed_minimum(form, seeds, metric=metric)
    assert (grad < 1e-12).all()   # every seed reaches a stationary point (1e-16 here)
    for i in range(len(seeds)):
        one, _ = kappa_speed_minimum(form, seeds[i:i + 1], metric=metric)
        assert np.abs(one[0] - kappa[i]).max() <= 1e-12 * max(1.0, np.abs(kappa[i]).max())
    # a minimum: no nearby point is slower
    def value(k):
        r = form.residual(k)
        return np.einsum("bi,ij,bj->b", r, metric, r)
    for i in range(len(seeds)):
        around = kappa[i] + 1e-4 * rng.standard_normal((16, 2))
        assert (value(around) >= value(kappa[i:i + 1])[0] - 1e-15).all()


def _rank_two_ghost():
    """test_certify's rank-two ghost: ``(dynamics, states, fixed points)``."""
    from tests.fixedpoints.test_certify import ghost_rank_two, leaky_from_form

    left, right, bias, states = ghost_rank_two()
    dyn = fp.from_module(leaky_from_form(fp.LowRankForm(left, right, bias)), input=[0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return dyn, states, fp.find_fixed_points(dyn, states)


def test_detect_ghosts_finds_the_same_ghosts_without_the_closed_form(monkeypatch):
    # a rank-two ghost (test_certify's construction); the closed-form Newton systems and the
    # dense ones must end at the same ghosts
    dyn, states, points = _rank_two_ghost()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        closed = fp.detect_ghosts(dyn, points, states)
        monkeypatch.setattr(ghosts_mod, "low_rank_speed", lambda *args: None)
        dense = fp.detect_ghosts(dyn, points, states)
    assert closed.info["closed_form_hessian"] and not dense.info["closed_form_hessian"]
    assert len(closed) >= 1 and len(closed) == len(dense)
    assert np.abs(closed.x - dense.x).max() <= 1e-9 * points.scale
    for name in ("velocity_norm", "curvature", "passage_time", "dwell_time", "strength"):
        assert np.allclose(getattr(closed, name), getattr(dense, name), rtol=1e-8, atol=0), name
    assert closed.info["rejected"] == dense.info["rejected"]


def test_low_rank_ghost_searches_start_from_the_latent_minima_alone_by_default():
    """For a low-rank tanh network every minimum of q is the lift of a latent minimum, so by
    default the sampled states start no search; forcing them in finds the same ghosts. A
    network without a low-rank form still starts from its states."""
    dyn, states, points = _rank_two_ghost()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        auto = fp.detect_ghosts(dyn, points, states)
        forced = fp.detect_ghosts(dyn, points, states, state_starts=True)
    assert not auto.info["state_starts"] and forced.info["state_starts"]
    assert auto.info["starts"] < forced.info["starts"]
    assert len(auto) >= 1 and len(auto) == len(forced)
    assert np.abs(auto.x - forced.x).max() <= 1e-9 * points.scale
    assert list(auto.kind) == list(forced.kind)
    full = fp.systems.saddle_node(1e-3, n_states=3, seed=0)
    x0 = np.random.default_rng(0).uniform(-1, 1, (64, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plain = fp.detect_ghosts(full, initial_states=x0)
    assert plain.info["state_starts"]
    with pytest.raises(ValueError, match="state_starts"):
        fp.GhostOptions(state_starts="no")
