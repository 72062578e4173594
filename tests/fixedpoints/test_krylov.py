"""The large-network path of the finder: batched GMRES, Jacobian-vector products, and the
matrix-free coarse phase (``krylov=True``) against the dense path and closed-form answers."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import fixedpoints as fp
from fixedpoints import linalg, systems
from fixedpoints.krylov import _jvp, newton_krylov


def two_way_match(found, truth, tol):
    """Every point found is real and every real point is found (within tol)."""
    d = cdist(found, truth)
    return d.min(axis=1).max() <= tol and d.min(axis=0).max() <= tol


def test_gmres_solves_to_round_off_with_a_full_krylov_space_and_reports_its_residual():
    gen = torch.Generator().manual_seed(0)
    n = 40
    a = torch.randn(6, n, n, generator=gen, dtype=torch.float64) / np.sqrt(n)
    a = a + 1.5 * torch.eye(n, dtype=torch.float64)
    rhs = torch.randn(6, n, generator=gen, dtype=torch.float64)
    rhs[3] = 0.0  # a zero right-hand side has the zero solution and residual 0

    def matvec(v):
        return (a @ v.unsqueeze(-1)).squeeze(-1)

    x, res = linalg.gmres(matvec, rhs, max_iter=n, rtol=1e-13)
    exact = np.linalg.solve(a.numpy(), rhs.numpy()[..., None])[..., 0]
    np.testing.assert_allclose(x.numpy(), exact, atol=1e-11)
    assert float(res.max()) <= 1e-12 and float(res[3]) == 0.0
    # truncated: the residual it reports is the true one
    x, res = linalg.gmres(matvec, rhs, max_iter=5, rtol=1e-13)
    true = (matvec(x) - rhs).norm(dim=1) / rhs.norm(dim=1).clamp_min(1e-300)
    keep = rhs.norm(dim=1) > 0
    np.testing.assert_allclose(res[keep].numpy(), true[keep].numpy(), rtol=1e-8)
    assert float(res[keep].min()) > 1e-6  # 5 iterations cannot solve it


@pytest.mark.parametrize("make", [lambda: systems.random_rate_network(30, seed=3),
                                  lambda: fp.from_module(torch.nn.LSTM(3, 7, num_layers=2)),
                                  lambda: fp.from_module(torch.nn.GRU(3, 9)),
                                  lambda: systems.rotated_flipflop(12, seed=1)])
def test_jacobian_vector_products_equal_the_jacobian_times_the_vector(make):
    torch.manual_seed(0)
    dyn = make()
    x = 0.5 * torch.randn(5, dyn.n_states, dtype=torch.float64)
    t = torch.randn(5, dyn.n_states, dtype=torch.float64)
    expected = (dyn.jacobian(x) @ t.unsqueeze(-1)).squeeze(-1)
    apply = _jvp(dyn, x)
    np.testing.assert_allclose(apply(t).numpy(), expected.numpy(), atol=1e-13)
    np.testing.assert_allclose(apply(2 * t).numpy(), 2 * expected.numpy(), atol=1e-13)


def test_newton_krylov_converges_to_the_flipflop_points_and_never_raises_the_speed():
    dyn = systems.rotated_flipflop(32, seed=2)
    truth = systems.flipflop_fixed_points(dyn)
    x = torch.as_tensor(truth.x) + 0.02 * torch.randn(27, 32, dtype=torch.float64,
                                                      generator=torch.Generator().manual_seed(1))
    q0 = dyn.speed(x)
    big = torch.full((32,), 10.0, dtype=torch.float64)
    xs, q, reach = newton_krylov(dyn, x, -big, big, q_stop=1e-28, steps=30, krylov_dim=32)
    assert bool((q <= q0).all())
    assert float(q.max()) <= 1e-24
    assert two_way_match(xs.numpy(), truth.x, 1e-10)
    assert bool(torch.isfinite(reach).all())


def test_krylov_path_finds_the_27_flipflop_points_of_a_200_unit_map():
    dyn = systems.rotated_flipflop(200, seed=2)
    x0 = fp.sample_initial_states(dyn, 512, noise=0.5, n_steps=20, seed=0)
    res = fp.find_fixed_points(dyn, x0, krylov=True)
    truth = systems.flipflop_fixed_points(dyn)
    assert res.info["krylov"] and res.status is fp.FinderStatus.CONVERGED
    assert res.counts() == {"stable": 8, "saddle": 19, "unstable": 0, "slow": 0}
    assert two_way_match(res.x, truth.x, 1e-9)
    assert res.speed.max() <= 1e-20 * res.info["q_scale"] + 1e-30


# 200 and 256 units from 256 starts. At 256 a slow point is found from the one start whose
# Levenberg–Marquardt descent reaches it. Newton–Krylov stalls on the way, and a stalled start
# must reach the polish as the candidate it was, not where the stall left it (the state after
# the previous round of 4 steps). From there it was carried to a fixed point and the slow point
# was missed, until the stalled states went back to their candidates.
@pytest.mark.parametrize("n", [200, 256])
def test_krylov_path_gives_the_dense_paths_points_on_a_mid_size_rate_network(n):
    dyn = systems.random_rate_network(n)
    x0 = fp.sample_initial_states(dyn, 256, seed=0, n_steps=60, noise=0.05)
    dense = fp.find_fixed_points(dyn, x0, krylov=False)
    krylov = fp.find_fixed_points(dyn, x0, krylov=True)
    assert not dense.info["krylov"] and krylov.info["krylov"]
    assert krylov.status is dense.status is fp.FinderStatus.CONVERGED
    assert krylov.counts() == dense.counts() and len(dense) >= 1
    fixed = [r.x[r.kind != "slow"] for r in (krylov, dense)]
    assert len(fixed[1]) >= 1 and two_way_match(*fixed, 1e-9)
    # slow points are minima of q, located only to about sqrt(grad_rtol) of the spread by
    # either path (measured: 5e-6 apart here, with both at the same q to 1e-15)
    slow = [r.x[r.kind == "slow"] for r in (krylov, dense)]
    assert two_way_match(*slow, 1e-4 * dense.scale)
    np.testing.assert_allclose(np.sort(krylov.speed[krylov.kind == "slow"]),
                               np.sort(dense.speed[dense.kind == "slow"]), rtol=1e-9)
    assert krylov.info["polished"] < dense.info["polished"]


def test_closed_form_jacobian_vector_products_of_the_rate_network_equal_autograds():
    dyn = systems.random_rate_network(60, seed=4)
    assert dyn.jvp_fn is not None
    gen = torch.Generator().manual_seed(2)
    x = 2.0 * torch.randn(7, 60, generator=gen, dtype=torch.float64)
    t = torch.randn(7, 60, generator=gen, dtype=torch.float64)
    closed = _jvp(dyn, x)(t)
    autograd = _jvp(dyn._replace(jvp_fn=None), x)(t)  # the double-backward path
    dense = (dyn.jacobian(x) @ t.unsqueeze(-1)).squeeze(-1)
    np.testing.assert_allclose(closed.numpy(), autograd.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(closed.numpy(), dense.numpy(), rtol=0, atol=1e-12)


def test_lu_preconditioned_gmres_solves_nearby_systems_in_a_few_iterations():
    gen = torch.Generator().manual_seed(5)
    n = 120
    base = torch.randn(n, n, generator=gen, dtype=torch.float64) / np.sqrt(n) \
        - 0.3 * torch.eye(n, dtype=torch.float64)
    # systems that differ from the reference by a diagonal row scaling (as Jacobians of a
    # rate network at nearby states do): A_i = D_i base with D_i near the identity
    scales = 1 + 0.1 * torch.randn(4, n, 1, generator=gen, dtype=torch.float64)
    a = scales * base
    rhs = torch.randn(4, n, generator=gen, dtype=torch.float64)
    inv = linalg.inverse(base)
    np.testing.assert_allclose(inv.numpy(), np.linalg.inv(base.numpy()), atol=1e-10)

    def matvec(v):
        return (a @ v.unsqueeze(-1)).squeeze(-1)

    y, res = linalg.gmres(lambda v: matvec(v @ inv.T), rhs, max_iter=20, rtol=1e-12)
    exact = np.linalg.solve(a.numpy(), rhs.numpy()[..., None])[..., 0]
    np.testing.assert_allclose((y @ inv.T).numpy(), exact, atol=1e-9)
    _, plain = linalg.gmres(matvec, rhs, max_iter=20, rtol=1e-12)
    assert float(res.max()) <= 1e-10 < float(plain.min())
    with pytest.raises(ValueError, match="singular"):
        linalg.inverse(torch.zeros(5, 5, dtype=torch.float64))


def test_preconditioned_newton_krylov_reaches_the_rate_networks_roots_faster():
    dyn = systems.random_rate_network(150, seed=1)
    x0 = dyn.states(fp.sample_initial_states(dyn, 64, seed=0, n_steps=60, noise=0.05))
    big = torch.full((150,), 50.0, dtype=torch.float64)
    q0 = dyn.speed(x0)
    runs = {pre: newton_krylov(dyn, x0, -big, big, q_stop=1e-26, steps=6, krylov_dim=10,
                               precondition=pre, backtracks=8, stall_steps=4,
                               stall_factor=0.5) for pre in (False, True)}
    for xs, q, _ in runs.values():
        assert bool((q <= q0).all())  # never raises the speed
        done = q <= 1e-26
        # a state reported converged is at a root: the dense Jacobian step from it is tiny
        if bool(done.any()):
            v = dyn.velocity(xs[done])
            step = torch.linalg.solve(dyn.jacobian(xs[done]), v.unsqueeze(-1)).squeeze(-1)
            assert float(step.norm(dim=1).max()) <= 1e-10
    assert int((runs[True][1] <= 1e-26).sum()) > int((runs[False][1] <= 1e-26).sum())
