"""The single definition of velocity and speed.

``v(x) = F(x, u) - x`` for a map, ``v(x) = f(x, u)`` for a flow; ``q(x) = ½‖v(x)‖²``.
"""
from __future__ import annotations

import numpy as np
import torch

from .dynamics import Dynamics

__all__ = ["velocity", "speed"]


def velocity(dynamics: Dynamics, x) -> np.ndarray:
    """Velocity at states ``x``.

    Parameters
    ----------
    dynamics : Dynamics
    x : array_like of shape (b, n_states)

    Returns
    -------
    ndarray of shape (b, n_states)
    """
    with torch.no_grad():
        return dynamics.velocity(dynamics.states(x)).cpu().numpy()


def speed(dynamics: Dynamics, x) -> np.ndarray:
    """Speed ``q(x) = ½‖v(x)‖²`` at states ``x``.

    Parameters
    ----------
    dynamics : Dynamics
    x : array_like of shape (b, n_states)

    Returns
    -------
    ndarray of shape (b,)
    """
    with torch.no_grad():
        return dynamics.speed(dynamics.states(x)).cpu().numpy()
