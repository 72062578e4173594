"""Exact PLRNN fixed points and cycles against brute-force enumeration and simulation."""
import itertools

import numpy as np
import pytest
import torch

import fixedpoints as fp
from checkpoints.models import PLRNN
from fixedpoints.plrnn import PLRNNForm, plrnn_cycles, plrnn_fixed_points


def random_form(n, seed, a=(-0.9, 0.9), gain=1.5):
    rng = np.random.default_rng(seed)
    return PLRNNForm(A=rng.uniform(*a, n), W=rng.normal(0, gain / np.sqrt(n), (n, n)),
                     drive=rng.normal(0, 1, n))


def brute_fixed_points(form):
    """One pattern at a time with np.linalg.solve: the reference enumeration."""
    n = form.n_states
    out = []
    for bits in itertools.product([0.0, 1.0], repeat=n):
        d = np.array(bits)
        m = np.diag(form.A) + form.W * d[None, :]
        z = np.linalg.solve(np.eye(n) - m, form.drive)
        if np.array_equal(z > 0, d > 0):
            out.append(z)
    return np.array(out).reshape(-1, n)


def brute_cycles(form, k):
    """Every pattern sequence solved by iterating the affine pieces (reference for k-cycles)."""
    n = form.n_states
    out = []
    for bits in itertools.product([0.0, 1.0], repeat=n * k):
        seq = np.array(bits).reshape(k, n)
        mats = [np.diag(form.A) + form.W * d[None, :] for d in seq]
        p, q = np.eye(n), np.zeros(n)
        for m in mats:
            p, q = m @ p, m @ q + form.drive
        z = np.linalg.solve(np.eye(n) - p, q)
        orbit = [z]
        for m in mats[:-1]:
            orbit.append(m @ orbit[-1] + form.drive)
        orbit = np.array(orbit)
        if np.array_equal(orbit > 0, seq > 0):
            if all(np.abs(orbit[d] - orbit[0]).max() > 1e-9 for d in range(1, k) if k % d == 0):
                out.append(orbit)
    return out


def same_sets(a, b, tol=1e-9):
    if len(a) != len(b):
        return False
    return all(np.abs(b - x).max(-1).min() <= tol for x in a)


@pytest.mark.parametrize("n,seed", [(2, 0), (3, 1), (5, 2), (6, 4), (8, 5), (10, 6), (10, 7)])
def test_fixed_points_equal_brute_force(n, seed):
    form = random_form(n, seed)
    ref = brute_fixed_points(form)
    got = plrnn_fixed_points(form)
    assert got.complete and got.info["method"] == "exhaustive"
    assert got.info["patterns_solved"] == 2 ** n
    assert same_sets(got.x, ref)
    assert np.abs(form.step(got.x) - got.x).max(initial=0.0) < 1e-12
    assert np.array_equal(got.patterns, got.x > 0)
    for i in range(len(got)):  # index from the region's Jacobian
        m = np.diag(form.A) + form.W * got.patterns[i][None, :]
        assert got.n_unstable[i] == int((np.abs(np.linalg.eigvals(m)) > 1).sum())
        assert 0 < got.certified_radius[i] == pytest.approx(np.abs(got.x[i]).min())
        assert got.error_bound[i] < 1e-10


def test_multistable_case_has_several_points_and_simulation_finds_only_those():
    counts = []
    for seed in range(12):
        form = random_form(6, seed, a=(0.3, 0.9), gain=2.5)
        got = plrnn_fixed_points(form)
        counts.append(len(got))
        stable = got.x[got.n_unstable == 0]
        rng = np.random.default_rng(seed)
        with np.errstate(over="ignore", invalid="ignore"):  # some trajectories diverge
            traj = form.simulate(rng.normal(0, 3, (200, 6)), 3000)
            end = traj[:, -1]
            settled = np.abs(form.step(end) - end).max(-1) < 1e-10
        for z in end[settled]:  # every point a trajectory settles on is a listed stable point
            assert np.abs(stable - z).max(-1).min() < 1e-7
    assert max(counts) >= 3  # the family is rich enough to test multiplicity


@pytest.mark.parametrize("n,k,seed", [(3, 2, 19), (3, 3, 19), (4, 2, 3), (2, 3, 8), (3, 3, 23)])
def test_cycles_equal_brute_force(n, k, seed):
    form = random_form(n, seed, a=(-0.9, 0.5), gain=2.0)
    ref = brute_cycles(form, k)
    got = plrnn_cycles(form, k)
    assert got.complete and got.period == k
    # the reference lists every rotation of each orbit once; ours lists each orbit once
    assert len(ref) == k * len(got)
    for orbit in got.orbits:
        x = orbit[0]
        for _ in range(k):
            x = form.step(x[None])[0]
        assert np.abs(x - orbit[0]).max() < 1e-10
        assert any(np.abs(r - orbit).max() < 1e-9 for r in ref)


