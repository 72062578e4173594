"""The last stage of :func:`fixedpoints.find_fixed_points`: the exhaustive low-rank search (when
it applies) and a certificate for every fixed point.

``complete=None`` (the default) runs the exhaustive search whenever the system has a low-rank
form of rank ≤ :data:`~fixedpoints.lowrank.MAX_RANK`; ``True`` requires it (ValueError
otherwise); ``False`` never runs it. The start-based result is kept for what the reduced search
does not give (slow points, slow regions). Its fixed points are replaced by the certified roots
they coincide with; when the search left unresolved boxes, start-found fixed points that match
no certified root are kept (they may lie in those boxes), and when it left none they are
dropped (no fixed point exists outside the certified ones) and counted in
``info["not_fixed_by_complete_search"]``. The certified roots get their state-space
certificates from the κ-space proof (:mod:`fixedpoints.certify_reduced`, counted in
``info["certified_reduced"]``) when it is about the same network and proves all three (radius,
error bound, stability); the other fixed points get :func:`~fixedpoints.certify.certify_points`.

PLRNNs (a ``plrnn_source``, :mod:`fixedpoints.plrnn`) get the exact search region by region
instead: all ``2^N`` ReLU patterns for N ≤ :data:`~fixedpoints.plrnn.MAX_EXHAUSTIVE` (complete),
a SCYFI-style pattern search seeded by the found points beyond (not complete); its points come
with their region certificates, and ``info["plrnn_search"]`` says what was solved.
"""
from __future__ import annotations

import time as _time
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from .certify import certify_points
from .certify_reduced import certify_roots
from .linearize import _native_spectrum, classify, jacobian as _jacobian_np
from .lowrank import MAX_RANK, box_budget, low_rank_form, solve_reduced
from .plrnn import plrnn_fixed_points, plrnn_form
from .results import FinderStatus, FixedPoints

__all__ = ["finish"]


def finish(dynamics, result: FixedPoints, *, complete: Optional[bool] = None,
           certify: bool = True, max_boxes: int = 50_000,
           budget: Optional[float] = None) -> FixedPoints:
    """Run the exhaustive search (if it applies) and the certificates on a finder's result.

    Parameters
    ----------
    dynamics : Dynamics
    result : FixedPoints
        What the start-based search found.
    complete : bool or None
        See the module docstring.
    certify : bool
        Attach certificates and stability verdicts to every fixed point: for the roots of a
        low-rank search from its κ-space proof (:mod:`fixedpoints.certify_reduced`) where it
        gives all three, by :func:`~fixedpoints.certify.certify_points` otherwise.
    max_boxes : int
        Budget of the exhaustive search (boxes examined).
    budget : float, optional
        The finder's ``polish_budget``: a certificate of
        :func:`~fixedpoints.certify.certify_points` costs about 60 n³ operations, so at most
        ``max(4, budget / (240 n³))`` points are certified that way (a quarter of the polish
        budget; the stable ones first); the others keep NaN and are counted in
        ``info["not_certified_over_budget"]``. The certificates from the κ-space proof
        (K-dimensional work on what the exhaustive search computed anyway) are not budgeted.
        None: no limit.

    Returns
    -------
    FixedPoints
    """
    started = _time.perf_counter()
    info = dict(result.info)
    n = float(dynamics.n_states)
    limit = None if budget is None else max(4, int(budget / (240.0 * n ** 3)))
    form = None
    plrnn = plrnn_form(dynamics) if complete is not False else None
    if plrnn is not None:
        result = _merge_plrnn(dynamics, result, plrnn, info)
    elif complete is not False:
        form = low_rank_form(dynamics)
        if form is not None and form.rank > MAX_RANK:
            form = None
        if form is None and complete:
            raise ValueError(f"complete=True needs a low-rank tanh network of rank <= {MAX_RANK} "
                             f"(a model with low_rank_form(u), or an nn.RNN whose W_hh has "
                             f"numerical rank <= {MAX_RANK}) or a PLRNN (plrnn_form(u)); "
                             f"{dynamics.name} has neither. Pass "
                             f"complete=None to search from the initial states only")
    if form is not None:
        result = _merge_complete(dynamics, result, form, max_boxes, info, certify)
    if certify:
        t0 = _time.perf_counter()
        radius = np.array(result.certified_radius, dtype=float)
        error = np.array(result.error_bound, dtype=float)
        stable = np.array(result.stability_certified, dtype=bool)
        # the PLRNN search and the κ-space proof of the low-rank search certified their own;
        # the budget bounds the n-dimensional certificates of the rest (stable ones first)
        fixed = np.flatnonzero((result.kind != "slow") & ~np.isfinite(radius))
        if limit is not None:
            info["not_certified_over_budget"] = int(max(len(fixed) - limit, 0))
            fixed = fixed[:limit]
        cert = certify_points(dynamics, result.x[fixed], scale=max(result.scale, 1e-12),
                              n_unstable=result.n_unstable[fixed])
        radius[fixed] = cert["certified_radius"]
        error[fixed] = cert["error_bound"]
        stable[fixed] = cert["stability_certified"]
        info["certify_seconds"] = _time.perf_counter() - t0
        info["certified"] = int(np.isfinite(radius).sum())
        info["stability_certified"] = int(stable.sum())
        result = replace(result, certified_radius=radius, error_bound=error,
                         stability_certified=stable)
    info["seconds"] = float(info.get("seconds", 0.0)) + (_time.perf_counter() - started)
    return replace(result, info=info)


