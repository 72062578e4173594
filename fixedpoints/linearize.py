"""Linearization: batched Jacobians, their spectra, and the stability of each point."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from . import linalg as _linalg
from .dynamics import Dynamics

__all__ = ["jacobian", "linearize", "classify", "Linearization", "sort_spectrum"]

#: Relative tolerance on eigenvalues: |λ| within this of the stability boundary counts as stable.
EIG_RTOL = 1e-9


@dataclass(frozen=True)
class Linearization:
    """Eigendecomposition of the Jacobian at a batch of points.

    Attributes
    ----------
    jacobian : ndarray of shape (k, n, n)
        Jacobian of the velocity ``J_v`` (discrete time: ``∂F/∂x - I``).
    eigvals : ndarray of shape (k, n), complex
        Native spectrum (discrete: of ``∂F/∂x``), sorted by decreasing real part (continuous) or
        modulus (discrete).
    eigvecs : ndarray of shape (k, n, n), complex
        Right eigenvectors as columns, in the order of ``eigvals``.
    unstable : ndarray of shape (k, n), bool
        Which eigenvalues are unstable.
    """

    jacobian: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    unstable: np.ndarray

    @property
    def n_unstable(self) -> np.ndarray:
        """Index of each point, shape ``(k,)``."""
        return self.unstable.sum(axis=1)

    def unstable_directions(self, i: int) -> np.ndarray:
        """Real unit vectors spanning the unstable subspace at point ``i``, shape ``(m, n)``.

        A complex pair contributes its real and imaginary parts.
        """
        vecs = self.eigvecs[i][:, self.unstable[i]]
        vals = self.eigvals[i][self.unstable[i]]
        out = []
        for j in range(vecs.shape[1]):
            if np.iscomplex(vals[j]) and vals[j].imag < 0:
                continue  # the conjugate partner already gave both real directions
            parts = ([vecs[:, j].real, vecs[:, j].imag] if np.iscomplex(vals[j])
                     else [vecs[:, j].real])
            for p in parts:
                norm = np.linalg.norm(p)
                if norm > 1e-12:
                    out.append(p / norm)
        return np.array(out).reshape(-1, self.eigvecs.shape[1])


def jacobian(dynamics: Dynamics, x, batch_size: int = 1024) -> np.ndarray:
    """Jacobian of the velocity at each state.

    Parameters
    ----------
    dynamics : Dynamics
    x : array_like of shape (k, n_states)
    batch_size : int
        Points per batched ``torch.func`` call (bounds peak memory at ``batch_size * n^2``).

    Returns
    -------
    ndarray of shape (k, n_states, n_states)
    """
    xt = dynamics.states(x)
    parts = [dynamics.jacobian(xt[i:i + batch_size]).detach().cpu().numpy()
             for i in range(0, xt.shape[0], batch_size)]
    if not parts:
        return np.zeros((0, dynamics.n_states, dynamics.n_states))
    return np.concatenate(parts, axis=0)


def sort_spectrum(eigvals: np.ndarray, time: str, eigvecs: Optional[np.ndarray] = None):
    """Sort native spectra per row: decreasing real part (continuous) or modulus (discrete)."""
    key = np.abs(eigvals) if time == "discrete" else np.real(eigvals)
    # tie-break on the imaginary part so conjugate pairs stay adjacent and the order is stable
    order = np.lexsort((-np.imag(eigvals), -np.round(key, 12)), axis=-1)
    vals = np.take_along_axis(eigvals, order, axis=-1)
    if eigvecs is None:
        return vals
    vecs = np.take_along_axis(eigvecs, order[..., None, :], axis=-1)
    return vals, vecs


def _native_spectrum(dynamics: Dynamics, jac: np.ndarray, with_vectors: bool):
    # torch's LAPACK is used rather than numpy's: on a shared 2-core machine numpy's OpenBLAS
    # threads busy-wait and were measured 15-50x slower for a batch of 128x128 spectra.
    jac_t = torch.as_tensor(jac)
    vecs: Optional[np.ndarray] = None
    if with_vectors:
        vals_t, vecs_t = _linalg.eig(jac_t)
        vals, vecs = vals_t.numpy(), vecs_t.numpy()
    else:
        vals = _linalg.eigvals(jac_t).numpy()
    native = dynamics.eigvals_native(vals.astype(complex))
    return sort_spectrum(native, dynamics.time, None if vecs is None else vecs.astype(complex))


def linearize(dynamics: Dynamics, x) -> Linearization:
    """Jacobian, native eigenvalues and eigenvectors, and unstable directions at each point.

    Parameters
    ----------
    dynamics : Dynamics
    x : array_like of shape (k, n_states)

    Returns
    -------
    Linearization
    """
    jac = jacobian(dynamics, x)
    if len(jac) == 0:
        n = dynamics.n_states
        return Linearization(jac, np.zeros((0, n), complex), np.zeros((0, n, n), complex),
                             np.zeros((0, n), bool))
    vals, vecs = _native_spectrum(dynamics, jac, with_vectors=True)
    return Linearization(jac, vals, vecs, dynamics.unstable_mask(vals, EIG_RTOL))


def classify(dynamics: Dynamics, eigvals: np.ndarray, speed: np.ndarray,
             q_fixed: float) -> Tuple[np.ndarray, np.ndarray]:
    """Kind and index of each point from its native spectrum and speed.

    Parameters
    ----------
    dynamics : Dynamics
        Only its ``time`` is used.
    eigvals : ndarray of shape (k, n), complex
        Native spectra.
    speed : ndarray of shape (k,)
        q at each point.
    q_fixed : float
        Points with ``speed > q_fixed`` are ``slow``.

    Returns
    -------
    kind : ndarray of shape (k,), str
        ``stable`` (index 0), ``unstable`` (every direction unstable), ``saddle`` (in between),
        or ``slow``.
    n_unstable : ndarray of shape (k,), int
    """
    n_unstable = dynamics.unstable_mask(eigvals, EIG_RTOL).sum(axis=1).astype(int)
    n = eigvals.shape[1] if eigvals.ndim == 2 else 0
    kind = np.where(n_unstable == 0, "stable", np.where(n_unstable == n, "unstable", "saddle"))
    kind = np.where(np.asarray(speed) > q_fixed, "slow", kind).astype("<U8")
    return kind, n_unstable