def test_stable_three_cycle_found_by_simulation_is_listed():
    form = random_form(3, 19, a=(-0.9, 0.5), gain=2.0)
    got = plrnn_cycles(form, 3)
    assert got.stable.sum() == 1
    rng = np.random.default_rng(0)
    traj = form.simulate(rng.normal(0, 2, (100, 3)), 2000)
    end = traj[:, -1]
    three = (np.abs(traj[:, -4] - end).max(-1) < 1e-10) & (np.abs(traj[:, -2] - end).max(-1) > 1e-6)
    assert three.any()
    orbit = got.orbits[got.stable][0]
    for z in end[three]:
        assert np.abs(orbit - z).max(-1).min() < 1e-8
    # Floquet multipliers: the 3-step Jacobian along the orbit
    jac = np.eye(3)
    for z in orbit:
        jac = (np.diag(form.A) + form.W * (z > 0)[None, :]) @ jac
    assert np.allclose(np.sort(np.abs(np.linalg.eigvals(jac))),
                       np.sort(np.abs(got.multipliers[got.stable][0])))


def test_period_one_rejected():
    with pytest.raises(ValueError, match="period"):
        plrnn_cycles(random_form(2, 0), 1)


def test_heuristic_beyond_exhaustive_is_a_subset_and_not_complete():
    form = random_form(12, 5, a=(0.3, 0.9), gain=2.5)
    full = plrnn_fixed_points(form)
    heur = plrnn_fixed_points(form, max_exhaustive=8)
    assert full.complete and not heur.complete and heur.info["method"] == "heuristic"
    assert len(heur) >= 1
    for z in heur.x:
        assert np.abs(full.x - z).max(-1).min() < 1e-10
    # the stable points are where trajectories go, so the search seeded by them finds them all
    stable = full.x[full.n_unstable == 0]
    for z in stable:
        assert np.abs(heur.x - z).max(-1).min() < 1e-10


def test_contracting_large_network_heuristic_finds_the_unique_point():
    rng = np.random.default_rng(0)
    n = 40
    form = PLRNNForm(A=rng.uniform(0.2, 0.5, n), W=rng.normal(0, 0.5 / np.sqrt(n), (n, n)),
                     drive=rng.normal(0, 1, n))
    got = plrnn_fixed_points(form)
    assert not got.complete and len(got) == 1
    end = form.simulate(rng.normal(size=(1, n)), 500)[0, -1]
    assert np.abs(got.x[0] - end).max() < 1e-10


def test_singular_region_makes_the_set_incomplete():
    form = PLRNNForm(A=np.array([1.0, 0.5]), W=np.zeros((2, 2)), drive=np.zeros(2))
    got = plrnn_fixed_points(form)  # z_0 is free: a line of fixed points
    assert not got.complete and got.info["singular_patterns"] == 4


def test_form_validation():
    with pytest.raises(ValueError, match="W has shape"):
        PLRNNForm(A=np.zeros(3), W=np.zeros((2, 2)), drive=np.zeros(3))
    with pytest.raises(ValueError, match="drive"):
        PLRNNForm(A=np.zeros(2), W=np.zeros((2, 2)), drive=np.zeros(3))


def test_find_fixed_points_on_a_plrnn_model_is_complete_at_its_input():
    torch.manual_seed(7)  # two fixed points at this input (one stable)
    model = PLRNN(n_inputs=2, n_states=8, n_outputs=1, gain=3.0).double()
    with torch.no_grad():
        model.h.copy_(torch.randn(8))
    u = np.array([0.7, -0.4])
    dyn = fp.from_module(model, input=u)
    form = PLRNNForm(A=model.A.detach().numpy(), W=model.W.detach().numpy(),
                     drive=(model.C.detach().numpy() @ u + model.h.detach().numpy()))
    ref = brute_fixed_points(form)
    x0 = np.random.default_rng(0).normal(size=(64, 8))
    result = fp.find_fixed_points(dyn, x0)
    fixed = result.x[result.kind != "slow"]
    assert result.complete and result.info["plrnn_search"]["method"] == "exhaustive"
    assert len(ref) == 2 and same_sets(fixed, ref)
    assert np.isfinite(result.certified_radius[result.kind != "slow"]).all()
    assert fp.find_fixed_points(dyn, x0, complete=False).complete is False