def _merge_complete(dynamics, result: FixedPoints, form, max_boxes: int, info,
                    certify: bool = False) -> FixedPoints:
    t0 = _time.perf_counter()
    sol = solve_reduced(form, max_boxes=box_budget(form.n_states, max_boxes))
    info["complete_search"] = dict(sol.info, seconds=_time.perf_counter() - t0,
                                   unresolved=int(len(sol.unresolved)))
    roots = form.states(sol.kappa)
    fixed = result.kind != "slow"
    found_kappa = result.x[fixed] @ form.right.T
    matched = np.zeros(len(found_kappa), dtype=bool)
    for z in sol.uniqueness:
        inside = ((found_kappa >= z[:, 0]) & (found_kappa <= z[:, 1])).all(1)
        matched |= inside
    if len(roots):
        near = np.abs(result.x[fixed][:, None, :] - roots[None]).max(-1)
        matched |= (near <= 1e-6 * max(result.scale, 1e-12)).any(1)
    keep_found = np.flatnonzero(fixed)[~matched] if not sol.complete else np.zeros(0, int)
    if sol.complete:
        info["not_fixed_by_complete_search"] = int((~matched).sum())
    slow = np.flatnonzero(~fixed)
    x_new = roots
    cert = {"certified_radius": np.full(len(x_new), np.nan),
            "error_bound": np.full(len(x_new), np.nan),
            "stability_certified": np.zeros(len(x_new), bool)}
    if len(x_new):
        jac = _jacobian_np(dynamics, x_new)
        eig_new = _native_spectrum(dynamics, jac, with_vectors=False)
        with torch.no_grad():
            q_new = dynamics.speed(dynamics.states(x_new)).cpu().numpy()
        kind_new, unstable_new = classify(dynamics, eig_new, np.zeros(len(x_new)), 1.0)
        if certify:  # from the κ-space proof; the points it misses get certify_points later
            cert = certify_roots(dynamics, form, x_new, sol.enclosure, sol.uniqueness, jac,
                                 scale=max(result.scale, 1e-12), n_unstable=unstable_new)
            info["certified_reduced"] = int(np.isfinite(cert["certified_radius"]).sum())
    else:
        n = dynamics.n_states
        eig_new, q_new = np.zeros((0, n), complex), np.zeros(0)
        kind_new, unstable_new = np.zeros(0, "<U8"), np.zeros(0, int)
    n_rest = len(keep_found) + len(slow)
    radius = np.concatenate([cert["certified_radius"], np.full(n_rest, np.nan)])
    error = np.concatenate([cert["error_bound"], np.full(n_rest, np.nan)])
    stable = np.concatenate([cert["stability_certified"], np.zeros(n_rest, bool)])
    rest = np.concatenate([keep_found, slow])
    x = np.concatenate([x_new, result.x[rest]])
    speed = np.concatenate([q_new, result.speed[rest]])
    eigvals = np.concatenate([eig_new, result.eigvals[rest]])
    kind = np.concatenate([kind_new, result.kind[rest]]).astype("<U8")
    n_unstable = np.concatenate([unstable_new, result.n_unstable[rest]])
    order = np.lexsort((speed, n_unstable, kind == "slow"))
    status = result.status
    if len(x) and status is FinderStatus.NONE_FOUND:
        status = FinderStatus.CONVERGED
    radius, error, stable = radius[order], error[order], stable[order]
    kappa = x @ form.right.T
    info["search"] = "complete" if sol.complete else "exhaustive (unresolved boxes left)"
    return replace(result, x=x[order], speed=speed[order], eigvals=eigvals[order],
                   kind=kind[order], n_unstable=n_unstable[order], status=status,
                   certified_radius=radius, error_bound=error,
                   stability_certified=stable, kappa=kappa[order],
                   complete=bool(sol.complete), search_box=sol.box, unresolved=sol.unresolved)


