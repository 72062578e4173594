"""Batched linear algebra of the whole library, in one place, safe under ``torch.set_num_threads``.

Why this module exists: after a user calls ``torch.set_num_threads(k)`` (any k ≥ 2, and also
after a library sets the count back to its old value), torch's **batched** LU through MKL
(``torch.linalg.solve_ex``, ``lu_factor_ex``, ``inv``, and everything built on them) breaks for
matrices larger than about 150: MKL prints "Parameter 6 was incorrect on entry to DLASWP" and the
call either raises "Pivots given to lu_solve must all be greater or equal to 1" or hangs (open
upstream bugs pytorch/pytorch#142815 and #141358). Measured here with torch 2.13 (CPU wheel,
MKL 2024.2) after ``set_num_threads(2)``: batches of 2 to 64 matrices fail from n = 152 up to
1024 (n ≤ 144 is fine); unbatched LU, batched Cholesky, LDLᵀ, least squares (``gelsy``), QR, SVD,
``eigh``/``eigvalsh`` and ``eig``/``eigvals`` all stay correct (same results to 1e-11 as with one
thread). What each path below uses, and why (figures: bench of this module's choices, 2 shared
cores, median ms for the finder's batch sizes n=160/b=51, n=512/b=16, n=1024/b=8, after
``set_num_threads(2)``):

* symmetric positive definite systems (the Levenberg–Marquardt matrices ``JᵀJ + μI``):
  batched Cholesky (``cholesky_ex`` + ``cholesky_solve``), 26/80/159 ms, as fast as batched
  LU was before the call (16/93/391 ms with one thread) and about half its flops;
* symmetric or general systems that need not be positive definite (exact-Hessian Newton steps):
  Cholesky first (most damped Hessians near a minimum are definite), then for the rows it
  rejects an LU **one matrix at a time** (29/69/147 ms for the whole batch), which the bug
  does not touch. Rejected alternatives: LDLᵀ (27/144/344 ms), eigh (221/1391/2705 ms), and
  "LU under one thread": calling ``torch.set_num_threads(1)`` and back is itself an explicit
  call, and afterwards the user's own batched solves break even if they never set a count;
* below n = 64 (far from the n ≈ 150 where the bug starts) batched LU is kept: one call for
  the batch instead of one per matrix. On CUDA tensors the bug does not apply (cuSOLVER /
  MAGMA) and batched LU is used throughout;
* the Krylov phase's preconditioner (:func:`inverse`): the explicit inverse of ONE matrix
  (unbatched LU, untouched by the bug), applied to a batch as one matrix product;
* exactly singular systems: least squares by SVD (``gelsd``), safe under the bug. Not torch's
  default ``gelsy``: on a batch holding one exactly singular symmetric 160×160 matrix it
  returned a residual 8× the least-squares optimum (the unbatched call and ``gelsd`` both
  reach it). On CUDA (which has only ``gels``, full rank) the pseudo-inverse is used.

Eigenvalue routines are safe and are wrapped here only so that every decomposition of the
library goes through one module (a later workaround then lands in one place).
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch

__all__ = ["solve_spd", "solve", "gmres", "lstsq", "eig", "eigvals", "eigvalsh", "svd",
           "inverse", "BATCHED_LU_MAX_N"]

#: Largest n for which batched LU is used on the CPU (the MKL bug starts near n = 150).
BATCHED_LU_MAX_N = 64


def _check(matrix: torch.Tensor, rhs: torch.Tensor) -> None:
    if matrix.ndim != 3 or matrix.shape[1] != matrix.shape[2]:
        raise ValueError(f"matrix has shape {tuple(matrix.shape)}; pass a batch of square "
                         f"matrices of shape (b, n, n)")
    if rhs.shape != matrix.shape[:2]:
        raise ValueError(f"rhs has shape {tuple(rhs.shape)} but matrix has shape "
                         f"{tuple(matrix.shape)}; pass right-hand sides of shape (b, n)")


def solve_spd(matrix: torch.Tensor, rhs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Solve symmetric positive definite systems by batched Cholesky.

    Parameters
    ----------
    matrix : Tensor of shape (b, n, n)
        Symmetric matrices (only the lower triangle is read).
    rhs : Tensor of shape (b, n)

    Returns
    -------
    solution : Tensor of shape (b, n)
        Zero in the rows that are not positive definite.
    ok : Tensor of shape (b,), bool
        Which rows were positive definite (and solved).
    """
    _check(matrix, rhs)
    chol, info = torch.linalg.cholesky_ex(matrix)
    ok = info == 0
    if bool(ok.all()):  # the usual case: no gather (a copy of every factor) of the rows
        return torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1), ok
    solution = torch.zeros_like(rhs)
    if bool(ok.any()):
        solution[ok] = torch.cholesky_solve(rhs[ok].unsqueeze(-1), chol[ok]).squeeze(-1)
    return solution, ok


