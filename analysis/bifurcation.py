"""Bifurcation diagram of one model along a straight path of constant inputs (``A:B:n``).

:func:`bifurcation_diagram` finds the fixed points at input A (the epoch pipeline's initial
states and finder), continues each along ``u(s) = A + s (B − A)`` by pseudo-arclength
continuation (:func:`fixedpoints.continuation.continue_fixed_points`, at most ``1/n`` of the
path per step), and reports the folds (saddle-nodes) and Hopf points. The diagram plots the
input coordinate (the input itself for one input, else s) against each fixed point's projection
on the first principal axis of all continued points, solid where stable, dashed where not.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

__all__ = ["BifurcationDiagram", "bifurcation_diagram"]


@dataclass(frozen=True)
class BifurcationDiagram:
    """A continuation and its plot coordinates.

    Attributes
    ----------
    continuation : fixedpoints.continuation.Continuation
    axis : ndarray of shape (n_states,)
        The projection direction (unit vector) of the diagram's y axis.
    origin : ndarray of shape (n_states,)
        Mean of all continued points (subtracted before projecting).
    xlabel : str
    """

    continuation: Any
    axis: np.ndarray
    origin: np.ndarray
    xlabel: str

    def coordinate(self, s: np.ndarray) -> np.ndarray:
        """Plot x coordinate of path positions ``s``."""
        cont = self.continuation
        if len(cont.start) == 1:
            return cont.inputs(s)[:, 0]
        return np.asarray(s, dtype=float)

    def project(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=float).reshape(-1, len(self.axis)) - self.origin) @ self.axis

    def to_dict(self) -> Dict[str, Any]:
        return {**self.continuation.to_dict(), "axis": self.axis.tolist(),
                "xlabel": self.xlabel}

    def save(self, out: Union[str, Path], stem: str = "bifurcation",
             title: Optional[str] = None, extra: Optional[Dict[str, Any]] = None) -> Path:
        """Write ``out/<stem>.json`` (:meth:`to_dict`, plus ``extra``) and ``out/<stem>.png``.

        Returns
        -------
        Path
            The PNG written.
        """
        from fixedpoints.serialization import json_text, write_text

        from .plotting import close_figure, save_figure
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / f"{stem}.json", json_text({**self.to_dict(), **(extra or {})}))
        fig = self.plot(title=title)["ax"].figure
        png = out / f"{stem}.png"
        save_figure(fig, png)
        close_figure(fig)
        return png

    def plot(self, ax=None, title: Optional[str] = None):
        """Draw it with :func:`analysis.plotting.plot_bifurcation_diagram`."""
        from .plotting import plot_bifurcation_diagram
        branches = [(self.coordinate(b.s), self.project(b.x), b.n_unstable)
                    for b in self.continuation.branches]
        bifs = [(float(self.coordinate(np.array([b.s]))[0]), float(self.project(b.x)[0]),
                 b.kind) for b in self.continuation.bifurcations]
        return plot_bifurcation_diagram(branches, bifs, ax, xlabel=self.xlabel, title=title)


def bifurcation_diagram(model, path: str, *, settings=None, out: Optional[Union[str, Path]] = None,
                        time: Optional[str] = None, device: str = "cpu") -> BifurcationDiagram:
    """Continue a model's fixed points along the input path ``"A:B:n"``.

    Parameters
    ----------
    model : torch.nn.Module or fixedpoints.Dynamics
    path : str
        ``A:B:n`` (see :func:`fixedpoints.continuation.parse_input_path`).
    settings : analysis.epoch.EpochSettings, optional
        Initial states and finder options for the search at A.
    out : str or Path, optional
        Write ``bifurcation.json`` and ``bifurcation.png`` there.
    time : {"discrete", "continuous"}, optional
    device : str, default "cpu"

    Returns
    -------
    BifurcationDiagram
    """
    from fixedpoints import find_fixed_points
    from fixedpoints.continuation import (ContinuationOptions, continue_fixed_points,
                                          parse_input_path)

    from .epoch import EpochSettings, initial_states_for
    from .sources import as_dynamics

    probe = as_dynamics(model, time=time, device=device)
    a, b, n = parse_input_path(path, probe.n_inputs)
    dyn = probe.with_input(a)
    settings = settings or EpochSettings()
    init = initial_states_for(dyn, settings, module=getattr(dyn, "module", None))
    found = find_fixed_points(dyn, init, settings.finder)
    x0 = found.x[found.kind != "slow"]
    max_step = min(0.05, 1.0 / n)
    cont = continue_fixed_points(dyn, a, b, x0,
                                 ContinuationOptions(step=min(0.01, max_step),
                                                     max_step=max_step),
                                 both_directions=False)
    pts = np.concatenate([br.x for br in cont.branches]) if cont.branches else \
        np.zeros((1, dyn.n_states))
    origin = pts.mean(0)
    if len(pts) > 1 and np.ptp(pts, axis=0).max() > 0:
        axis = np.linalg.svd(pts - origin, full_matrices=False)[2][0]
    else:
        axis = np.eye(dyn.n_states)[0]
    xlabel = "input" if len(a) == 1 else "s (input path A → B)"
    diagram = BifurcationDiagram(continuation=cont, axis=axis, origin=origin, xlabel=xlabel)
    if out is not None:
        diagram.save(out, title=f"fixed points along {path}")
    return diagram
