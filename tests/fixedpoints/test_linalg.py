"""fixedpoints.linalg: every batched solve and decomposition, checked against numpy, in this
process and in a child process that first calls ``torch.set_num_threads(2)`` (that call breaks
torch's batched MKL LU for n above ~150: pytorch issues 142815 and 141358). The children run
under a timeout, since the upstream bug can also hang; a hung child is killed by
``subprocess.run`` and the test fails."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import fixedpoints as fp
from fixedpoints import linalg

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str, tmp_path: Path, timeout: float = 240) -> dict:
    """Run ``code`` in a fresh interpreter after ``torch.set_num_threads(2)``; return the JSON
    it prints on its last line."""
    script = tmp_path / "child.py"
    script.write_text("import torch\ntorch.set_num_threads(2)\n" + textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _np_solve(a, b):
    """numpy's batched solve of ``a (k, n, n) x = b (k, n)``."""
    return np.linalg.solve(a, b[..., None])[..., 0]


def _batch(n, b, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((b, n, n)) / np.sqrt(n)
    rhs = rng.standard_normal((b, n))
    spd = a @ a.transpose(0, 2, 1) + 1e-2 * np.eye(n)
    indefinite = a + a.transpose(0, 2, 1)
    return a, spd, indefinite, rhs


# ---------------------------------------------------------------------------- in process
@pytest.mark.parametrize("n", [5, 160])
def test_solve_matches_numpy_for_definite_indefinite_and_general_systems(n):
    a, spd, indefinite, rhs = _batch(n, 6)
    t = torch.as_tensor
    x, ok = linalg.solve_spd(t(spd), t(rhs))
    assert bool(ok.all())
    np.testing.assert_allclose(x.numpy(), _np_solve(spd, rhs), rtol=1e-8, atol=1e-10)
    _, ok = linalg.solve_spd(t(indefinite), t(rhs))
    assert not bool(ok.any())  # Cholesky rejects indefinite matrices, it does not guess
    x = linalg.solve(t(indefinite), t(rhs))
    np.testing.assert_allclose(x.numpy(), _np_solve(indefinite, rhs), rtol=1e-7, atol=1e-9)
    x = linalg.solve(t(a), t(rhs), spd_first=False)
    np.testing.assert_allclose(x.numpy(), _np_solve(a, rhs), rtol=1e-7, atol=1e-9)


def test_exactly_singular_rows_fall_back_to_least_squares():
    a, _, indefinite, rhs = _batch(160, 4, seed=1)
    indefinite[1, :, 7] = 0.0  # a zero column and row: exactly singular, still symmetric
    indefinite[1, 7, :] = 0.0
    x = linalg.solve(torch.as_tensor(indefinite), torch.as_tensor(rhs)).numpy()
    expect = np.linalg.lstsq(indefinite[1], rhs[1], rcond=None)[0]
    np.testing.assert_allclose(x[1], expect, rtol=1e-6, atol=1e-8)
    for i in (0, 2, 3):
        np.testing.assert_allclose(x[i], _np_solve(indefinite[i], rhs[i]), rtol=1e-7,
                                   atol=1e-9)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(b, n, n\)"):
        linalg.solve(torch.zeros(3, 4, 5, dtype=torch.float64), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="rhs has shape"):
        linalg.solve_spd(torch.zeros(3, 4, 4, dtype=torch.float64), torch.zeros(3, 5))


# ------------------------------------------------------------ after set_num_threads(2)
_SYSTEM = """
import json, sys
import numpy as np
import torch
import fixedpoints as fp

def rnn(n=160, gain=1.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(n, n, generator=gen, dtype=torch.float64) * gain / np.sqrt(n)
    b = 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    def f(x, u):
        return -x + torch.tanh(x @ W.T + b)
    def jac(x, u):
        s = 1 - torch.tanh(x @ W.T + b) ** 2
        return -torch.eye(n, dtype=x.dtype) + s.unsqueeze(-1) * W
    def curv(x, u, w):
        t = torch.tanh(x @ W.T + b)
        return W.T @ ((w * -2 * t * (1 - t ** 2)).unsqueeze(-1) * W)
    return fp.ContinuousDynamics(f, n, jacobian_fn=jac, curvature_fn=curv)
"""


def _rnn():
    scope = {}
    exec(_SYSTEM, scope)
    return scope["rnn"]()


def test_finder_on_160_units_after_set_num_threads_2_gives_the_same_answer(tmp_path):
    # before fixedpoints.linalg, this child died in the polish's batched LU (MKL DLASWP error)
    dyn = _rnn()
    x0 = fp.sample_initial_states(dyn, 96, n_steps=40, noise=0.05, seed=0)
    reference = fp.find_fixed_points(dyn, x0)
    np.save(tmp_path / "x0.npy", x0)
    out = _child(_SYSTEM + """
dyn = rnn()
res = fp.find_fixed_points(dyn, np.load("x0.npy"))
print(json.dumps({"threads": torch.get_num_threads(), "x": res.x.tolist(),
                  "kind": res.kind.tolist(), "status": res.status.name,
                  "polished": res.info["polished"]}))
""", tmp_path)
    assert out["threads"] == 2
    assert out["status"] == reference.status.name == "CONVERGED"
    assert out["polished"] > 0 and len(reference) >= 3  # the polish ran: solves at n = 160
    assert sorted(out["kind"]) == sorted(reference.kind.tolist())
    d = cdist(np.array(out["x"]), reference.x)
    assert d.min(1).max() <= 1e-8 and d.min(0).max() <= 1e-8


def test_eigenvalue_computations_after_set_num_threads_2(tmp_path):
    dyn = _rnn()
    x = fp.sample_initial_states(dyn, 6, n_steps=10, noise=0.1, seed=1)
    jac = fp.jacobian(dyn, x)
    sym = jac + jac.transpose(0, 2, 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "sym.npy", sym)
    out = _child(_SYSTEM + """
from fixedpoints import linalg
lin = fp.linearize(rnn(), np.load("x.npy"))
sym = torch.as_tensor(np.load("sym.npy"))
sv = linalg.svd(sym)[1]
print(json.dumps({"re": lin.eigvals.real.tolist(), "im": lin.eigvals.imag.tolist(),
                  "residual": float(np.abs(np.einsum("kij,kjl->kil", lin.jacobian, lin.eigvecs)
                                           - lin.eigvecs * lin.eigvals[:, None, :]).max()),
                  "eigvalsh": linalg.eigvalsh(sym).tolist(), "svd": sv.tolist()}))
""", tmp_path)
    vals = np.array(out["re"]) + 1j * np.array(out["im"])
    expect = np.linalg.eigvals(jac)
    for k in range(len(x)):  # the same multiset of eigenvalues as LAPACK through numpy
        d = np.abs(vals[k][:, None] - expect[k][None, :])
        assert d.min(1).max() <= 1e-9 and d.min(0).max() <= 1e-9
    assert out["residual"] <= 1e-9  # J V = V Λ: the eigenvectors are right too
    np.testing.assert_allclose(out["eigvalsh"], np.linalg.eigvalsh(sym), atol=1e-10)
    np.testing.assert_allclose(out["svd"], np.linalg.svd(sym, compute_uv=False), atol=1e-10)


def test_solves_and_least_squares_fallback_after_set_num_threads_2(tmp_path):
    a, spd, indefinite, rhs = _batch(200, 8, seed=2)
    indefinite[3, :, 11] = 0.0
    indefinite[3, 11, :] = 0.0  # exactly singular: the least-squares fallback
    np.savez(tmp_path / "m.npz", a=a, spd=spd, indefinite=indefinite, rhs=rhs)
    out = _child("""
import json
import numpy as np
from fixedpoints import linalg
m = {k: torch.as_tensor(v) for k, v in np.load("m.npz").items()}
print(json.dumps({"spd": linalg.solve_spd(m["spd"], m["rhs"])[0].tolist(),
                  "indefinite": linalg.solve(m["indefinite"], m["rhs"]).tolist(),
                  "general": linalg.solve(m["a"], m["rhs"], spd_first=False).tolist(),
                  "lstsq": linalg.lstsq(m["a"], m["rhs"]).tolist()}))
""", tmp_path)
    np.testing.assert_allclose(out["spd"], _np_solve(spd, rhs), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(out["general"], _np_solve(a, rhs), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(out["lstsq"], _np_solve(a, rhs), rtol=1e-7, atol=1e-9)
    got = np.array(out["indefinite"])
    np.testing.assert_allclose(got[3], np.linalg.lstsq(indefinite[3], rhs[3], rcond=None)[0],
                               rtol=1e-6, atol=1e-8)
    keep = [i for i in range(8) if i != 3]
    np.testing.assert_allclose(got[keep], _np_solve(indefinite[keep], rhs[keep]),
                               rtol=1e-7, atol=1e-9)
