"""The latent speed's minima of low-rank networks: the finder's candidates (latent_starts)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import fixedpoints as fp
from fixedpoints.ghost_certificates import kappa_speed_minimum
from fixedpoints.latent import latent_minima
from fixedpoints.lowrank import low_rank_form
from tests.fixedpoints.test_certify import ghost_rank_two, leaky_from_form


def _rank_two_ghost_system():
    left, right, bias, states = ghost_rank_two()
    return fp.from_module(leaky_from_form(fp.LowRankForm(left, right, bias)), input=[0.0]), states


def _find(dyn, states, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fp.find_fixed_points(dyn, states, **options)


def test_latent_minima_are_local_minima_of_q_and_are_computed_once():
    dyn, _ = _rank_two_ghost_system()
    form = low_rank_form(dyn)
    seeds = latent_minima(form, 64)
    assert len(seeds) >= 2  # the attractor and the ghost's slow point at least
    x = torch.as_tensor(seeds)
    jac = dyn.jacobian(x)
    v = dyn.velocity(x)
    grad = (jac.transpose(1, 2) @ v.unsqueeze(-1)).squeeze(-1)
    # stationary: ∇q = J_vᵀ v vanishes to round-off (states of order one; at a root v itself
    # is at round-off, at the slow point ‖v‖ = 0.02)
    assert float((grad.norm(dim=1) / torch.linalg.matrix_norm(jac)).max()) < 1e-14
    assert float(v.norm(dim=1).max()) > 1e-3
    hess = dyn.speed_hessian(x)
    lowest = torch.linalg.eigvalsh(0.5 * (hess + hess.transpose(1, 2)))[:, 0]
    assert float(lowest.min()) > -1e-9  # minima, not saddles of q
    # a prefix of the same list, and a copy each time (the kept one cannot be changed)
    again = latent_minima(form, 2)
    assert np.array_equal(again, seeds[:2])
    again[:] = 0.0
    assert np.array_equal(latent_minima(form, 64), seeds)


def test_the_finder_finds_the_same_points_from_other_starts_and_all_the_start_based_ones():
    """For a low-rank network the candidates are the latent minima: two samplings give the same
    points, and every point of the start-based search (latent_starts=False) is among them.
    (The states still set the box: those on test_certify's line alone, or the trajectories'
    alone, leave the slow point outside it, with either candidates.)"""
    dyn, line = _rank_two_ghost_system()
    one, two = (np.concatenate([line, fp.sample_initial_states(dyn, 256, n_steps=60,
                                                               noise=0.05, seed=seed)])
                for seed in (4, 5))
    a, b = _find(dyn, one), _find(dyn, two)
    starts = _find(dyn, one, latent_starts=False)
    assert a.info["latent_starts"] >= 2 and "latent_starts" not in starts.info
    assert a.counts() == b.counts() and a.counts()["slow"] >= 1
    for kind in ("stable", "saddle", "slow"):
        pa, pb = a.x[a.kind == kind], b.x[b.kind == kind]
        if not len(pa):
            assert not np.any(starts.kind == kind), kind
            continue
        assert np.abs(pa[:, None] - pb[None]).max(-1).min(1).max() <= 1e-9 * a.scale, kind
        ps = starts.x[starts.kind == kind]
        if len(ps):
            gap = np.abs(ps[:, None] - pa[None]).max(-1).min(1).max()
            assert gap <= 1e-5 * a.scale, kind
    assert len(a.x[a.kind != "slow"]) == len(starts.x[starts.kind != "slow"])


def test_latent_starts_option_and_warm_starts():
    dyn, states = _rank_two_ghost_system()
    assert fp.uses_latent_minima(dyn)
    assert not fp.uses_latent_minima(dyn, complete=False)
    assert fp.uses_latent_minima(dyn, complete=False, latent_starts=True)
    assert not fp.uses_latent_minima(dyn, latent_starts=False)
    full = fp.systems.rotated_flipflop(n_states=6, n_bits=2)
    assert not fp.uses_latent_minima(full)
    with pytest.raises(ValueError, match="latent_starts=True needs a low-rank"):
        fp.uses_latent_minima(full, latent_starts=True)
    with pytest.raises(ValueError, match="latent_starts="):
        fp.FinderOptions(latent_starts="yes")
    cold = _find(dyn, states)
    warm = _find(dyn, states, warm_starts=cold.x[cold.kind != "slow"])
    assert warm.info["warm_starts_unused"] == int((cold.kind != "slow").sum())
    assert warm.counts() == cold.counts() and np.array_equal(warm.x, cold.x)


def _latent_hessians(form, kappa, h=1e-4):
    """Hessians of ½‖G(κ)‖² by central differences of its gradient, shape (b, K, K)."""
    def grad(k):
        g = form.residual(k)
        jac = np.eye(form.rank) - np.einsum("jn,bn,nk->bjk", form.right,
                                            1.0 - form.states(k) ** 2, form.left)
        return np.einsum("bji,bj->bi", jac, g)
    cols = [(grad(kappa + h * e) - grad(kappa - h * e)) / (2 * h) for e in np.eye(form.rank)]
    hess = np.stack(cols, -1)
    return 0.5 * (hess + hess.transpose(0, 2, 1))


def test_kappa_newton_leaves_regions_of_negative_curvature_in_a_few_steps():
    """Seeds where the latent speed curves down in one direction and little up in the other
    (where the gradient steps of old crawled) reach a stationary point in a few iterations."""
    left, right, bias, _ = ghost_rank_two()
    form = fp.LowRankForm(left, right, bias)
    box = form.box()
    axes = [np.linspace(box.lo[j], box.hi[j], 41) for j in range(2)]
    kappa = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    vals = np.linalg.eigvalsh(_latent_hessians(form, kappa))
    seeds = kappa[(vals[:, 0] < -1e-6 * np.abs(vals).max(1))]
    assert len(seeds) >= 100
    _, grad = kappa_speed_minimum(form, seeds, steps=15)
    assert (grad < 1e-10).all()  # gradient steps left one of these 533 crawling after 50
