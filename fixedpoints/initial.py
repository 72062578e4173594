"""Initial states for the finder: sampled from the system's own trajectories, and spread over the
subspace those trajectories span (:func:`subspace_seeds`), so that basins the trajectories never
enter are searched too."""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch

from .dynamics import Dynamics

__all__ = ["sample_initial_states", "state_spread", "subspace_seeds"]

log = logging.getLogger(__name__)


def state_spread(x) -> float:
    """RMS distance of states to their centroid: the length scale of a set of states.

    Parameters
    ----------
    x : array_like of shape (b, n)

    Returns
    -------
    float
        0.0 for fewer than two states.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or len(x) < 2:
        return 0.0
    return float(np.sqrt(np.mean(np.sum((x - x.mean(0)) ** 2, axis=1))))


#: A run that overflows is cut where it leaves the ball of this many times the largest start's
#: norm (sample_initial_states).
_ESCAPE = 10.0

#: A run with a coordinate beyond this counts as blown up even while finite (its square would
#: overflow float64).
_OVERFLOW = 1e150


def sample_initial_states(dynamics: Dynamics, n_samples: int = 1024, *, inputs=None,
                          x0=None, n_steps: int = 100, n_trajectories: Optional[int] = None,
                          init_scale: float = 1.0, noise: float = 0.0, burn_in: int = 0,
                          dt: Optional[float] = None, seed: int = 0,
                          return_spread: bool = False):
    """Sample states visited by the system, optionally with noise.

    Trajectories are driven by ``inputs`` when given; otherwise they run autonomously (with the
    bound constant input) from random starting states. ``n_samples`` states are then drawn
    uniformly from all visited states after ``burn_in`` steps.

    Parameters
    ----------
    dynamics : Dynamics
    n_samples : int
        Number of states returned.
    inputs : array_like of shape (T, n_inputs) or (b, T, n_inputs), optional
        Input sequences to drive the system with (e.g. task trials).
    x0 : array_like of shape (b, n_states), optional
        Starting states; default: ``init_scale`` · standard normal.
    n_steps : int
        Steps per trajectory when running autonomously (ignored when ``inputs`` is given).
    n_trajectories : int, optional
        Number of autonomous trajectories (default ``min(n_samples, 256)``).
    init_scale : float
        Standard deviation of random starting states.
    noise : float
        Standard deviation of Gaussian noise added to the samples, relative to the RMS spread
        of the visited states per coordinate.
    burn_in : int
        Steps at the start of each trajectory that are not sampled.
    dt : float, optional
        Integration step in continuous time (default ``dynamics.dt``).
    seed : int
        Seeds every random choice: the same seed gives the same states.
    return_spread : bool
        Also return the RMS distance of *all* visited states to their centroid. It depends far
        less on the seed than the spread of the ``n_samples`` drawn: when trajectories converge
        fast, the few early states a small draw happens to include decide the latter.

    Returns
    -------
    ndarray of shape (n_samples, n_states)
        With ``return_spread``: a tuple (states, spread).
    """
    if int(n_samples) < 1:
        raise ValueError(f"n_samples={n_samples!r} is invalid; pass a positive integer")
    if noise < 0 or not np.isfinite(noise):
        raise ValueError(f"noise={noise!r} is invalid; pass a number >= 0")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    n = dynamics.n_states
    if inputs is not None:
        inputs_t = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor)
                                   else inputs, dtype=dynamics.dtype)
        if inputs_t.ndim == 2:
            inputs_t = inputs_t.unsqueeze(0)
        if inputs_t.ndim != 3 or inputs_t.shape[-1] != dynamics.n_inputs:
            raise ValueError(f"inputs has shape {tuple(inputs_t.shape)}; pass (T, "
                             f"{dynamics.n_inputs}) or (b, T, {dynamics.n_inputs}) to match the "
                             f"model's {dynamics.n_inputs} input(s)")
        if not bool(torch.isfinite(inputs_t).all()):
            raise ValueError("inputs has non-finite values (NaN/inf); clean the input array")
        b, steps = inputs_t.shape[0], inputs_t.shape[1]
        inputs_t = inputs_t.to(dynamics.device)
    else:
        b = int(n_trajectories or min(int(n_samples), 256))
        steps = int(n_steps)
    if x0 is None:
        start = init_scale * torch.randn(b, n, generator=gen, dtype=dynamics.dtype)
    else:
        start = dynamics.states(x0, name="x0").cpu()
        if inputs is not None and start.shape[0] == 1 and b > 1:
            start = start.expand(b, n)
        if inputs is None:
            b = start.shape[0]
        elif start.shape[0] != b:
            raise ValueError(f"x0 has {start.shape[0]} states but inputs has {b} sequences; "
                             f"pass one x0 per sequence (or a single x0)")
    traj = dynamics.simulate(start.to(dynamics.device), steps, inputs=inputs_t if inputs is not
                             None else None, dt=dt)
    traj = traj.cpu()
    # a trajectory that overflows (a blow-up in finite time, as r + x² past its ghost) passes
    # through states of 1e150 and more first: their spread overflows too and turns every noisy
    # sample into inf. Such a run is cut where it first leaves the ball of _ESCAPE times the
    # largest start's norm (what came before, its passage by the ghost or the saddle, stays).
    # One pass over the trajectories finds the runs that blow up: NaN fails the comparison, and
    # a run still finite but past 1e150 overflows the spread's squares all the same.
    peak = torch.maximum(traj.amax((1, 2)), -traj.amin((1, 2)))
    blows_up = ~(peak <= _OVERFLOW)
    kept = traj[:, 1 + int(burn_in):]
    if bool(blows_up.any()):
        finite = torch.isfinite(traj).all(2)
        bound = _ESCAPE * max(float(traj[:, 0].norm(dim=1).max()), 1.0)
        inside = finite & (torch.nan_to_num(traj, nan=0.0, posinf=0.0, neginf=0.0).norm(dim=2)
                           <= bound)
        stays = torch.cumprod(inside.to(torch.int8), dim=1).bool() | ~blows_up[:, None]
        visited = kept[stays[:, 1 + int(burn_in):]]
    else:  # nothing to cut: the states in place, in the same (row-major) order
        visited = kept.reshape(-1, n)
    if len(visited) == 0:
        raise ValueError("every simulated state was non-finite or burn_in removed them all; "
                         "lower burn_in, shorten n_steps, or check the weights for divergence")
    pick = torch.randint(len(visited), (int(n_samples),), generator=gen)
    states = visited[pick].clone()
    visited_spread = 0.0
    if noise > 0 or return_spread:
        # the per-coordinate sums of squares about the centroid give both spreads in one pass
        squares = (visited - visited.mean(0)).square_().sum(0)
        visited_spread = float((squares.sum() / len(visited)).sqrt())
        if noise > 0:
            spread = (squares / max(len(visited) - 1, 1)).mean().sqrt()
            states += noise * spread * torch.randn(states.shape, generator=gen,
                                                   dtype=states.dtype)
    log.debug("sample_initial_states: %d states from %d trajectories of %d steps",
              n_samples, b, steps)
    if return_spread:
        return states.numpy(), visited_spread
    return states.numpy()


def subspace_seeds(states, n_seeds: int = 32, *, extend: float = 1.0, max_dim: int = 3,
                   variance: float = 0.99, seed: int = 0) -> np.ndarray:
    """States spread over the subspace the visited states span, beyond their range.

    When every trajectory from random states falls into one basin, the states sampled on them
    never come near the other attractors. The visited states still say *where* the dynamics
    live: their principal subspace. This returns states drawn from a box in that subspace: along
    each principal axis k the visited states cover ``[lo_k, hi_k]`` (their coordinates on the
    axis, centred on their centroid), and the box is that range extended symmetrically by
    ``extend`` times its width on both sides, ``[lo_k − extend·w_k, hi_k + extend·w_k]`` with
    ``w_k = hi_k − lo_k``. So it reaches as far beyond the side the trajectories never visited as
    beyond the side they came from.

    Parameters
    ----------
    states : array_like of shape (b, n)
        Visited states.
    n_seeds : int
        Number of states returned: a regular grid when the subspace is one-dimensional, else
        uniform random draws in the box.
    extend : float
        Extension on each side, relative to the range's width.
    max_dim : int
        At most this many principal axes.
    variance : float
        Keep the fewest axes that explain this fraction of the variance (at most ``max_dim``).
    seed : int

    Returns
    -------
    ndarray of shape (n_seeds, n)
        Empty (0, n) when the states have no spread.
    """
    x = np.asarray(states, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"states has shape {x.shape}; pass visited states of shape (b, n)")
    if int(n_seeds) < 0 or not (np.isfinite(extend) and extend > 0) or int(max_dim) < 1:
        raise ValueError(f"subspace_seeds needs n_seeds >= 0, extend > 0 and max_dim >= 1; got "
                         f"n_seeds={n_seeds!r}, extend={extend!r}, max_dim={max_dim!r}")
    x = x[np.all(np.isfinite(x), axis=1)]
    n = x.shape[1]
    if int(n_seeds) == 0 or len(x) < 2:
        return np.zeros((0, n))
    centre = x.mean(0)
    _, sv, vt = np.linalg.svd(x - centre, full_matrices=False)
    if not sv[0] > 1e-12 * max(1.0, float(np.max(np.abs(x)))):
        return np.zeros((0, n))
    explained = np.cumsum(sv ** 2) / np.sum(sv ** 2)
    needed = 1 + int(np.searchsorted(explained, min(variance, 1.0) - 1e-12))
    k = min(int(max_dim), needed)
    axes = vt[:k]
    p = (x - centre) @ axes.T
    lo, hi = p.min(0), p.max(0)
    width = hi - lo
    lo, hi = lo - extend * width, hi + extend * width
    if k == 1:
        u = np.linspace(0.0, 1.0, int(n_seeds))[:, None]
    else:
        u = np.random.default_rng(seed).uniform(0.0, 1.0, size=(int(n_seeds), k))
    return centre + (lo + u * (hi - lo)) @ axes
