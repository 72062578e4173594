"""Ghosts: slow bottlenecks left where a saddle-node pair of fixed points vanished.

A **ghost** is an isolated local minimum of the speed ``q = ½‖v‖²`` with ``q > 0``, with no fixed
point near it, through which the flow passes along the slow direction with positive curvature.
Near it the dynamics reduce to the saddle-node normal form, so trajectories crawl through it in a
predictable time.

Why a zero eigenvalue proves nothing: at *any* minimum of q with q > 0 the gradient
``∇q = J_vᵀ v`` vanishes, so ``J_v`` is singular and ``v`` spans its left null space. Every slow
point has that. What tells a ghost apart is checked here, one test at a time:

1. **A minimum of q above the fixed-point tolerance.** Candidates are polished with Newton's
   method on ``∇q = 0`` using the exact Hessian of q (``Dynamics.speed_hessian``, float64,
   Levenberg–Marquardt damping so the iteration only goes downhill; where q is flat to its
   float64 round-off, a step that lowers ‖∇q‖ without raising q by more than a relative 1e-6 is
   taken too). Points that reach ``q ≤ q_fixed`` are fixed points, not ghosts (they are used for
   test 5).
2. **Reduced normal form.** With ``u = v/‖v‖`` (the flow direction, J_v's left null vector) and
   ``e`` the right null vector of ``J_v`` (its smallest right singular vector, the **slow
   direction**, oriented so ``u·e > 0``), the coordinate ``z = u·(x − x_g)/(u·e)`` obeys, to
   second order,

       dz/dt = (s + ½ c_u z²) / (u·e),      s = ‖v(x_g)‖,  c_u = u · d²v(x_g + z e)/dz²,

   the saddle-node normal form ``dz/dt = A + B z²``. Its passage time from z = −∞ to +∞ is
   ``π/√(AB) = π √(2/(s c))`` with the **curvature** ``c = c_u/(u·e)²`` (for a normal ghost
   u = e and c = d²v/ds²). The bottleneck's **width** ``w = √(2 s/c_u)`` is the distance along
   ``e`` over which the speed doubles. Required: ``c_u > 0`` (the flow speeds up on both sides)
   and ``u·e ≥ min_alignment`` (the flow passes along the slow direction).
3. **Isolated, not a flat valley.** The smallest eigenvalue of the Hessian of q must be at least
   ``isolation_rtol`` times its value along ``e`` (which is ``s·c_u``): a line attractor with a
   drift, or any slow manifold, has a second soft direction (or c_u ≈ 0). The default 0.1 (was
   0.5) admits weak ghosts, whose ``s·c_u`` grows past the square of the slowest transverse
   rate λ: the normal form with rates from 0.5 has isolation ``0.25 / (2r)``, 0.42 at r = 0.3.
4. **No fixed point in it.** No known fixed point within ``clearance · w`` of the ghost (the
   speed has not even doubled there in the normal form, so no bottleneck separates the two).
   The ghost's **window** is ``|z| ≤ W`` with ``W = min(window · w, ½ d_fp)``, ``d_fp`` the
   distance to the nearest known fixed point: a weak ghost, far past its fold, has the node it
   feeds a few widths downstream, and a window of ten widths would swallow that node.
5. **A bottleneck, not a modulated slow stretch.** Along ``x_g + z e``, on *each* side, the speed
   must rise to at least ``min_contrast · s`` before it first falls back to ``s`` (within the
   window); ``contrast`` is the smaller of the two rises (the normal form gives ``1 + (W/w)²``).
   A slow manifold whose drift is merely modulated (±10%: a rise of 1.22) has isolated minima
   of q with positive curvature, but its speed never rises far above s.
6. **The flow passes.** A trajectory started at ``x_g − W·e`` is simulated (RK4 in continuous
   time, the map in discrete time) until it leaves the window; one that is still inside after
   three predicted passage times is trapped (by a fixed point the search did not find) and the
   candidate is rejected.

**Starts, without a random number.** The Newton searches start from the finder's slow points,
the slowest *local* speed minima among the given states (a state slower than its 8 nearest
neighbours: one per slow cluster the trajectories visited, a ghost's as well as each fixed
point's), a farthest-point spread over the other states, and, for low-rank tanh networks
(``low_rank_form``, rank ≤ 3), the minima of the latent speed ``G(κ)ᵀ(R Rᵀ)⁻¹G(κ)`` over a grid
of the box that holds every root, lifted to the state space: there the ghosts are found from the
system alone, whatever the states. The search box (the states' bounding box, widened by
``box_margin``) is doubled, up to twice, for searches that end on its wall above the fixed-point
level. So the ghosts found depend on the states only through which slow clusters they visit,
not on a seed (tested over five seeds on weak ghosts, the rank-one RNN over its whole bottleneck
range and the built-in rank-one RNN's fold series).

**Strength.** Every ghost that passes these tests is reported, however weak, with the
dimensionless **strength** ``S = passage_time / relaxation_time``: how many of the system's own
relaxation times a trajectory spends crossing the bottleneck. The **relaxation time** is local,
``1 / median |Re λ|`` over the transverse eigenvalues λ of J_v at the ghost (the rate at which
every other direction settles while the slow coordinate crawls; discrete time: of ``∂F/∂x − I``,
in map steps like the passage time); a one-dimensional system has no transverse direction and
uses the system's rate scale σ (RMS singular value of J_v over the states) instead. For the
rank-one RNN ``x ← (1−α) x + α tanh(m n·x + b)`` the relaxation time is ``1/α`` steps; for
``dx/dt = r + x²`` embedded with decay rates ρ_i it is ``1/median ρ_i``. The speed rise across
the bottleneck is reported beside it (``contrast``). ``strength_class`` is ``"strong"`` when
``S ≥ strong_strength`` (default :data:`STRONG_STRENGTH` = 20) and ``"weak"`` otherwise; ghosts
with ``S < min_strength`` (default 0: none) are dropped (``info["rejected"]["too_weak"]``). The
strength falls continuously as the system moves away from the fold (∝ 1/√r in the normal form),
so a ghost being born or fading during training is seen as a weak ghost rather than lost to a
hard gate.

Every threshold is dimensionless (ratios of the system's own speeds, curvatures, lengths and
times), so scaling a continuous vector field by any factor changes no verdict (nor the strength).

**Dwell time.** The simulated time spent inside the window (the far-edge crossing interpolated
linearly between steps) is divided by ``(2/π)·arctan(W/w)``, the fraction of a normal-form
passage that lies inside ``|z| ≤ W``, so ``dwell_time`` estimates the full passage time
and is comparable to ``passage_time``. Discrete time counts map steps: there ``v = F(x) − x`` is
the displacement per step and the reduced map ``z ← z + A + B z²`` is the flow's Euler step of
length one, whose first-order correction cancels across the symmetric window, so the same
formula gives the passage in steps (agreement better than 1e-3 on tanh-map ghosts with
s ≤ 5e-4, see the tests and ``bench/ghosts.py``). For saddle-like ghosts
(unstable transverse directions) a trajectory may leave sideways; ``passed`` is False then and the
dwell time is only the time to leave the window.

**Transverse spectrum.** ``range(J_v)`` is invariant under ``J_v`` and complementary to ``e``; it
equals ``u^⊥`` at a minimum of q. The eigenvalues of ``Wᵀ J_v W`` (W an orthonormal basis of
``u^⊥``) are the transverse eigenvalues, reported in the native form of :class:`FixedPoints`
(discrete time: of the map, ``λ + 1``; stable when ``|λ| < 1``). ``n_unstable`` counts the unstable
ones: 0 means the ghost traps trajectories onto its slow channel (``kind = "attracting"``).
"""
from __future__ import annotations

import logging
import math
import os
import time as _time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from . import linalg as _linalg
from .dynamics import Dynamics
from .initial import state_spread
from .ghost_certificates import certify_ghosts
from .latent import latent_minima
from .linearize import EIG_RTOL, sort_spectrum
from .lowrank import MAX_RANK, LowRankForm, low_rank_form_or_none
from .lowrank_speed import LowRankSpeed, low_rank_speed
from .options import resolve_options
from .results import FixedPoints, PointArrays, load_result, save_result
from .unique import deduplicate

