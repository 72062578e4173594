"""State-space certificates of low-rank networks from the κ-space proof (issue 14): they hold
the true fixed point (polished in 60-digit arithmetic), agree with the n-dimensional Krawczyk
certificates where both prove something, and are used only when the proof is about the same
network."""
from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import torch
from torch import nn

import fixedpoints as fp
from fixedpoints import complete as complete_mod
from fixedpoints.certify import certify_points, enclosure
from fixedpoints.certify_reduced import certify_roots, matches_form
from fixedpoints.lowrank import LowRankForm, low_rank_form, solve_reduced
from tests.fixedpoints.test_certify import leaky_from_form, random_states


def random_form(seed: int, n: int = 24, k: int = 2, gain: float = 2.5) -> LowRankForm:
    rng = np.random.default_rng(seed)
    left = rng.normal(size=(n, k)) * gain
    right = rng.normal(size=(k, n)) / n
    # a shared direction makes several fixed points likely
    right[0] += left[:, 0] / n
    return LowRankForm(left, right, 0.3 * rng.normal(size=n))


def exact_root(form: LowRankForm, kappa: np.ndarray) -> np.ndarray:
    """The fixed point ``tanh(c + L κ*)`` with κ* Newton-polished in 60-digit arithmetic."""
    mpmath.mp.dps = 60
    left, right, bias = (mpmath.matrix(a.tolist()) for a in (form.left, form.right,
                                                                   form.bias[:, None]))
    kap = mpmath.matrix(kappa.tolist())
    n, k = form.left.shape
    for _ in range(8):
        pre = bias + left * kap
        t = mpmath.matrix([mpmath.tanh(pre[i]) for i in range(n)])
        g = kap - right * t
        d = mpmath.diag([1 - t[i] ** 2 for i in range(n)])
        jac = mpmath.eye(k) - right * d * left
        kap = kap - mpmath.lu_solve(jac, g)
    pre = bias + left * kap
    return np.array([float(mpmath.tanh(pre[i])) for i in range(n)])


def find(dyn, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fp.find_fixed_points(dyn, random_states(n, k=64))


@pytest.mark.parametrize("time", ["discrete", "continuous"])
@pytest.mark.parametrize("seed", range(6))
def test_reduced_certificates_hold_the_true_root_and_match_krawczyk(time, seed):
    form = random_form(seed)
    dyn = fp.from_module(leaky_from_form(form), input=[0.0], time=time)
    result = find(dyn, form.n_states)
    fixed = result[result.kind != "slow"]
    assert result.complete and len(fixed) >= 1
    assert result.info["certified_reduced"] == len(fixed)  # every root by the κ route
    assert np.isfinite(fixed.certified_radius).all() and fixed.stability_certified.all()
    for x, bound in zip(fixed.x, fixed.error_bound):
        exact = exact_root(form, x @ form.right.T)
        assert np.abs(exact - x).max() <= bound
    assert (fixed.error_bound <= fixed.certified_radius).all()
    assert (fixed.certified_radius <= result.scale).all()
    # uniqueness: no other fixed point (all are known: complete) in a certified cube
    for i in range(len(fixed)):
        for j in range(len(fixed)):
            if i != j:
                gap = np.abs(fixed.x[i] - fixed.x[j]).max()
                assert gap - fixed.error_bound[j] > fixed.certified_radius[i]
    # the n-dimensional Krawczyk test on the same points: same verdicts where it proves them
    old = certify_points(dyn, fixed.x, scale=result.scale, n_unstable=fixed.n_unstable)
    both = np.isfinite(old["certified_radius"])
    assert both.all()
    assert (fixed.stability_certified[both] == old["stability_certified"][both]).all()


@pytest.mark.parametrize("time", ["discrete", "continuous"])
def test_finder_result_is_the_same_as_with_the_krawczyk_certificates(time, monkeypatch):
    form = random_form(3)
    dyn = fp.from_module(leaky_from_form(form), input=[0.0], time=time)
    new = find(dyn, form.n_states)

    def nothing(dynamics, form, x, *args, **kwargs):
        k = len(x)
        return {"certified_radius": np.full(k, np.nan), "error_bound": np.full(k, np.nan),
                "stability_certified": np.zeros(k, bool), "eigen_radius": np.full(k, np.nan)}

    monkeypatch.setattr(complete_mod, "certify_roots", nothing)
    old = find(dyn, form.n_states)
    assert np.array_equal(new.x, old.x) and np.array_equal(new.kind, old.kind)
    assert np.array_equal(new.n_unstable, old.n_unstable)
    assert np.array_equal(new.eigvals, old.eigvals) and np.array_equal(new.speed, old.speed)
    assert np.array_equal(new.stability_certified, old.stability_certified)
    assert np.array_equal(np.isfinite(new.certified_radius), np.isfinite(old.certified_radius))
    assert new.n_certified == old.n_certified


def test_a_torch_rnn_of_low_numerical_rank_falls_back_to_krawczyk():
    # its form is the truncated SVD of the dense W_hh: a proof about another network
    torch.manual_seed(0)
    module = nn.RNN(2, 12).double()
    form = random_form(1, n=12)
    with torch.no_grad():
        module.weight_hh_l0.copy_(torch.as_tensor(form.left @ form.right))
    dyn = fp.from_module(module)
    lr = low_rank_form(dyn)
    assert lr is not None and not matches_form(enclosure(dyn), lr)
    result = find(dyn, 12)
    fixed = result[result.kind != "slow"]
    assert result.info.get("certified_reduced", 0) == 0
    old = certify_points(dyn, fixed.x, scale=result.scale, n_unstable=fixed.n_unstable)
    assert np.array_equal(fixed.certified_radius, old["certified_radius"], equal_nan=True)
    assert np.array_equal(fixed.error_bound, old["error_bound"], equal_nan=True)


def test_an_inconsistent_jacobian_or_wrong_index_is_not_certified():
    form = random_form(2)
    dyn = fp.from_module(leaky_from_form(form), input=[0.0])
    sol = solve_reduced(form)
    x = form.states(sol.kappa)
    jac = fp.jacobian(dyn, x)
    good = certify_roots(dyn, form, x, sol.enclosure, sol.uniqueness, jac, scale=1.0)
    assert np.isfinite(good["certified_radius"]).all()
    bad = certify_roots(dyn, form, x, sol.enclosure, sol.uniqueness, jac * (1 + 1e-6),
                        scale=1.0)
    assert np.isnan(bad["certified_radius"]).all()
    wrong = certify_roots(dyn, form, x, sol.enclosure, sol.uniqueness, jac, scale=1.0,
                          n_unstable=np.full(len(x), 7))
    assert np.isnan(wrong["error_bound"]).all() and not wrong["stability_certified"].any()
    # without the ladder, no radius beyond the uniqueness box is claimed: shrink Z to E ± 1e-6
    z = sol.enclosure + np.array([-1e-6, 1e-6])
    tight = certify_roots(dyn, form, x, sol.enclosure, z, jac, scale=1.0, ladder=0)
    rho = tight["certified_radius"]
    assert np.isfinite(rho).all() and (rho < good["certified_radius"]).all()
    reach = np.abs(form.right).sum(1) * rho[:, None]
    kappa = x @ form.right.T
    assert ((kappa - reach >= z[..., 0]) & (kappa + reach <= z[..., 1])).all()
    # the ladder's own K-dimensional Krawczyk boxes bring the radius back
    grown = certify_roots(dyn, form, x, sol.enclosure, z, jac, scale=1.0)
    assert (grown["certified_radius"] > rho).all()