def _lu_solve(matrix: torch.Tensor, rhs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """LU solve that avoids batched MKL LU above :data:`BATCHED_LU_MAX_N` (see module doc)."""
    n = matrix.shape[-1]
    if matrix.device.type != "cpu" or n <= BATCHED_LU_MAX_N or len(matrix) <= 1:
        solution, info = torch.linalg.solve_ex(matrix, rhs.unsqueeze(-1))
        return solution.squeeze(-1), info == 0
    solution = torch.empty_like(rhs)
    ok = torch.empty(len(matrix), dtype=torch.bool, device=matrix.device)
    for i in range(len(matrix)):  # one matrix per call: the unbatched LU is not affected
        x_i, info_i = torch.linalg.solve_ex(matrix[i], rhs[i].unsqueeze(-1))
        solution[i] = x_i.squeeze(-1)
        ok[i] = info_i == 0
    return solution, ok


def solve(matrix: torch.Tensor, rhs: torch.Tensor, *, spd_first: bool = True) -> torch.Tensor:
    """Solve square systems of any kind: Cholesky where definite, LU elsewhere, least squares
    where exactly singular.

    Parameters
    ----------
    matrix : Tensor of shape (b, n, n)
    rhs : Tensor of shape (b, n)
    spd_first : bool
        Try Cholesky first (right for symmetric matrices that are usually definite, e.g.
        damped Gauss–Newton or Hessian systems; a non-symmetric matrix must pass False, since
        Cholesky reads only its lower triangle).

    Returns
    -------
    Tensor of shape (b, n)
    """
    _check(matrix, rhs)
    if len(matrix) == 0:
        return rhs.clone()
    if spd_first:
        solution, done = solve_spd(matrix, rhs)
    else:
        solution, done = torch.zeros_like(rhs), torch.zeros(len(rhs), dtype=torch.bool,
                                                            device=rhs.device)
    rest = torch.nonzero(~done).flatten()
    if rest.numel():
        x_lu, ok = _lu_solve(matrix[rest], rhs[rest])
        solution[rest] = x_lu
        singular = rest[~ok]
        if singular.numel():  # exactly singular even with damping: least squares
            solution[singular] = lstsq(matrix[singular], rhs[singular])
    return solution


def gmres(matvec: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, *,
          max_iter: int = 20, rtol: float = 0.1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batched GMRES from zero, matrix-free: approximate solutions of ``A_i x_i = rhs_i``.

    Every system gets its own Krylov space; ``matvec`` applies all of them at once (one call per
    iteration), so the cost is ``max_iter`` batched products (e.g. Jacobian–vector products at
    b·n² each) instead of a factorization at n³ per system. Classical Gram–Schmidt, applied
    twice (stable to round-off, one batched product per pass).

    Parameters
    ----------
    matvec : callable
        ``matvec(V) -> (b, n)``: row i of the result is ``A_i V[i]``.
    rhs : Tensor of shape (b, n)
    max_iter : int
        Krylov dimension (no restarts).
    rtol : float
        Iteration stops once every residual ``‖A_i x_i − rhs_i‖ ≤ rtol ‖rhs_i‖`` (checked every
        fifth iteration and at the end).

    Returns
    -------
    solution : Tensor of shape (b, n)
    residual : Tensor of shape (b,)
        Relative residuals ``‖A_i x_i − rhs_i‖ / ‖rhs_i‖`` (0 where ``rhs_i = 0``).
    """
    b, n = rhs.shape
    m = max(1, min(int(max_iter), n))
    beta = rhs.norm(dim=1)
    safe = torch.where(beta > 0, beta, torch.ones_like(beta))
    basis = rhs.new_zeros(b, m + 1, n)
    hess = rhs.new_zeros(b, m + 1, m)
    basis[:, 0] = rhs / safe[:, None]
    e1 = rhs.new_zeros(b, m + 1)
    e1[:, 0] = beta
    y = rhs.new_zeros(b, 0)
    residual = torch.ones_like(beta)
    k = 0
    for j in range(m):
        w = matvec(basis[:, j])
        prev = basis[:, :j + 1]
        h = torch.zeros(b, j + 1, dtype=rhs.dtype, device=rhs.device)
        for _ in range(2):
            c = (prev @ w.unsqueeze(-1)).squeeze(-1)
            w = w - (c.unsqueeze(1) @ prev).squeeze(1)
            h = h + c
        norm = w.norm(dim=1)
        hess[:, :j + 1, j] = h
        hess[:, j + 1, j] = norm
        basis[:, j + 1] = w / torch.where(norm > 0, norm, torch.ones_like(norm))[:, None]
        k = j + 1
        if k % 5 == 0 or k == m or bool((norm <= 1e-14 * safe).all()):
            small = hess[:, :k + 1, :k]
            y = lstsq(small, e1[:, :k + 1])  # (k + 1, k) Hessenberg: rank-deficient at breakdown
            res = (e1[:, :k + 1] - (small @ y.unsqueeze(-1)).squeeze(-1)).norm(dim=1)
            residual = torch.where(beta > 0, res / safe, torch.zeros_like(res))
            if bool((residual <= rtol).all()):
                break
    solution = (y.unsqueeze(1) @ basis[:, :k]).squeeze(1)
    return solution, residual


def inverse(matrix: torch.Tensor) -> torch.Tensor:
    """Explicit inverse of ONE square matrix: a preconditioner shared by a batch of nearby
    systems (:mod:`fixedpoints.krylov`), applied to all of them by one matrix product.

    One unbatched LU and inversion (2 n³; the MKL bug of the module docstring concerns batched
    LU only). A preconditioner need not be exact, and its product with a batch of b vectors is
    one GEMM (2 b n², at full matrix-product speed), where triangular solves with the LU factors
    ran at half of it (measured, n = 1024, b = 256: 19 ms per ``lu_solve``).

    Parameters
    ----------
    matrix : Tensor of shape (n, n)

    Returns
    -------
    Tensor of shape (n, n)

    Raises
    ------
    ValueError
        When the matrix is singular to working precision or not finite.
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix has shape {tuple(matrix.shape)}; pass one square matrix of "
                         f"shape (n, n)")
    lu, pivots, info = torch.linalg.lu_factor_ex(matrix)
    diag = torch.diagonal(lu).abs()
    if int(info) != 0 or not bool(torch.isfinite(lu).all()) \
            or float(diag.min()) <= 1e-14 * float(diag.max()):
        raise ValueError("matrix is singular to working precision; it has no usable inverse")
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    return torch.linalg.lu_solve(lu, pivots, eye)


def lstsq(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least-squares solutions ``argmin ‖A x − b‖`` (SVD-based: ``gelsd`` on the
    CPU, the pseudo-inverse elsewhere).

    Parameters
    ----------
    matrix : Tensor of shape (b, m, n)
        Square or not (GMRES's (k + 1, k) Hessenberg matrices).
    rhs : Tensor of shape (b, m)

    Returns
    -------
    Tensor of shape (b, n)
    """
    if matrix.ndim != 3 or rhs.shape != matrix.shape[:2]:
        raise ValueError(f"matrix has shape {tuple(matrix.shape)} and rhs {tuple(rhs.shape)}; "
                         f"pass matrices of shape (b, m, n) and right-hand sides of shape (b, m)")
    if matrix.device.type == "cpu":
        return torch.linalg.lstsq(matrix, rhs.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    return (torch.linalg.pinv(matrix) @ rhs.unsqueeze(-1)).squeeze(-1)


def eig(matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues ``(b, n)`` and right eigenvectors ``(b, n, n)`` (columns) of general
    matrices."""
    return torch.linalg.eig(matrix)


def eigvals(matrix: torch.Tensor) -> torch.Tensor:
    """Eigenvalues ``(b, n)`` of general matrices (complex)."""
    return torch.linalg.eigvals(matrix)


def eigvalsh(matrix: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues ``(b, n)`` of symmetric matrices."""
    return torch.linalg.eigvalsh(matrix)


def svd(matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U (b, n, n)``, singular values ``(b, n)`` (descending) and ``Vᴴ (b, n, n)``."""
    return torch.linalg.svd(matrix)
