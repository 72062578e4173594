"""The matrix-free polish (fixedpoints.matrix_free): its products and solves against the dense
systems, and the finder's use of it for what the dense polish budget leaves (krylov, automatic)."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import fixedpoints as fp
from fixedpoints import systems
from fixedpoints.matrix_free import MatrixFreeNewton
from fixedpoints.polish_systems import PolishNewton


def _gru(n=24, seed=0):
    torch.manual_seed(seed)
    return fp.from_module(torch.nn.GRU(3, n, batch_first=True), input=[0.2, -0.1, 0.0])


def _states(dyn, b, seed):
    gen = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(b, dyn.n_states, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("make", [lambda: systems.random_rate_network(30, seed=3), _gru],
                         ids=["rate", "gru"])
def test_products_and_solves_equal_the_dense_systems(make):
    """∇q, (JᵀJ) p, ∇²q p and the damped solves (a full Krylov space) of the matrix-free
    systems equal the dense ones; the damping's scale is estimated within 25%."""
    dyn = make()
    n = dyn.n_states
    x = _states(dyn, 12, seed=1)
    with torch.no_grad():
        v = dyn.velocity(x)
    dense = PolishNewton(dyn).systems(x, v)
    free = MatrixFreeNewton(dyn, max_iter=n, rtol=1e-14).systems(x, v)
    jac = dyn.jacobian(x)
    scale = float(torch.linalg.matrix_norm(jac, ord=2).max()) ** 2
    g_scale = float(dense.gradient.abs().max())
    assert torch.allclose(free.gradient, dense.gradient, rtol=0, atol=1e-13 * g_scale)
    p = _states(dyn, 12, seed=2)
    jp, curvature = free._products(p)
    gram = jac.transpose(1, 2) @ jac
    want = (gram @ p.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(free._gauss_newton(jp), want, rtol=0, atol=1e-12 * scale)
    hess = dyn.speed_hessian(x)
    want = ((hess - gram) @ p.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(curvature, want, rtol=0, atol=1e-12 * scale)
    exact_diag = torch.diagonal(gram, dim1=1, dim2=2).mean(1)
    ratio = free.mean_diagonal() / exact_diag
    assert float((ratio - 1).abs().max()) < 0.25
    rows = torch.arange(0, len(x), 3)
    dense.use_exact_hessian(rows)
    free.use_exact_hessian(rows)
    damping = 0.1 * scale * torch.linspace(0.5, 2.0, len(x), dtype=x.dtype)
    want, sane_dense = dense.solve(damping)
    got, sane = free.solve(damping)
    assert bool(sane.all()) and bool(sane_dense.all())
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0,
                               atol=1e-9 * float(want.abs().max()))


def test_preconditioned_solves_converge_in_a_few_products_near_a_reference():
    """Preconditioned by the (shifted) inverse at a point found, systems at states near it are
    solved in 5 products where the plain normal equations (J_v's condition number squared)
    are not."""
    dyn = systems.random_rate_network(256, seed=0)
    x0 = fp.sample_initial_states(dyn, 256, seed=0, n_steps=60, noise=0.05)
    found = fp.find_fixed_points(dyn, x0, krylov=True)
    ref = torch.as_tensor(found.x[found.kind != "slow"])
    gen = torch.Generator().manual_seed(0)
    x = ref.repeat(2, 1) + 0.01 * torch.randn(2 * len(ref), 256, generator=gen,
                                              dtype=torch.float64)
    with torch.no_grad():
        v = dyn.velocity(x)
    residuals = {}
    for name, refs in (("plain", None), ("preconditioned", ref)):
        newton = MatrixFreeNewton(dyn, max_iter=5, rtol=1e-14)
        if refs is not None:
            newton.use_references(refs)
        free = newton.systems(x, v)
        damping = 1e-6 * free.mean_diagonal()
        delta, _ = free.solve(damping)
        matrix = dyn.jacobian(x).transpose(1, 2) @ dyn.jacobian(x)
        matrix = matrix + damping[:, None, None] * torch.eye(256, dtype=x.dtype)
        residual = (matrix @ delta.unsqueeze(-1)).squeeze(-1) + free.gradient
        residuals[name] = float((residual.norm(dim=1) / free.gradient.norm(dim=1)).max())
    assert residuals["preconditioned"] < 1e-3 < residuals["plain"]


# Rate networks as in test_krylov.py (256 units, three seeds, 256 starts): with a dense
# budget of 8 candidates (limit 8 n³) the rest are polished matrix-free. The points are those
# of the Krylov path without a budget (which gives the dense path's points: test_krylov.py).
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_what_the_dense_budget_leaves_is_polished_matrix_free_to_the_same_points(seed):
    n = 256
    dyn = systems.random_rate_network(n, seed=seed)
    x0 = fp.sample_initial_states(dyn, 256, seed=0, n_steps=60, noise=0.05)
    full = fp.find_fixed_points(dyn, x0, krylov=True, polish_budget=None)
    budget = fp.find_fixed_points(dyn, x0, krylov=True, polish_budget=8 * n ** 3)
    assert budget.info["matrix_free_polished"] >= 6
    assert budget.info["polished"] < full.info["polished"]
    assert budget.info["over_budget"] == 0
    assert budget.status is full.status is fp.FinderStatus.CONVERGED
    assert budget.counts() == full.counts()
    fixed = [r.x[r.kind != "slow"] for r in (budget, full)]
    d = cdist(*fixed)
    assert len(fixed[1]) and d.min(0).max() <= 1e-9 and d.min(1).max() <= 1e-9
    slow = [r.x[r.kind == "slow"] for r in (budget, full)]
    if len(slow[1]):
        d = cdist(*slow)
        assert d.min(0).max() <= 1e-4 * full.scale and d.min(1).max() <= 1e-4 * full.scale


def test_without_krylov_the_budget_still_cuts_and_says_so():
    dyn = systems.random_rate_network(200, seed=0)
    x0 = fp.sample_initial_states(dyn, 256, seed=0, n_steps=60, noise=0.05)
    with pytest.warns(RuntimeWarning, match="budget.*krylov=True"):
        result = fp.find_fixed_points(dyn, x0, polish_budget=8 * 200 ** 3, krylov=False)
    assert result.status is fp.FinderStatus.BUDGET and result.info["over_budget"] > 0
    assert not result.info["krylov"] and "matrix_free_polished" not in result.info
    # automatic (the default): on where the candidates outnumber the dense budget only
    auto = fp.find_fixed_points(dyn, x0, polish_budget=8 * 200 ** 3)
    assert auto.info["krylov"] and auto.info["candidates"] > 8
    assert auto.status is fp.FinderStatus.CONVERGED and auto.info["over_budget"] == 0
    default = fp.find_fixed_points(dyn, x0)
    assert not default.info["krylov"] and default.info["candidates"] < 2e10 / 200 ** 3
