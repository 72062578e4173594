"""JᵀJ and the damped solves by blocks (fixedpoints/gram.py) against the dense ones."""
import numpy as np
import pytest
import torch
from torch import nn

import fixedpoints as fp
from fixedpoints import linalg
from fixedpoints.gram import Gram, has_diagonal_tail


def _lstm(hidden=6, cell=False, seed=0, gain=1.0):
    torch.manual_seed(seed)
    module = nn.LSTMCell(3, hidden) if cell else nn.LSTM(3, hidden)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(gain)
    return fp.from_module(module, input=[0.3, -0.2, 0.5])


def _states(dyn, k=5, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(k, dyn.n_states, dtype=torch.float64, generator=gen)


@pytest.mark.parametrize("cell", [False, True])
def test_one_layer_lstm_has_the_layout_and_its_gram_is_the_dense_one(cell):
    dyn = _lstm(cell=cell)
    assert dyn.diagonal_tail == 6
    jac = dyn.jacobian(_states(dyn))
    assert bool(has_diagonal_tail(jac, 6).all())
    gram = Gram(jac, 6)
    assert gram.dense is None  # kept in blocks
    dense = jac.transpose(1, 2) @ jac
    torch.testing.assert_close(gram.matrix(), dense, atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(gram.diagonal(), torch.diagonal(dense, dim1=1, dim2=2),
                               atol=1e-13, rtol=1e-12)


def test_other_recurrences_do_not_claim_the_layout():
    torch.manual_seed(2)
    for module in (nn.LSTM(3, 4, num_layers=2), nn.GRU(3, 4), nn.GRUCell(3, 4), nn.RNN(3, 4)):
        dyn = fp.from_module(module)
        assert dyn.diagonal_tail is None
    # a two-layer LSTM's lower c feeds the upper layer densely: the check says no
    dyn = fp.from_module(nn.LSTM(3, 4, num_layers=2))
    jac = dyn.jacobian(_states(dyn))
    assert not bool(has_diagonal_tail(jac, 8).any())
    gram = Gram(jac, 8)
    assert gram.dense is not None
    torch.testing.assert_close(gram.matrix(), jac.transpose(1, 2) @ jac, atol=0, rtol=0)


def test_block_solve_equals_the_dense_solve():
    dyn = _lstm()
    x = _states(dyn, k=7)
    jac = dyn.jacobian(x)
    gram = Gram(jac, 6)
    # a zero damping too (JᵀJ alone is definite here: J_v is not singular)
    damping = torch.tensor([1e-3, 1e-1, 1.0, 10.0, 0.0, 0.5, 1e-8], dtype=torch.float64)
    rhs = torch.randn(7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    solution, sane = gram.solve(damping, rhs)
    system = jac.transpose(1, 2) @ jac + damping[:, None, None] * torch.eye(12,
                                                                           dtype=torch.float64)
    reference = torch.linalg.solve(system, rhs.unsqueeze(-1)).squeeze(-1)
    assert bool(sane.all())
    torch.testing.assert_close(solution, reference, atol=1e-10, rtol=1e-10)
    residual = (system @ solution.unsqueeze(-1)).squeeze(-1) - rhs
    assert float(residual.norm(dim=1).max()) <= 1e-11 * float(rhs.norm(dim=1).max())


def test_exact_hessian_rows_keep_the_blocks_and_indefinite_systems_go_dense():
    """The exact Hessian of the speed has the same diagonal corner (Σ v_k ∇²v_k is diagonal
    in c); an indefinite damped system is solved by LU as the dense path does."""
    dyn = _lstm(gain=2.0)
    x = _states(dyn, k=6)
    jac = dyn.jacobian(x)
    hess = dyn.speed_hessian(x[[1, 4]], jacobian=jac[[1, 4]])
    reference = dyn._replace(diagonal_tail=None).speed_hessian(x[[1, 4]])
    torch.testing.assert_close(hess, reference, atol=1e-12, rtol=1e-12)
    gram = Gram(jac, 6)
    gram.replace(torch.tensor([1, 4]), hess)
    assert gram.dense is None
    dense = jac.transpose(1, 2) @ jac
    dense[[1, 4]] = hess
    torch.testing.assert_close(gram.matrix(), dense, atol=1e-13, rtol=1e-12)
    # row 1's damping half-way between its two lowest eigenvalues (negated): indefinite
    damping = torch.full((6,), 1e-2, dtype=torch.float64)
    low = torch.linalg.eigvalsh(dense[1])
    damping[1] = -0.5 * (low[0] + low[1])
    rhs = torch.randn(6, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    solution, sane = gram.solve(damping, rhs)
    system = dense + damping[:, None, None] * torch.eye(12, dtype=torch.float64)
    assert float(torch.linalg.eigvalsh(system[1])[0]) < 0  # really indefinite
    torch.testing.assert_close(solution, linalg.solve(system, rhs), atol=1e-10, rtol=1e-10)
    assert bool(sane.all())


def test_a_dense_replacement_turns_the_batch_dense_and_insane_rows_stop():
    dyn = _lstm()
    jac = dyn.jacobian(_states(dyn, k=4))
    gram = Gram(jac, 6)
    full = torch.ones(1, 12, 12, dtype=torch.float64) + 5 * torch.eye(12, dtype=torch.float64)
    gram.replace(torch.tensor([2]), full)  # no diagonal corner: the batch turns dense
    assert gram.dense is not None
    expected = jac.transpose(1, 2) @ jac
    expected[2] = full[0]
    torch.testing.assert_close(gram.matrix(), expected, atol=1e-13, rtol=1e-12)
    blocks = Gram(jac, 6)
    rhs = torch.ones(4, 12, dtype=torch.float64)
    rhs[3, 0] = float("inf")
    for g in (gram, blocks):
        solution, sane = g.solve(torch.full((4,), 0.1, dtype=torch.float64), rhs)
        assert sane.tolist() == [True, True, True, False]
        assert bool((solution[3] == 0).all()) and bool(torch.isfinite(solution).all())


def bistable_lstm(hidden=3, coupling=0.1, seed=0) -> fp.Dynamics:
    """A one-layer LSTM whose units are each bistable (c' = c/2 + tanh(4h)/2, h = σ(2) tanh(c),
    slope 3.5 at 0) with a weak random coupling: 3^hidden fixed points, C(hidden, k) 2^(hidden-k)
    of index k (8 stable and 12 + 6 + 1 saddles for 3 units, as the 3-bit flip-flop)."""
    gen = torch.Generator().manual_seed(seed)
    module = nn.LSTM(2, hidden)
    with torch.no_grad():
        w = coupling * torch.randn(4 * hidden, hidden, generator=gen)
        w[2 * hidden:3 * hidden] += 4 * torch.eye(hidden)
        module.weight_hh_l0.copy_(w)
        module.weight_ih_l0.copy_(0.3 * torch.randn(4 * hidden, 2, generator=gen))
        bias = torch.zeros(4 * hidden)
        bias[3 * hidden:] = 2.0
        module.bias_hh_l0.copy_(bias)
        module.bias_ih_l0.zero_()
    return fp.from_module(module, input=[0.1, -0.1])


def test_the_finder_gives_the_same_points_with_and_without_the_blocks():
    """On an LSTM with known fixed points the block path finds all 27 (the saddles through the
    midpoints, some of which the points found explain before any polish) and changes no point,
    kind or count against the dense path (J_vᵀJ_v and the Cholesky factor of the whole)."""
    dyn = bistable_lstm()
    x0 = fp.sample_initial_states(dyn, 512, seed=0, n_steps=30, noise=0.5)
    blocks = fp.find_fixed_points(dyn, x0, certify=False)
    dense = fp.find_fixed_points(dyn._replace(diagonal_tail=None), x0, certify=False)
    assert blocks.index_counts() == {0: 8, 1: 12, 2: 6, 3: 1}, blocks.index_counts()
    assert blocks.status is fp.FinderStatus.CONVERGED
    assert blocks.info["midpoints_attributed"] > 0
    assert blocks.counts() == dense.counts() and blocks.status == dense.status
    order_b, order_d = np.lexsort(blocks.x.T), np.lexsort(dense.x.T)
    np.testing.assert_allclose(blocks.x[order_b], dense.x[order_d], rtol=1e-9, atol=1e-9)
    assert list(blocks.kind[order_b]) == list(dense.kind[order_d])
    # each is a fixed point of the map itself (not only of the finder's speed)
    x = torch.as_tensor(blocks.x)
    assert float((dyn.step(x) - x).abs().max()) < 1e-12