def _merge_plrnn(dynamics, result: FixedPoints, form, info) -> FixedPoints:
    """Replace the found fixed points by the PLRNN's exact ones (slow points kept)."""
    t0 = _time.perf_counter()
    fixed = result.kind != "slow"
    sol = plrnn_fixed_points(form, seeds=result.x if len(result.x) else None)
    info["plrnn_search"] = dict(sol.info, seconds=_time.perf_counter() - t0,
                                complete=bool(sol.complete), found=len(sol))
    if len(sol.x):
        near = np.abs(result.x[fixed][:, None, :] - sol.x[None]).max(-1)
        matched = (near <= 1e-6 * max(result.scale, 1e-12)).any(1)
    else:
        matched = np.zeros(int(fixed.sum()), bool)
    keep_found = np.flatnonzero(fixed)[~matched] if not sol.complete else np.zeros(0, int)
    if sol.complete:
        info["not_fixed_by_complete_search"] = int((~matched).sum())
    rest = np.concatenate([keep_found, np.flatnonzero(~fixed)]).astype(int)
    with torch.no_grad():
        q_new = (dynamics.speed(dynamics.states(sol.x)).cpu().numpy() if len(sol.x)
                 else np.zeros(0))
    kind_new, unstable_new = classify(dynamics, sol.eigvals, np.zeros(len(sol.x)), 1.0)
    kind_new = np.asarray(kind_new)
    x = np.concatenate([sol.x, result.x[rest]])
    speed = np.concatenate([q_new, result.speed[rest]])
    eigvals = np.concatenate([sol.eigvals, result.eigvals[rest]])
    kind = np.concatenate([kind_new, result.kind[rest]]).astype("<U8")
    n_unstable = np.concatenate([np.asarray(unstable_new), result.n_unstable[rest]])
    # FixedPoints.__post_init__ fills the certificate arrays in
    assert (result.certified_radius is not None and result.error_bound is not None
            and result.stability_certified is not None)
    radius = np.concatenate([sol.certified_radius, result.certified_radius[rest]])
    error = np.concatenate([sol.error_bound, result.error_bound[rest]])
    stable = np.concatenate([sol.stability_certified, result.stability_certified[rest]])
    order = np.lexsort((speed, n_unstable, kind == "slow"))
    status = result.status
    if len(x) and status is FinderStatus.NONE_FOUND:
        status = FinderStatus.CONVERGED
    info["search"] = ("complete (all ReLU patterns)" if sol.complete
                      else f"PLRNN {sol.info['method']} pattern search")
    return replace(result, x=x[order], speed=speed[order], eigvals=eigvals[order],
                   kind=kind[order], n_unstable=n_unstable[order], status=status,
                   certified_radius=radius[order], error_bound=error[order],
                   stability_certified=stable[order], kappa=np.zeros((len(x), 0)),
                   complete=bool(sol.complete))