__all__ = ["Ghosts", "GhostOptions", "detect_ghosts", "GHOST_KINDS", "STRENGTH_CLASSES",
           "STRONG_STRENGTH"]

log = logging.getLogger(__name__)

#: Ghost kinds by their transverse spectrum.
GHOST_KINDS = ("attracting", "saddle", "repelling")

#: Strength classes (``Ghosts.strength_class``).
STRENGTH_CLASSES = ("strong", "weak")

#: Default strength (passage time / relaxation time) from which a ghost is ``"strong"``.
STRONG_STRENGTH = 20.0

#: Reasons a candidate is rejected (keys of ``Ghosts.info["rejected"]``).
REJECTIONS = ("fixed_point", "unconverged", "outside_box", "not_minimum", "not_bottleneck",
              "misaligned", "flat", "shallow", "near_fixed_point", "trapped", "duplicate",
              "too_weak")


# ============================================================================ options
@dataclass(frozen=True)
class GhostOptions:
    """Settings of :func:`detect_ghosts`. Every threshold is dimensionless.

    ``L`` below is the spread of the states (RMS distance to their centroid; the finder's
    ``FixedPoints.scale`` when fixed points are given).

    Parameters
    ----------
    window : float
        Largest half-width of the ghost's window, in bottleneck widths ``w`` (the window is cut to
        half the distance to the nearest known fixed point): the stretch over which the speed
        rise and the dwell time are measured.
    clearance : float
        No known fixed point may lie within ``clearance · w`` of the ghost.
    min_contrast : float
        Along the slow direction, on each side, the speed ‖v‖ must reach ``min_contrast · s``
        before falling back to ``s`` (the normal form reaches ``(1 + (W/w)²) s``; a slow manifold
        whose speed is only modulated by ±10% reaches 1.22 s). Was 10 (a rise that weak ghosts,
        whose window is cut by the node downstream, do not reach); 2 is the speed doubling that
        defines the width.
    contrast_samples : int
        Points on ``x_g + z e``, ``|z| ≤ W``, at which the speed is sampled for it.
    min_alignment : float
        Smallest ``u·e`` (cosine between the flow and the slow direction).
    isolation_rtol : float
        The Hessian of q must have no eigenvalue below ``isolation_rtol · s · c_u``.
    grad_rtol : float
        A candidate is a stationary point of q when ``‖J_vᵀ v‖ ≤ grad_rtol · ‖J_v‖_F · ‖v‖``.
    newton_steps : int
        Maximum Newton (Levenberg–Marquardt) iterations of the candidate polish.
    xtol : float
        A Newton step shorter than ``xtol · L`` has converged.
    tol_unique : float
        Candidates closer than ``tol_unique · L`` are duplicates (the slowest is kept).
    max_starts : int
        At most this many of the ``initial_states`` start a search: half the slowest local speed
        minima among them, half spread over them (farthest-point order); low-rank tanh networks
        add up to ``max_starts // 4`` starts of their own (the latent speed's minima), or up to
        ``max_starts`` where the states start none (``state_starts``).
    state_starts : bool, optional
        Whether the ``initial_states`` start searches. None (default): not for low-rank tanh
        networks, where every local minimum of q is the lift of a local minimum of the latent
        speed (:func:`_low_rank_seeds`: the slowest state with a given latent is its lift, so
        a minimum anywhere else could be lowered within its latent's slice), so the
        latent's minima start the searches alone; elsewhere yes. Measured on the 1000
        checkpoints of the rank-2 series of ``bench/series.py`` (one process, jobs=1): the same
        1146 ghosts (counts and kinds at every checkpoint, positions to 2.5e-13), 169 against
        194 ms of CPU per checkpoint for the whole analysis (one pass each; two alternating
        pairs on epochs 400-499: 178 and 184 against 189 and 195 ms). True / False force it.
    box_margin : float
        The search stays inside the bounding box of the states widened by this fraction of its
        size on each side. Searches that end on its wall with q above the fixed-point level
        go on in a box widened twice as much, twice at most (margins 1 and 2 for the
        default 0.5; 0: no widening); candidates still on the wall are dropped.
    q_fixed_rtol : float
        When no ``fixed_points`` are given: points with ``q ≤ q_fixed_rtol · q_scale`` are fixed
        points, ``q_scale = ½ (L σ)²`` with σ the RMS singular value of J_v (as in the finder).
    run_finder : bool
        When ``fixed_points`` is not given, run :func:`~fixedpoints.find_fixed_points` on the
        initial states first so the no-fixed-point test knows every fixed point (recommended;
        with False only the fixed points the ghost search itself runs into are known, and the
        dwell simulation is the remaining safeguard).
    finder_options : dict, optional
        Options passed to ``find_fixed_points`` when it is run here.
    simulate : bool
        Measure ``dwell_time`` by simulation (also required for test 6).
    max_dwell_steps : int
        Most simulation steps per ghost; beyond it the dwell time is NaN and test 6 is skipped.
    steps_per_passage : int
        Continuous time: at least this many RK4 steps per predicted passage (the step is also
        at most ``2/ρ`` with ρ the largest |eigenvalue| of J_v, for the fast transverse modes).
    batch_size : int
        Points per batched Hessian / Jacobian (memory ``batch_size · n²``).
    seed : int
        Unused: the choice of starting states draws no random number (local speed minima of the
        states, a farthest-point spread, the low-rank latent's minima); kept so that saved
        settings still load.
    min_strength : float
        Ghosts with ``strength`` (passage time / relaxation time) below this are dropped; 0
        (default) reports every ghost, e.g. 5 keeps those that hold a trajectory for at least
        five relaxation times.
    strong_strength : float
        Ghosts with ``strength ≥ strong_strength`` are ``"strong"``, the others ``"weak"``.
    """

    window: float = 10.0
    clearance: float = 2.0
    min_contrast: float = 2.0
    contrast_samples: int = 41
    min_alignment: float = 0.01
    isolation_rtol: float = 0.1
    grad_rtol: float = 1e-8
    newton_steps: int = 100
    xtol: float = 1e-12
    tol_unique: float = 1e-3
    max_starts: int = 64
    state_starts: Optional[bool] = None
    box_margin: float = 0.5
    q_fixed_rtol: float = 1e-20
    run_finder: bool = True
    finder_options: Optional[Dict[str, Any]] = None
    simulate: bool = True
    max_dwell_steps: int = 100_000
    steps_per_passage: int = 1000
    batch_size: int = 128
    seed: int = 0
    min_strength: float = 0.0
    strong_strength: float = STRONG_STRENGTH

    def __post_init__(self):
        for name in ("min_strength", "clearance"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or \
                    not np.isfinite(value) or value < 0:
                raise ValueError(f"GhostOptions.{name}={value!r} is invalid; pass a finite "
                                 f"number >= 0")
        positive = ("window", "strong_strength", "min_contrast",
                    "min_alignment", "isolation_rtol", "grad_rtol",
                    "xtol", "tol_unique", "q_fixed_rtol")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or \
                    not np.isfinite(value) or value <= 0:
                raise ValueError(f"GhostOptions.{name}={value!r} is invalid; pass a positive "
                                 f"finite number")
        if self.state_starts not in (None, True, False):
            raise ValueError(f"GhostOptions.state_starts={self.state_starts!r} is invalid; pass "
                             f"True, False or None (automatic: not for low-rank networks)")
        for name in ("newton_steps", "max_starts", "max_dwell_steps", "steps_per_passage",
                     "batch_size", "contrast_samples"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GhostOptions.{name}={value!r} is invalid; pass a positive "
                                 f"integer")
        if not np.isfinite(self.box_margin) or self.box_margin < 0:
            raise ValueError(f"GhostOptions.box_margin={self.box_margin!r} is invalid; pass a "
                             f"number >= 0")
        if self.min_alignment >= 1:
            raise ValueError(f"GhostOptions.min_alignment={self.min_alignment!r} is invalid; "
                             f"pass a cosine in (0, 1)")
        if self.finder_options is not None and not isinstance(self.finder_options, dict):
            raise ValueError(f"GhostOptions.finder_options must be a dict of find_fixed_points "
                             f"options, got {type(self.finder_options).__name__}")

    def window_fraction(self, widths: torch.Tensor) -> torch.Tensor:
        """Fraction of a normal-form passage spent inside ``|z| ≤ widths · w``."""
        return 2.0 / math.pi * torch.atan(widths)


# ============================================================================ result
@dataclass(frozen=True)
class Ghosts(PointArrays):
    """Ghosts of one system at one input, one row per ghost.

    Attributes
    ----------
    x : ndarray of shape (k, n_states)
        Locations (minima of q).
    speed : ndarray of shape (k,)
        Minimal q = ½‖v‖² (the same quantity as ``FixedPoints.speed``).
    velocity_norm : ndarray of shape (k,)
        ``s = ‖v(x)‖`` at the ghost (its minimal speed as a velocity magnitude).
    slow_direction : ndarray of shape (k, n_states)
        Unit right null vector ``e`` of J_v, oriented along the flow.
    flow_direction : ndarray of shape (k, n_states)
        Unit velocity ``u = v/‖v‖`` (J_v's left null vector).
    alignment : ndarray of shape (k,)
        ``u·e`` (1 for a normal ghost; smaller in non-normal systems).
    curvature : ndarray of shape (k,)
        ``c = (u·d²v/dz²)/(u·e)²``, the curvature of the flow along the slow direction in the
        reduced normal form; ``passage_time = π √(2/(s c))``.
    width : ndarray of shape (k,)
        ``w = √(2 s/c_u)``: distance along ``e`` over which the speed doubles.
    transverse_eigvals : ndarray of shape (k, n_states - 1), complex
        Spectrum of J_v on the complement of the slow direction, native form (discrete time:
        map eigenvalues), sorted as in :class:`FixedPoints`.
    n_unstable : ndarray of shape (k,), int
        Unstable transverse directions (0: the ghost traps trajectories).
    kind : ndarray of shape (k,), str
        ``attracting`` (n_unstable = 0), ``saddle`` or ``repelling`` (all transverse unstable).
    passage_time : ndarray of shape (k,)
        Predicted ``π √(2/(s c))`` (time units; map steps in discrete time).
    dwell_time : ndarray of shape (k,)
        Measured by simulation (see the module docstring); NaN when not simulated.
    passed : ndarray of shape (k,), bool
        Whether the simulated trajectory left through the far side of the window.
    fixed_point_distance : ndarray of shape (k,)
        Distance to the nearest known fixed point (inf if none is known).
    isolation : ndarray of shape (k,)
        Smallest Hessian eigenvalue of q divided by ``s·c_u`` (≈ 1 for a ghost, ≈ 0 in a valley).
    contrast : ndarray of shape (k,)
        Speed rise across the bottleneck: along the slow direction, the smaller over the two
        sides of the largest ‖v‖/s before the speed falls back to s, within the window
        (``1 + (W/w)²`` for the normal form).
    relaxation_time : ndarray of shape (k,)
        ``1 / median |Re λ|`` over the transverse eigenvalues of J_v (1-D systems: 1/σ); time
        units, map steps in discrete time.
    strength : ndarray of shape (k,)
        ``passage_time / relaxation_time`` (dimensionless).
    strength_class : ndarray of shape (k,), str
        ``"strong"`` (strength ≥ ``GhostOptions.strong_strength``, default 20) or ``"weak"``.
    time : {"discrete", "continuous"}
    scale : float
        State spread L used by the relative tests.
    q_fixed : float
        Fixed-point tolerance on q.
    info : dict
        Counters: candidates, rejections by reason, seconds, options.
    exclusion_radius : ndarray of shape (k,)
        The max-norm cube of this radius around the ghost provably holds no fixed point
        (:mod:`fixedpoints.ghost_certificates`); 0 where nothing was proved.
    kappa : ndarray of shape (k, K)
        Low-rank models: the κ-space speed minimum near the ghost (K = 0 otherwise).
    kappa_distance : ndarray of shape (k,)
        Max-norm distance between ``tanh(c + L κ)`` and ``x`` (NaN without a low-rank form).
    """

    x: np.ndarray
    speed: np.ndarray
    velocity_norm: np.ndarray
    slow_direction: np.ndarray
    flow_direction: np.ndarray
    alignment: np.ndarray
    curvature: np.ndarray
    width: np.ndarray
    transverse_eigvals: np.ndarray
    n_unstable: np.ndarray
    kind: np.ndarray
    passage_time: np.ndarray
    dwell_time: np.ndarray
    passed: np.ndarray
    fixed_point_distance: np.ndarray
    isolation: np.ndarray
    contrast: np.ndarray
    time: str = "discrete"
    scale: float = 1.0
    q_fixed: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)
    # after the defaults so results saved before strengths existed still load (NaN, "")
    relaxation_time: Optional[np.ndarray] = None
    strength: Optional[np.ndarray] = None
    strength_class: Optional[np.ndarray] = None
    exclusion_radius: Optional[np.ndarray] = None
    kappa: Optional[np.ndarray] = None
    kappa_distance: Optional[np.ndarray] = None

    _ARRAYS = ("x", "speed", "velocity_norm", "slow_direction", "flow_direction", "alignment",
               "curvature", "width", "transverse_eigvals", "n_unstable", "kind", "passage_time",
               "dwell_time", "passed", "fixed_point_distance", "isolation", "contrast",
               "relaxation_time", "strength", "strength_class",
               "exclusion_radius", "kappa", "kappa_distance")

    def __post_init__(self):
        k = len(self.x)
        for name in ("relaxation_time", "strength"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(k, np.nan))
        if self.strength_class is None:
            object.__setattr__(self, "strength_class", np.full(k, "", dtype="<U6"))
        for name, value in (("exclusion_radius", np.zeros(k)), ("kappa", np.zeros((k, 0))),
                            ("kappa_distance", np.full(k, np.nan))):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def _repr_html_(self) -> str:
        from .display import ghosts_html  # Jupyter's rich display
        return ghosts_html(self)

    def of_strength(self, min_strength: float) -> "Ghosts":
        """The ghosts with ``strength ≥ min_strength``."""
        assert self.strength is not None, "filled by __post_init__"
        return self[np.flatnonzero(self.strength >= min_strength)]

    def class_counts(self) -> Dict[str, int]:
        """Number of ghosts of each strength class, e.g. ``{"strong": 1, "weak": 2}``."""
        return {c: int(np.sum(self.strength_class == c)) for c in STRENGTH_CLASSES}

    @classmethod
    def empty(cls, n_states: int, time: str = "discrete", **meta) -> "Ghosts":
        """A result with no ghost."""
        z = np.zeros(0)
        return cls(x=np.zeros((0, n_states)), speed=z, velocity_norm=z.copy(),
                   slow_direction=np.zeros((0, n_states)), flow_direction=np.zeros((0, n_states)),
                   alignment=z.copy(), curvature=z.copy(), width=z.copy(),
                   transverse_eigvals=np.zeros((0, max(n_states - 1, 0)), complex),
                   n_unstable=np.zeros(0, int), kind=np.zeros(0, "<U10"), passage_time=z.copy(),
                   dwell_time=z.copy(), passed=np.zeros(0, bool),
                   fixed_point_distance=z.copy(), isolation=z.copy(), contrast=z.copy(),
                   relaxation_time=z.copy(), strength=z.copy(),
                   strength_class=np.zeros(0, "<U6"), time=time, **meta)

    def counts(self) -> Dict[str, int]:
        """Number of ghosts of each kind, e.g. ``{"attracting": 1, "saddle": 0, ...}``."""
        return {k: int(np.sum(self.kind == k)) for k in GHOST_KINDS}

    def index_counts(self) -> Dict[int, int]:
        """Number of ghosts by transverse index."""
        values, counts = np.unique(self.n_unstable, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.counts().items() if v)
        return f"Ghosts({len(self)} ghost(s): {parts or 'none'}; time={self.time!r})"

    def save(self, path: Union[str, os.PathLike]):
        """Write ``path.npz`` (arrays) and ``path.json`` (the rest). Returns the stem."""
        return save_result(self, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Ghosts":
        """Read what :meth:`save` wrote."""
        return load_result(cls, path)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready description (per-ghost entries plus metadata)."""
        from .serialization import to_json
        # filled by __post_init__
        assert self.relaxation_time is not None and self.strength is not None
        assert self.strength_class is not None and self.exclusion_radius is not None
        ghosts = []
        for i in range(len(self)):
            ghosts.append({
                "x": self.x[i].tolist(), "speed": float(self.speed[i]),
                "velocity_norm": float(self.velocity_norm[i]),
                "slow_direction": self.slow_direction[i].tolist(),
                "alignment": float(self.alignment[i]), "curvature": float(self.curvature[i]),
                "width": float(self.width[i]), "kind": str(self.kind[i]),
                "n_unstable": int(self.n_unstable[i]),
                "transverse_eigvals_real": np.real(self.transverse_eigvals[i]).tolist(),
                "transverse_eigvals_imag": np.imag(self.transverse_eigvals[i]).tolist(),
                "passage_time": float(self.passage_time[i]),
                "dwell_time": _finite_or_none(self.dwell_time[i]),
                "passed": bool(self.passed[i]),
                "fixed_point_distance": _finite_or_none(self.fixed_point_distance[i]),
                "isolation": float(self.isolation[i]), "contrast": float(self.contrast[i]),
                "relaxation_time": _finite_or_none(self.relaxation_time[i]),
                "strength": _finite_or_none(self.strength[i]),
                "strength_class": str(self.strength_class[i]),
                "exclusion_radius": float(self.exclusion_radius[i]),
            })
        return {"time": self.time, "scale": float(self.scale), "q_fixed": float(self.q_fixed),
                "counts": self.counts(), "class_counts": self.class_counts(),
                "ghosts": ghosts, "info": to_json(self.info)}


def _finite_or_none(value):
    return float(value) if np.isfinite(value) else None


# ============================================================================ helpers
def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


#: Most Hessian entries computed at once (memory: 8 bytes each in float64).
_HESSIAN_BUDGET = 1 << 23


def _hessian_and_gradient(dynamics: Dynamics, x: torch.Tensor, batch_size: int):
    """Exact Hessian ``(b, n, n)`` and gradient ``(b, n)`` of q, in chunks that bound memory."""
    n = dynamics.n_states
    if x.shape[0] == 0:
        return x.new_zeros((0, n, n)), x.new_zeros((0, n))
    hs, gs = [], []
    batch_size = max(1, min(batch_size, _HESSIAN_BUDGET // max(n * n, 1)))
    for sl in _chunks(x.shape[0], batch_size):
        xb = x[sl].detach()
        with torch.no_grad():
            v = dynamics.velocity(xb)
            jac = dynamics.jacobian(xb)
        hs.append(dynamics.speed_hessian(xb, jacobian=jac))
        gs.append((jac.transpose(1, 2) @ v.unsqueeze(-1)).squeeze(-1))
    h = torch.cat(hs)
    return 0.5 * (h + h.transpose(1, 2)), torch.cat(gs)


class _DenseSystem:
    """The damped Newton systems ``(∇²q + λ I) δ = −∇q`` of a batch of states, with the exact
    Hessian (:func:`_hessian_and_gradient`) and batched Cholesky; the interface of
    :class:`~fixedpoints.lowrank_speed.LowRankSystem`."""

    def __init__(self, dynamics: Dynamics, x: torch.Tensor, batch_size: int):
        self._h, self.gradient = _hessian_and_gradient(dynamics, x, batch_size)
        self.diagonal = torch.diagonal(self._h, dim1=1, dim2=2)
        self._eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)

    def solve(self, rows: Optional[torch.Tensor], shift: torch.Tensor):
        """``(delta (m, n), ok (m,))`` for ``rows`` (indices; None: all) at ``λ = shift`` (m,):
        zero and False where ``∇²q + λ I`` is not positive definite."""
        h, g = (self._h, self.gradient) if rows is None else (self._h[rows], self.gradient[rows])
        return _linalg.solve_spd(h + shift[:, None, None] * self._eye, -g)


def _newton_system(dynamics: Dynamics, x: torch.Tensor, batch_size: int,
                   closed: Optional[LowRankSpeed]):
    """The Newton systems at ``x``: in closed form where there is one (low-rank tanh networks,
    :mod:`fixedpoints.lowrank_speed`, O(n K²) per state), else dense."""
    if closed is None or x.shape[0] == 0:
        return _DenseSystem(dynamics, x, batch_size)
    return closed.newton_system(x)


def _flow_curvature(dynamics: Dynamics, x: torch.Tensor, u: torch.Tensor,
                    e: torch.Tensor) -> torch.Tensor:
    """``c_u = u · d²v(x + z e)/dz²`` at z = 0 for each row, shape ``(b,)``.

    It is ``eᵀ (Σ_k u_k ∇²v_k) e``: the velocity's curvature contracted with ``u`` in closed
    form where the system has one; otherwise two backward passes along ``e`` (the full
    Hessian would take n).
    """
    if dynamics.curvature_fn is not None:
        return torch.einsum("bi,bij,bj->b", e, dynamics.curvature(x, u), e)
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((u * dynamics.velocity(xg)).sum(), xg, create_graph=True)
        if not grad.requires_grad:  # the velocity is linear: no curvature
            return x.new_zeros(x.shape[0])
        (along,) = torch.autograd.grad((grad * e).sum(), xg, allow_unused=True)
    return x.new_zeros(x.shape[0]) if along is None else (along * e).sum(1).detach()


# ============================================================================ search
#: Jacobian entries the rate scale σ is averaged over (every state of a small system).
_PROBE_ENTRIES = 4096

#: How many times the search box is doubled for searches that end on its wall (detect_ghosts).
_BOX_WIDENINGS = 2

#: Relative rise of q that a Newton step may cause and still be taken when it lowers ‖∇q‖ (q's
#: changes near a minimum are below its float64 round-off there; see _newton_search).
_Q_ROUNDOFF = 1e-6


def _acceptable(dynamics: Dynamics, trial: torch.Tensor, solved: torch.Tensor,
                q_old: torch.Tensor, g_old: torch.Tensor, batch_size: int,
                closed: Optional[LowRankSpeed] = None, x_old: Optional[torch.Tensor] = None):
    """Which trial points a Newton iteration may move to, and q there: ``(accept, q_trial)``.

    A trial is taken when q does not rise. Near a minimum q stops decreasing in float64 (its
    changes fall below the round-off of ½‖v‖²) while ∇q still converges; there a step that
    raises q by at most a relative :data:`_Q_ROUNDOFF` and lowers ‖∇q‖ is taken too (without it
    the rejected steps raise the damping, which then dwarfs the slow direction's curvature
    s·c_u, and the search stops short of the minimum: a δ = 1.9e-5 rank-one ghost ended at
    1e-7 widths with ‖∇q‖ twice the stationarity tolerance). So is such a step that lowers the
    slope of q along itself, ``|∇q · δ|`` (with ``x_old``, the points the steps start from):
    along a very slow ghost's slow direction that slope is orders below the round-off of the
    other components of ∇q, which alone decide ‖∇q‖ (a δ = 2e-5 rank-one ghost: slope 1e-17
    against 4e-16; the search stopped 7e-12 from the minimum, 4e-10 of the ghost's width, and
    reaches it to 8e-16 with this test). ``closed``: the closed-form derivatives ``g_old`` came
    from (the two gradients compared must come from one formula).
    """
    with torch.no_grad():
        q_trial = dynamics.speed(trial)
    finite = solved & torch.isfinite(q_trial)
    accept = finite & (q_trial <= q_old)
    flat = finite & ~accept & (q_trial <= q_old * (1.0 + _Q_ROUNDOFF))
    if bool(flat.any()):
        where = torch.nonzero(flat).flatten()
        g_trial = (_speed_gradient(dynamics, trial[where], batch_size) if closed is None
                   else closed.gradient(trial[where]))
        accept[where] = g_trial.norm(dim=1) < g_old[where].norm(dim=1)
        if x_old is not None:  # or a lower slope along the step (docstring)
            step = trial[where] - x_old[where]
            along = lambda g: (g * step).sum(1).abs()  # noqa: E731
            accept[where] |= along(g_trial) < along(g_old[where])
    return accept, q_trial


def _speed_gradient(dynamics: Dynamics, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``∇q = J_vᵀ v`` at each row of ``x``, shape ``(b, n)``."""
    out = []
    for sl in _chunks(x.shape[0], max(1, batch_size)):
        xb = x[sl].detach()
        with torch.no_grad():
            v = dynamics.velocity(xb)
            jac = dynamics.jacobian(xb).detach()
        out.append((jac.transpose(1, 2) @ v.unsqueeze(-1)).squeeze(-1))
    return torch.cat(out) if out else x.new_zeros(x.shape)


def _newton_search(dynamics: Dynamics, starts: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                   length: float, opts: GhostOptions, closed: Optional[LowRankSpeed] = None):
    """Polish ``starts`` to minima of q with damped Newton on ∇q = 0 (exact Hessian).

    Levenberg–Marquardt: solve ``(H + μ·mean|diag H|·I) δ = −∇q`` (μ raised until the matrix is
    positive definite), accept a step only if q does not rise, shrink μ after a success and
    grow it after a failure. Points that are converging to the same minimum are merged after
    3, 10 and 30 iterations so the expensive Hessians are computed once per minimum.
    ``closed``: closed-form derivatives of q (:func:`_newton_system`).

    Returns (x, q, converged, on_wall, duplicate, iterations).
    """
    x = starts.clone()
    b = x.shape[0]
    with torch.no_grad():
        q = dynamics.speed(x)
    active = torch.isfinite(q)
    converged = torch.zeros(b, dtype=torch.bool, device=x.device)
    duplicate = torch.zeros(b, dtype=torch.bool, device=x.device)
    step_tol = opts.xtol * length
    box = hi - lo
    lo_in, hi_in = lo + 1e-9 * box, hi - 1e-9 * box
    iterations = 0
    # the searches still running, compacted (idx: their rows); written back when they stop
    idx = torch.nonzero(active).flatten()
    xa, qa = x[idx], q[idx]
    mu = torch.full((len(idx),), 1e-3, dtype=x.dtype, device=x.device)
    wall_count = torch.zeros(len(idx), dtype=torch.long, device=x.device)
    for it in range(opts.newton_steps):
        if idx.numel() == 0:
            break
        iterations = it + 1
        if it in (3, 10, 30):  # merge points that are converging to the same minimum
            keep = deduplicate(xa.cpu().numpy(), qa.cpu().numpy(), opts.tol_unique * length)
            if len(keep) < len(idx):
                stay = torch.zeros(len(idx), dtype=torch.bool, device=x.device)
                stay[torch.as_tensor(keep, device=x.device)] = True
                gone = idx[~stay]
                x[gone], q[gone] = xa[~stay], qa[~stay]
                active[gone] = False
                duplicate[gone] = True
                idx, xa, qa, mu, wall_count = (t[stay] for t in (idx, xa, qa, mu, wall_count))
        newton = _newton_system(dynamics, xa, opts.batch_size, closed)
        g = newton.gradient
        diag_scale = newton.diagonal.abs().mean(1).clamp_min(1e-300)
        mua = mu
        sol, ok = newton.solve(None, mua * diag_scale)
        if bool(ok.all()):  # the usual case: every system positive definite
            delta, solved = sol, ok
        else:
            mua = mu.clone()
            rows = torch.arange(len(idx), device=x.device)
            delta = torch.zeros_like(xa)
            solved = torch.zeros(len(idx), dtype=torch.bool, device=x.device)
            for _ in range(12):  # raise the damping until H + μI is positive definite
                where = rows[ok]
                delta[where] = sol[ok]
                solved[where] = True
                rows = rows[~ok]
                mua[rows] = mua[rows] * 10.0
                if rows.numel() == 0 or _ == 11:
                    break
                sol, ok = newton.solve(rows, mua[rows] * diag_scale[rows])
        trial = torch.clamp(xa + delta, lo, hi)
        accept, q_trial = _acceptable(dynamics, trial, solved, qa, g, opts.batch_size, closed,
                                      x_old=xa)
        step = (trial - xa).norm(dim=1)
        xa = torch.where(accept[:, None], trial, xa)
        qa = torch.where(accept, q_trial, qa)
        mu = torch.where(accept, (mua * 0.2).clamp_min(1e-15), mua * 5.0)
        small = step <= step_tol
        done = small & (accept | solved)
        # points pressed against the box for 5 iterations are leaving it: stop polishing them
        pressed = ((xa <= lo_in) | (xa >= hi_in)).any(1)
        wall_count = torch.where(pressed, wall_count + 1, torch.zeros_like(wall_count))
        leave = done | (mu > 1e10) | (wall_count >= 5)
        if bool(leave.any()):
            gone = idx[leave]
            x[gone], q[gone] = xa[leave], qa[leave]
            converged[idx[done]] = True
            active[gone] = False
            stay = ~leave
            idx, xa, qa, mu, wall_count = (t[stay] for t in (idx, xa, qa, mu, wall_count))
    x[idx], q[idx] = xa, qa
    on_wall = ((x <= lo_in) | (x >= hi_in)).any(1)
    return x, q, converged, on_wall, duplicate, iterations


# ============================================================================ analysis
def _reduced_form(dynamics: Dynamics, x: torch.Tensor, sigma_system: float,
                  opts: GhostOptions) -> Dict[str, Any]:
    """Null directions, curvature and Hessian test at candidate minima (the spectra of those
    that pass tests 1-5: :func:`_spectra`)."""
    with torch.no_grad():
        v = dynamics.velocity(x)
    jac = torch.cat([dynamics.jacobian(x[sl]).detach() for sl in _chunks(len(x), opts.batch_size)])
    s = v.norm(dim=1)
    u = v / s.clamp_min(1e-300)[:, None]
    _, svals, right_h = _linalg.svd(jac)
    e = right_h[:, -1, :]
    cos_ue = (u * e).sum(1)
    e = torch.where(cos_ue[:, None] < 0, -e, e)
    alignment = cos_ue.abs()
    c_u = _flow_curvature(dynamics, x, u, e).detach()
    # stationarity: ‖J_vᵀ v‖ relative to ‖J_v‖_F ‖v‖
    jtv = (jac.transpose(1, 2) @ v.unsqueeze(-1)).squeeze(-1)
    jac_scale = torch.clamp(torch.linalg.matrix_norm(jac), min=sigma_system)
    grad_cos = jtv.norm(dim=1) / (jac_scale * s).clamp_min(1e-300)
    hess, _ = _hessian_and_gradient(dynamics, x, opts.batch_size)
    hess_min = _linalg.eigvalsh(hess)[:, 0]
    return {"v": v, "s": s, "u": u, "e": e, "alignment": alignment, "c_u": c_u,
            "grad_cos": grad_cos, "hess_min": hess_min, "jac": jac, "sigma_min": svals[:, -1]}


def _spectra(red: Dict[str, Any], rows: torch.Tensor, sigma_system: float) -> None:
    """Add the transverse spectrum (``trans``, NaN outside ``rows``), the relaxation rate
    ``relax_rate`` and the spectral radius ``rho`` of J_v to ``red`` (:func:`_reduced_form`),
    computed at the candidates ``rows`` only (those that passed tests 1-5)."""
    jac, u, s = red["jac"][rows], red["u"][rows], red["s"]
    k, n = len(s), jac.shape[-1]
    trans = np.full((k, max(n - 1, 0)), np.nan, complex)
    relax_rate = torch.full_like(s, float("nan"))
    rho = torch.full_like(s, float("nan"))
    if len(rows):
        # transverse spectrum: J_v restricted to u^⊥ = range(J_v)
        if n > 1:
            basis = _complement(u)
            trans_t = _linalg.eigvals(basis.transpose(1, 2) @ jac @ basis)
            trans[rows.cpu().numpy()] = trans_t.cpu().numpy()
            relax_rate[rows] = trans_t.real.abs().median(dim=1).values
        else:
            relax_rate[rows] = sigma_system
        rho[rows] = _linalg.eigvals(jac).abs().max(1).values if n > 0 else s[rows] * 0
    red.update(trans=trans, relax_rate=relax_rate, rho=rho)


def _contrast(dynamics: Dynamics, x: torch.Tensor, e: torch.Tensor, half_width: torch.Tensor,
              s: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Speed rise across the bottleneck, shape ``(b,)``.

    On each side of ``x`` along ``e`` (``0 < ±z ≤ half_width``), the largest ‖v‖/s before the
    speed first falls back to ``s`` or below (towards another minimum or a fixed point); the
    smaller of the two sides.
    """
    m = max(n_samples // 2, 2)
    z = torch.linspace(0.0, 1.0, m + 1, dtype=x.dtype, device=x.device)[1:]
    rises = []
    for sign in (-1.0, 1.0):
        offsets = (sign * half_width[:, None] * z[None, :])[:, :, None] * e[:, None, :]
        points = x[:, None, :] + offsets
        with torch.no_grad():
            v = dynamics.velocity(points.reshape(-1, x.shape[1])).reshape(len(x), m, -1)
        ratio = v.norm(dim=2) / s.clamp_min(1e-300)[:, None]
        ratio = torch.where(torch.isfinite(ratio), ratio, torch.full_like(ratio, float("inf")))
        fallen = torch.cumsum((ratio <= 1.0).to(torch.int64), dim=1) > 0
        rises.append(torch.where(fallen, torch.ones_like(ratio), ratio).max(1).values)
    return torch.minimum(rises[0], rises[1])


def _complement(u: torch.Tensor) -> torch.Tensor:
    """Orthonormal bases of ``u^⊥`` for each unit row of ``u``, shape ``(b, n, n-1)``."""
    b, n = u.shape
    # Householder reflection mapping e_0 to u: its columns 1..n-1 span u^⊥.
    e0 = torch.zeros_like(u)
    e0[:, 0] = 1.0
    sign = torch.where(u[:, :1] >= 0, 1.0, -1.0).to(u.dtype)
    w = u + sign * e0
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)
    house = torch.eye(n, dtype=u.dtype, device=u.device) - 2.0 * w[:, :, None] * w[:, None, :]
    return house[:, :, 1:]


def _simulate_dwell(dynamics: Dynamics, x_g: torch.Tensor, u: torch.Tensor, e: torch.Tensor,
                    alignment: torch.Tensor, half_width: torch.Tensor, predicted: torch.Tensor,
                    rho: torch.Tensor, opts: GhostOptions):
    """Simulate from the near edge of each ghost's window until it leaves the window.

    Returns (exit_time, passed, trapped, steps): the time of leaving (far-edge crossing
    interpolated linearly; NaN if the simulation ran out of steps), whether it left through the
    far edge, whether it was still inside after three predicted passages, and the steps taken.
    """
    k = x_g.shape[0]
    x = x_g - half_width[:, None] * e
    if dynamics.time == "continuous":
        # slow mode: steps_per_passage steps per passage; fast transverse modes: |λ| h ≤ 2 keeps
        # RK4 stable and leaves the slaved (quasi-static) transverse position exact
        h = torch.minimum(predicted / opts.steps_per_passage, 2.0 / rho.clamp_min(1e-300))
    else:
        h = torch.ones_like(predicted)
    needed = torch.ceil(3.0 * predicted / h)
    limit = needed.clamp(max=opts.max_dwell_steps)
    elapsed = torch.zeros(k, dtype=x.dtype, device=x.device)
    exit_time = torch.full((k,), float("nan"), dtype=x.dtype, device=x.device)
    passed = torch.zeros(k, dtype=torch.bool, device=x.device)
    finished = torch.zeros(k, dtype=torch.bool, device=x.device)
    active = torch.ones(k, dtype=torch.bool, device=x.device)
    z_prev = -half_width.clone()
    hc = h[:, None]
    hw = half_width
    n_limit = int(limit.max())
    steps = 0
    with torch.no_grad():
        for steps in range(1, n_limit + 1):
            if dynamics.time == "continuous":
                k1 = dynamics.velocity(x)
                k2 = dynamics.velocity(x + 0.5 * hc * k1)
                k3 = dynamics.velocity(x + 0.5 * hc * k2)
                k4 = dynamics.velocity(x + hc * k3)
                xn = x + hc / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
            else:
                xn = dynamics.step(x)
            offset = xn - x_g
            z = (offset * u).sum(1) / alignment
            side = (offset - z[:, None] * e).norm(dim=1)
            through = active & (z >= hw)
            sideways = active & ~through & ((side > hw) | (z < -hw * (1 + 1e-9))
                                            | ~torch.isfinite(z))
            frac = ((hw - z_prev) / (z - z_prev).clamp_min(1e-300)).clamp(0, 1)
            exit_time = torch.where(through, elapsed + frac * h, exit_time)
            exit_time = torch.where(sideways, elapsed + h, exit_time)
            passed |= through
            finished |= through | sideways
            active = active & ~(through | sideways) & (steps < limit)
            x = torch.where(active[:, None], xn, x)
            z_prev = torch.where(active, z, z_prev)
            elapsed = elapsed + h * active
            if steps % 32 == 0 and not bool(active.any()):
                break
    trapped = ~finished & (needed <= opts.max_dwell_steps)
    return exit_time, passed, trapped, steps


# ============================================================================ main
def detect_ghosts(dynamics: Dynamics, fixed_points: Optional[FixedPoints] = None,
                  initial_states=None, options: Optional[GhostOptions] = None,
                  **overrides) -> Ghosts:
    """Find the ghosts of ``dynamics``: isolated slow bottlenecks with no fixed point in them.

    Parameters
    ----------
    dynamics : Dynamics
    fixed_points : FixedPoints, optional
        Output of :func:`~fixedpoints.find_fixed_points` for the same system and input. Its slow
        points (and slow-region points) are candidates, its fixed points feed the no-fixed-point
        test and its ``scale`` and ``q_fixed`` set the relative tolerances.
    initial_states : array_like of shape (b, n_states), optional
        States the system visits (e.g. :func:`~fixedpoints.sample_initial_states`); up to
        ``max_starts`` of them start Newton searches for minima of q (not for low-rank tanh
        networks, by default: ``state_starts``), and they set the search box. Without
        ``fixed_points`` the finder is run on them first (``run_finder``). At least one of
        ``fixed_points`` and ``initial_states`` is required.
    options : GhostOptions, optional
        Settings; keyword ``overrides`` replace single fields (``min_contrast=20``).

    Returns
    -------
    Ghosts
        Sorted by speed (slowest first). ``info["rejected"]`` counts the candidates dropped by
        each test (see the module docstring).
    """
    if not isinstance(dynamics, Dynamics):
        raise ValueError(f"dynamics must be a fixedpoints.Dynamics, got {type(dynamics).__name__};"
                         f" wrap a torch model with fixedpoints.from_module(model)")
    opts = resolve_options(GhostOptions, options, overrides)
    if fixed_points is None and initial_states is None:
        raise ValueError("detect_ghosts needs fixed_points (from find_fixed_points) or "
                         "initial_states (states the system visits); pass at least one")
    if fixed_points is not None and not isinstance(fixed_points, FixedPoints):
        raise ValueError(f"fixed_points must be a FixedPoints result, got "
                         f"{type(fixed_points).__name__}")
    if fixed_points is not None and fixed_points.n_states != dynamics.n_states:
        raise ValueError(f"fixed_points has {fixed_points.n_states} state dimension(s) but "
                         f"{dynamics.name} has {dynamics.n_states}; pass the finder's result for "
                         f"this system")
    if fixed_points is not None and fixed_points.time != dynamics.time:
        raise ValueError(f"fixed_points is {fixed_points.time}-time but {dynamics.name} is "
                         f"{dynamics.time}-time; pass the finder's result for this system")
    started = _time.perf_counter()
    n = dynamics.n_states
    x0 = None
    if initial_states is not None:
        x0 = dynamics.states(initial_states, name="initial_states")
        if x0.shape[0] == 0:
            raise ValueError(f"initial_states is empty; pass states of shape (b, {n})")
    if fixed_points is None and opts.run_finder:
        from .finder import find_fixed_points
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fixed_points = find_fixed_points(dynamics, x0, **(opts.finder_options or {}))
    info: Dict[str, Any] = {"rejected": dict.fromkeys(REJECTIONS, 0)}

    # ---- scales
    cloud = [] if x0 is None else [x0.cpu().numpy()]
    if fixed_points is not None and len(fixed_points):
        cloud.append(fixed_points.x)
    cloud_np = np.concatenate(cloud) if cloud else np.zeros((0, n))
    if fixed_points is not None:
        length = float(fixed_points.scale)
    else:
        length = state_spread(cloud_np)
    if not np.isfinite(length) or length <= 0:
        length = float(max(1.0, np.abs(cloud_np).max() if cloud_np.size else 1.0))
    # RMS singular value of J_v over the states: the system's rate scale (the relaxation time of
    # 1-D systems); at most max(32, _PROBE_ENTRIES / n²) of them, evenly spaced
    size = min(len(cloud_np), max(32, _PROBE_ENTRIES // (n * n)))
    probe = dynamics.states(cloud_np[np.unique(np.linspace(
        0, len(cloud_np) - 1, size).astype(int))]) if len(cloud_np) else None
    sigma_system = 0.0
    if probe is not None:
        jac = dynamics.jacobian(probe).detach()
        sigma_system = float(torch.sqrt((jac ** 2).sum((1, 2)).mean() / n))
    if fixed_points is not None:
        q_fixed = float(fixed_points.q_fixed)
    else:
        q_fixed = opts.q_fixed_rtol * 0.5 * (length * sigma_system) ** 2
    info.update(scale=length, q_fixed=q_fixed, sigma=sigma_system)

    # ---- candidates
    starts = []
    if fixed_points is not None:
        slow = fixed_points.x[fixed_points.kind == "slow"]
        starts.append(slow)
        for region in fixed_points.slow_regions:
            starts.append(region.points[region.speed > q_fixed])
    form = low_rank_form_or_none(dynamics, MAX_RANK)
    from_states = opts.state_starts if opts.state_starts is not None else form is None
    if x0 is not None and from_states:
        starts.append(_choose_starts(dynamics, x0, opts))
    latent = _low_rank_seeds(dynamics, max(opts.max_starts // (4 if from_states else 1), 1),
                             form)
    starts.append(latent)
    info["state_starts"] = bool(x0 is not None and from_states)
    starts_np = np.concatenate(starts) if starts else np.zeros((0, n))
    info["starts"] = int(len(starts_np))
    known_fixed = []
    if fixed_points is not None:
        known_fixed.append(fixed_points.x[fixed_points.kind != "slow"])
        for region in fixed_points.slow_regions:
            known_fixed.append(region.points[region.speed <= q_fixed])
    meta = dict(scale=length, q_fixed=q_fixed)
    if len(starts_np) == 0:
        info["seconds"] = _time.perf_counter() - started
        return Ghosts.empty(n, dynamics.time, info=info, **meta)

    # the box holds the states, the fixed points and the latent's minima (points of the system
    # itself, wherever the states went)
    box_cloud = np.concatenate([cloud_np, latent]) if len(cloud_np) else starts_np
    lo_np, hi_np = box_cloud.min(0), box_cloud.max(0)
    box_w = np.maximum(hi_np - lo_np, 1e-3 * length / np.sqrt(n))
    # without visited states the points found are all we know: allow a spread's room around them
    pad = opts.box_margin * box_w + (length if x0 is None else 0.0)
    lo = torch.as_tensor(lo_np - pad, dtype=dynamics.dtype, device=dynamics.device)
    hi = torch.as_tensor(hi_np + pad, dtype=dynamics.dtype, device=dynamics.device)
    xs = dynamics.states(np.clip(starts_np, lo.cpu().numpy(), hi.cpu().numpy()))
    closed = low_rank_speed(dynamics, form, xs)
    info["closed_form_hessian"] = closed is not None
    x, q, converged, on_wall, duplicate, n_iter = _newton_search(dynamics, xs, lo, hi, length, opts,
                                                                 closed)
    # a minimum just beyond the box (the states need not surround a ghost they never visited):
    # searches pressed against its wall with q above the fixed-point level go on in a box
    # twice as wide, at most _BOX_WIDENINGS times
    widenings = 0
    for _ in range(_BOX_WIDENINGS if opts.box_margin > 0 else 0):
        stuck = on_wall & torch.isfinite(q) & (q > q_fixed) & ~duplicate
        if not bool(stuck.any()):
            break
        widenings += 1
        pad = 2.0 * pad
        lo = torch.as_tensor(lo_np - pad, dtype=dynamics.dtype, device=dynamics.device)
        hi = torch.as_tensor(hi_np + pad, dtype=dynamics.dtype, device=dynamics.device)
        idx = torch.nonzero(stuck).flatten()
        x2, q2, c2, w2, d2, it2 = _newton_search(dynamics, x[idx], lo, hi, length, opts, closed)
        x[idx], q[idx], converged[idx], on_wall[idx], duplicate[idx] = x2, q2, c2, w2, d2
        n_iter += it2
    info["box_widenings"] = widenings
    info["newton_iterations"] = int(n_iter)
    info["newton_unconverged"] = int((~converged & ~duplicate).sum())
    rej = info["rejected"]
    rej["duplicate"] += int(duplicate.sum())
    finite = torch.isfinite(q) & ~duplicate
    is_fixed = finite & (q <= q_fixed)
    known_fixed.append(x[is_fixed].cpu().numpy())
    rej["fixed_point"] += int(is_fixed.sum())
    rej["outside_box"] += int((finite & ~is_fixed & on_wall).sum())
    rej["unconverged"] += int((~torch.isfinite(q)).sum())
    cand = finite & ~is_fixed & ~on_wall
    xc, qc = x[cand], q[cand]
    keep = deduplicate(xc.cpu().numpy(), qc.cpu().numpy(), opts.tol_unique * length)
    rej["duplicate"] += int(len(xc) - len(keep))
    xc = xc[torch.as_tensor(keep, dtype=torch.long, device=xc.device)]
    info["candidates"] = int(len(xc))
    fixed_np = np.concatenate([f.reshape(-1, n) for f in known_fixed]) if known_fixed else \
        np.zeros((0, n))
    info["known_fixed_points"] = int(len(fixed_np))
    if len(xc) == 0:
        info["seconds"] = _time.perf_counter() - started
        return Ghosts.empty(n, dynamics.time, info=info, **meta)

    # ---- tests 1-5
    red = _reduced_form(dynamics, xc, sigma_system, opts)
    s, c_u, align = red["s"], red["c_u"], red["alignment"]
    stationary = red["grad_cos"] <= opts.grad_rtol
    rej["unconverged"] += int((~stationary).sum())
    ok = stationary.clone()
    bottleneck = ok & (c_u > 0)
    rej["not_bottleneck"] += int((ok & ~bottleneck).sum())
    ok = bottleneck
    aligned = ok & (align >= opts.min_alignment)
    rej["misaligned"] += int((ok & ~aligned).sum())
    ok = aligned
    along = s * c_u
    isolation = red["hess_min"] / along.clamp_min(1e-300)
    minimum = ok & (red["hess_min"] > 0)
    rej["not_minimum"] += int((ok & ~minimum).sum())
    ok = minimum
    isolated = ok & (isolation >= opts.isolation_rtol)
    rej["flat"] += int((ok & ~isolated).sum())
    ok = isolated
    width = torch.sqrt(2.0 * s / c_u.clamp_min(1e-300))
    xc_np = xc.cpu().numpy()
    if len(fixed_np):
        from scipy.spatial import cKDTree
        fp_dist, _ = cKDTree(fixed_np).query(xc_np, k=1)
    else:
        fp_dist = np.full(len(xc_np), np.inf)
    fp_dist_t = torch.as_tensor(fp_dist, dtype=xc.dtype, device=xc.device)
    clear = ok & (fp_dist_t > opts.clearance * width)
    rej["near_fixed_point"] += int((ok & ~clear).sum())
    ok = clear
    # the window: window·w, cut to half the distance to the nearest known fixed point
    half_width = torch.minimum(opts.window * width, 0.5 * fp_dist_t)
    contrast = torch.ones_like(s)
    idx = torch.nonzero(ok).flatten()
    if idx.numel():
        contrast[idx] = _contrast(dynamics, xc[idx], red["e"][idx], half_width[idx], s[idx],
                                  opts.contrast_samples)
    rises = ok & (contrast >= opts.min_contrast)
    rej["shallow"] += int((ok & ~rises).sum())
    ok = rises
    curvature = c_u / align.clamp_min(1e-300) ** 2
    passage = math.pi * torch.sqrt(2.0 / (s * curvature).clamp_min(1e-300))

    # ---- test 6: simulate through the window
    dwell = torch.full_like(s, float("nan"))
    passed = torch.zeros_like(ok)
    idx = torch.nonzero(ok).flatten()
    _spectra(red, idx, sigma_system)
    if opts.simulate and idx.numel():
        t_exit, thru, trapped, n_steps = _simulate_dwell(
            dynamics, xc[idx], red["u"][idx], red["e"][idx], align[idx], half_width[idx],
            passage[idx], red["rho"][idx], opts)
        dwell[idx] = t_exit / opts.window_fraction(half_width[idx] / width[idx])
        passed[idx] = thru
        info["simulation_steps"] = int(n_steps)
        rej["trapped"] += int(trapped.sum())
        ok[idx[trapped]] = False
    relaxation = 1.0 / red["relax_rate"].clamp_min(1e-300)
    strength = passage / relaxation
    strong_enough = ok & (strength >= opts.min_strength)
    rej["too_weak"] += int((ok & ~strong_enough).sum())
    ok = strong_enough

    # ---- assemble
    sel = torch.nonzero(ok).flatten()
    sel_np = sel.cpu().numpy()
    n_trans = max(n - 1, 0)
    native = dynamics.eigvals_native(red["trans"][sel_np].astype(complex)).reshape(
        len(sel_np), n_trans)
    if native.size:
        native = sort_spectrum(native, dynamics.time)
    n_unstable = dynamics.unstable_mask(native, EIG_RTOL).sum(1).astype(int)
    kind = np.where(n_unstable == 0, "attracting",
                    np.where(n_unstable == n_trans, "repelling", "saddle")).astype("<U10")

    def pick(t):
        return t[sel].detach().cpu().numpy()

    s_np = pick(s)
    # slowest first; ghosts equally slow to round-off are ordered by their coordinates
    s_key = np.round(s_np / max(float(s_np.max()), 1e-300), 9) if len(s_np) else s_np
    x_sel = pick(xc)
    order = np.lexsort(tuple(np.round(x_sel[:, j], 9) for j in range(n - 1, -1, -1)) + (s_key,))
    info["seconds"] = _time.perf_counter() - started
    info["options"] = {k: v for k, v in asdict(opts).items() if k != "finder_options"}
    result = Ghosts(
        x=pick(xc)[order], speed=0.5 * s_np[order] ** 2, velocity_norm=s_np[order],
        slow_direction=pick(red["e"])[order], flow_direction=pick(red["u"])[order],
        alignment=pick(align)[order], curvature=pick(curvature)[order],
        width=pick(width)[order], transverse_eigvals=native[order],
        n_unstable=n_unstable[order], kind=kind[order], passage_time=pick(passage)[order],
        dwell_time=pick(dwell)[order], passed=pick(passed)[order],
        fixed_point_distance=fp_dist[sel_np][order], isolation=pick(isolation)[order],
        contrast=pick(contrast)[order], relaxation_time=pick(relaxation)[order],
        strength=pick(strength)[order],
        strength_class=np.where(pick(strength)[order] >= opts.strong_strength, "strong",
                                "weak").astype("<U6"),
        time=dynamics.time, info=info, scale=length, q_fixed=q_fixed)
    result = certify_ghosts(dynamics, result, fixed_points)  # exclusion radii, κ location
    log.info("detect_ghosts: %r in %.2f s (rejected: %s)", result, info["seconds"],
             {k: v for k, v in info["rejected"].items() if v})
    return result


def _choose_starts(dynamics: Dynamics, x0: torch.Tensor, opts: GhostOptions) -> np.ndarray:
    """At most ``max_starts`` of the states, chosen without a random number.

    Half are the slowest **local speed minima** among the states (slower than each of their
    :data:`_NEIGHBOURS` nearest neighbours): every slow cluster the trajectories visit, a ghost's
    as well as each fixed point's, gives its slowest state, where the slowest states overall
    all sit at the attractors. The rest spread over the cloud (farthest-point order from those),
    so that the Newton basins of minima the trajectories never slowed down at are reached too.
    """
    x_np = x0.cpu().numpy()
    if len(x_np) <= opts.max_starts:
        return x_np
    with torch.no_grad():
        q = dynamics.speed(x0).cpu().numpy()
    q = np.where(np.isfinite(q), q, np.inf)
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import cdist
    k = min(_NEIGHBOURS, len(x_np) - 1)
    _, near = cKDTree(x_np).query(x_np, k=k + 1)
    local = np.flatnonzero(q <= q[near[:, 1:]].min(1))
    local = local[np.argsort(q[local], kind="stable")][: opts.max_starts // 2]
    order = np.argsort(q, kind="stable")
    taken = set(local.tolist())
    chosen = list(local) + [i for i in order[: opts.max_starts // 2] if i not in taken]
    chosen = chosen[: max(opts.max_starts // 2, 1)]
    # farthest-point order over the rest: each next start is the state farthest from all chosen
    dist = cdist(x_np, x_np[chosen]).min(1)
    while len(chosen) < opts.max_starts:
        i = int(np.argmax(dist))
        if dist[i] <= 0:
            break
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(x_np - x_np[i], axis=1))
    return x_np[np.asarray(chosen, dtype=int)]


#: Neighbours a state must be slower than to count as a local speed minimum (_choose_starts).
_NEIGHBOURS = 8


def _low_rank_seeds(dynamics: Dynamics, max_seeds: int,
                    form: Optional[LowRankForm] = None) -> np.ndarray:
    """Starts that depend on the system only: for low-rank tanh networks (rank ≤ 3), the
    lifted minima of the latent speed, every local minimum of q among them (fixed points and
    ghosts alike, whatever the sampled states; :func:`~fixedpoints.latent.latent_minima`), the
    slowest ``max_seeds``. Empty for other systems, shape ``(m, n)``. ``form``: the system's
    form when the caller has it (else looked up,
    :func:`~fixedpoints.lowrank.low_rank_form_or_none`).
    """
    if form is None:
        form = low_rank_form_or_none(dynamics, MAX_RANK)
    if form is None:
        return np.zeros((0, dynamics.n_states))
    return latent_minima(form, max_seeds)
