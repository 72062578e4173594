"""Gauss–Newton matrices ``JᵀJ`` and the damped solves of Levenberg–Marquardt, by blocks where
the Jacobian's last columns are diagonal.

A one-layer LSTM (or ``LSTMCell``) with state ``x = [h, c]`` of ``n = 2H`` dimensions has the
velocity Jacobian

    J_v = [[∂h'/∂h - I, diag(∂h'/∂c)],
           [∂c'/∂h,     diag(∂c'/∂c) - I]],

whose last ``H`` columns are diagonal in each of the two row blocks (``c_i`` enters only ``h'_i``
and ``c'_i``). Then ``JᵀJ`` has a diagonal trailing ``H × H`` block, and so has the exact
Hessian of the speed (``Σ_k v_k ∇²v_k`` is diagonal in ``c`` too: ``c'`` is linear in ``c`` and
``h'_i`` reads ``c_i`` only). With ``P`` the leading columns, :class:`Gram` keeps

    JᵀJ = [[A, Cᵀ], [C, diag(d)]],   A = J_Pᵀ J_P,  C = J_cᵀ J_P  (a column scaling of J_P),

one product of ``4H³`` flops instead of ``16H³`` for ``J_vᵀ J_v``, and solves
``(JᵀJ + δI) x = r`` through the Schur complement ``S = A + δI − Cᵀ diag(d + δ)⁻¹ C``
(``2H³`` for the product, ``H³/3`` for its Cholesky factor, against ``8H³/3`` for the factor of
the whole matrix). These are the same matrices and solutions as the dense ones, to round-off (a
block elimination of a symmetric positive definite matrix is as stable as its Cholesky
factorization; ``d + δ > 0`` and ``S`` positive definite exactly when the whole system is).

The layout is checked, not assumed (exact zeros off the block diagonals): Jacobians without it
are kept dense, and systems that are not positive definite (a damped exact Hessian may not be)
are solved densely by :func:`fixedpoints.linalg.solve` (Cholesky, LU, least squares), as before.
On the 128-unit flip-flop LSTM (n = 256, a polish batch of 32 states) forming and solving one
batch of damped systems took 19-23 ms (min of 20) instead of 53-59 ms for the dense product and
Cholesky factor (one thread, 2 shared cores at load 2; solutions equal to 6e-15).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import linalg as _linalg

__all__ = ["Gram", "has_diagonal_tail"]


def _tail_blocks(jac: torch.Tensor, tail: int) -> torch.Tensor:
    """The last ``tail`` columns of each matrix as row blocks, shape ``(b, n/tail, tail, tail)``
    (a contiguous copy: torch's elementwise passes over the strided view were 4-10x slower)."""
    b, n, _ = jac.shape
    return jac[:, :, n - tail:].contiguous().reshape(b, n // tail, tail, tail)


def _off_diagonal_zero(blocks: torch.Tensor) -> torch.Tensor:
    """Per batch row: are all entries off the diagonals of the trailing square blocks exactly
    zero? ``blocks`` (b, ..., k, k) is overwritten (its diagonals zeroed)."""
    blocks.diagonal(dim1=-2, dim2=-1).zero_()
    flat = blocks.reshape(len(blocks), -1)
    return (flat.amax(dim=1) == 0) & (flat.amin(dim=1) == 0)  # NaN fails; aminmax was 10x slower


def _fits(n: int, tail: Optional[int]) -> bool:
    return tail is not None and 0 < tail < n and n % tail == 0


def has_diagonal_tail(jac: torch.Tensor, tail: int) -> torch.Tensor:
    """Which Jacobians have their last ``tail`` columns diagonal in every block of ``tail`` rows.

    Parameters
    ----------
    jac : Tensor of shape (b, n, n)
    tail : int
        Size of the trailing block; must divide ``n``.

    Returns
    -------
    Tensor of shape (b,), bool
        True where every entry of those columns off the block diagonals is exactly zero.
    """
    if jac.ndim != 3 or jac.shape[1] != jac.shape[2] or not _fits(jac.shape[-1], tail):
        raise ValueError(f"jac has shape {tuple(jac.shape)} and tail={tail!r}; pass square "
                         f"matrices (b, n, n) and a positive tail below n that divides it")
    return _off_diagonal_zero(_tail_blocks(jac, tail))


class Gram:
    """``JᵀJ`` of a batch of Jacobians, and the damped systems ``(JᵀJ + δ I) x = r``.

    Parameters
    ----------
    jac : Tensor of shape (b, n, n)
    tail : int, optional
        When every Jacobian's last ``tail`` columns are diagonal in each block of ``tail`` rows
        (``tail`` dividing ``n``), the matrix is kept in blocks (module docstring); otherwise,
        and without ``tail``, as the dense ``(b, n, n)`` product.
    """

    def __init__(self, jac: torch.Tensor, tail: Optional[int] = None):
        b, n, _ = jac.shape
        self.n = n
        self.split = n  # the blocks: leading [:split], tail [split:] (n while dense)
        self.dense: Optional[torch.Tensor] = None
        if tail is not None and _fits(n, tail) and b:
            t = int(tail)
            blocks = _tail_blocks(jac, t)
            diag = blocks.diagonal(dim1=-2, dim2=-1).clone()  # (b, n / t, t)
            if bool(_off_diagonal_zero(blocks).all()):
                m = n - t
                lead = jac[:, :, :m].contiguous()
                self.split = m
                self.lead = lead.transpose(1, 2) @ lead  # A, (b, m, m)
                # C[j, p] = Σ_blocks diag[block, j] · J_P[block row j, p], (b, t, m)
                self.cross = (lead.reshape(b, n // t, t, m) * diag.unsqueeze(-1)).sum(1)
                self.corner = (diag * diag).sum(1)  # d, (b, t)
                return
        self.dense = jac.transpose(1, 2) @ jac

    def diagonal(self) -> torch.Tensor:
        """The diagonal of each matrix, shape ``(b, n)``."""
        if self.dense is not None:
            return torch.diagonal(self.dense, dim1=1, dim2=2)
        return torch.cat([torch.diagonal(self.lead, dim1=1, dim2=2), self.corner], dim=1)

    def matrix(self) -> torch.Tensor:
        """The matrices, dense, shape ``(b, n, n)``."""
        if self.dense is not None:
            return self.dense
        return self._assemble(self.lead, self.cross, self.corner)

    def _assemble(self, lead, cross, corner) -> torch.Tensor:
        m = self.split
        out = lead.new_empty(len(lead), self.n, self.n)
        out[:, :m, :m] = lead
        out[:, m:, :m] = cross
        out[:, :m, m:] = cross.transpose(1, 2)
        out[:, m:, m:] = torch.diag_embed(corner)
        return out

    def replace(self, rows: torch.Tensor, matrices: torch.Tensor) -> None:
        """Put symmetric ``matrices`` (k, n, n) in place of the matrices of ``rows`` (k,) (exact
        Hessians of the speed where Gauss–Newton turns linear); in blocks when they have the
        layout, else the whole batch turns dense."""
        if self.dense is None:
            m = self.split
            corner = matrices[:, m:, m:].contiguous()
            diag = corner.diagonal(dim1=1, dim2=2).clone()
            if bool(_off_diagonal_zero(corner).all()):
                self.lead[rows] = matrices[:, :m, :m]
                self.cross[rows] = matrices[:, m:, :m]
                self.corner[rows] = diag
                return
            self.dense, self.split = self.matrix(), self.n
        assert self.dense is not None
        self.dense[rows] = matrices

    def solve(self, damping: torch.Tensor,
              rhs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Solve ``(JᵀJ + damping_i I) x_i = rhs_i``.

        Parameters
        ----------
        damping : Tensor of shape (b,)
        rhs : Tensor of shape (b, n)

        Returns
        -------
        solution : Tensor of shape (b, n)
            Zero in the rows that are not sane.
        sane : Tensor of shape (b,), bool
            Rows whose system and right-hand side are finite (a sum is non-finite exactly when
            a term is, or when it overflows: both insane). The others must not reach LAPACK.
        """
        eye = torch.eye(self.n, dtype=rhs.dtype, device=rhs.device)
        rhs_ok = torch.isfinite(rhs.sum(dim=1))
        if self.dense is not None:
            system = self.dense + damping[:, None, None] * eye
            sane = torch.isfinite(system.sum(dim=(1, 2))) & rhs_ok
            if not bool(sane.all()):
                system = torch.where(sane[:, None, None], system, eye)
                rhs = torch.where(sane[:, None], rhs, torch.zeros_like(rhs))
            # JᵀJ + μI is positive definite: Cholesky; damped exact Hessians may not be: LU for
            # those rows, least squares where singular (never torch's batched LU, which breaks
            # after torch.set_num_threads: see fixedpoints/linalg.py)
            return _linalg.solve(system, rhs), sane
        m = self.split
        lead = self.lead + damping[:, None, None] * eye[:m, :m]
        corner = self.corner + damping[:, None]
        total = lead.sum(dim=(1, 2)) + 2 * self.cross.sum(dim=(1, 2)) + corner.sum(dim=1)
        sane = torch.isfinite(total) & rhs_ok
        solution = torch.zeros_like(rhs)
        todo = sane & (corner > 0).all(dim=1)
        rows = torch.nonzero(todo).flatten()
        if rows.numel():
            every = rows.numel() == len(rhs)
            a, c, d, r = ((lead, self.cross, corner, rhs) if every else
                          (lead[rows], self.cross[rows], corner[rows], rhs[rows]))
            scaled = c / d.unsqueeze(-1)  # diag(d)⁻¹ C
            schur = a - c.transpose(1, 2) @ scaled
            reduced = r[:, :m] - (r[:, m:].unsqueeze(1) @ scaled).squeeze(1)
            top, definite = _linalg.solve_spd(schur, reduced)
            bottom = (r[:, m:] - (c @ top.unsqueeze(-1)).squeeze(-1)) / d
            part = torch.cat([top, bottom], dim=1)
            if every and bool(definite.all()):
                return part, sane
            solution[rows[definite]] = part[definite]
            todo[rows[~definite]] = False
        dense = torch.nonzero(sane & ~todo).flatten()  # not positive definite: LU, lstsq
        if dense.numel():
            system = self._assemble(lead[dense], self.cross[dense], corner[dense])
            solution[dense] = _linalg.solve(system, rhs[dense])
        return solution, sane
