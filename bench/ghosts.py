"""Benchmark of the ghost detector (issues 4, 18). Prints figures; asserts nothing.

Generates 274 systems with known answers, ghost and no ghost, both time types, 1 to 200
dimensions, ghost speeds over four decades, strong and weak ghosts, and runs the full pipeline
on each
(``detect_ghosts(dynamics, initial_states=...)``, which runs ``find_fixed_points`` first):

ghost (known location and passage time)
  * ``saddle_node``   dy0/dt = r + y0², randomly rotated, extra stable directions;
                      r log-uniform in [1e-6, 1e-2]; continuous, and the Euler map (dt = 0.5)
  * ``tanh_map``      y <- tanh(2y + b), b = b_c + δ, δ log-uniform in [1e-6, 1e-2] (discrete)
  * ``rank_one``      x <- (1-α)x + α tanh(m n·x + b) (discrete) and dx/dt = -x + tanh(...)
                      (continuous), N = 100, just past a saddle-node; truth from the exact 1-D
                      reduction dκ/dt = -κ + n·tanh(mκ + b) solved with scipy
  * ``saddle_ghost``  the normal form with one unstable transverse direction (continuous)
weak ghosts (issue 18: distance to the fold 0.05-0.3)
  * ``saddle_node_w`` the normal form with r uniform in [0.05, 0.3], both time types
  * ``tanh_map_w``    the tanh map with δ uniform in [0.05, 0.3]
  * ``rank_one_w``    rank-one networks at δ uniform in [0.05, 0.3] past the fold, couplings
                      n·m - n·m0 in {1.5, 2.5, 4}, both time types; draws where the exact 1-D
                      flow does not double its speed between the minimum and the next fixed
                      point are shoulders, not bottlenecks, and are skipped (the count is printed)
no ghost
  * ``saddle_node-``  r < 0: the node-saddle pair still exists
  * ``tanh_map-``     b = b_c − δ: three fixed points, two of them about to collide
  * ``rank_one-``     the rank-one network just before its saddle-node
  * ``linear``        random stable linear systems
  * ``line``          line attractors (a valley of fixed points)
  * ``drift``         a slow manifold with constant drift (a flat valley of q)
  * ``corrugated``    the same with a ±10% modulation (isolated minima, speed barely rises)
  * ``flipflop``      the rotated 3-bit flip-flop map (27 fixed points)
  * ``fast``          a linear flow probed only with states along one fast trajectory

A detection is correct when it lies within 0.1 bottleneck widths of the true ghost.
Every true ghost has a known strength S = passage time / relaxation time (the relaxation time
from the known transverse rates: 1/median rate; the rank-one networks 1/α steps or 1; the tanh
map's contraction 0.5, 2 steps; one-dimensional systems 1/σ, σ the RMS of |J_v| over the
states), which sorts it into a class: strong (S ≥ 20, the detector's default), weak (5 ≤ S <
20) or faint (S < 5). Targets: recall ≥ 0.99 on S ≥ 5, precision ≥ 0.99 overall.
Reported: precision, recall overall and by class, location error
(in widths), passage-time error of the prediction
π√(2/(s c)) and of the simulated dwell time against the exact passage time, and timings.

Usage: python bench/ghosts.py [--no-finder] [--quick] [--seed 0] [--families A,B] [--case TEXT]

``--case TEXT`` runs only the systems whose description (``family time n=N label``, as printed in
the miss list) contains TEXT, e.g. ``--case "rank_one continuous n=100 delta=1.86e-05"``, and
prints each one's result and rejection counts. ``--seed`` draws other systems and states (the
detector itself draws no random number).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import brentq, fsolve  # noqa: E402

import fixedpoints as fp  # noqa: E402
from fixedpoints import systems  # noqa: E402
from fixedpoints.ghosts import detect_ghosts  # noqa: E402

DIMS = (1, 2, 10, 50, 100, 200)


@dataclass
class Case:
    family: str
    time: str
    n: int
    dynamics: fp.Dynamics
    states: np.ndarray
    ghosts: np.ndarray                  # (k, n) true ghost locations (k = 0: none)
    passage: np.ndarray                 # (k,) exact passage times
    width: np.ndarray                   # (k,) true bottleneck widths
    label: str = ""
    relaxation: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) true τ
    result: Optional[object] = None
    seconds: float = 0.0
    matched: List[int] = field(default_factory=list)


# ---------------------------------------------------------------------------- systems
class Shoulder(RuntimeError):
    """A speed minimum past the fold that is not a bottleneck (see RankOne._bottleneck)."""


class RankOne:
    """Rank-one network just past (``past=True``: a ghost) or just before a saddle-node of its
    exact 1-D flow ``dκ/dt = -κ + n·tanh(mκ + β b̂)``, at distance ``delta`` in β."""

    def __init__(self, delta, seed, time, past=True, N=100, alpha=0.5, coupling=2.5):
        rng = np.random.default_rng(seed)
        m0, n = rng.normal(0, 1 / np.sqrt(N), N), rng.normal(0, 1 / np.sqrt(N), N)
        self.m, self.n, self.bdir = m0 + coupling * n / np.dot(n, n), n, rng.normal(0, 1, N)
        k_c, beta_c = self._fold()
        # near the fold h ≈ h_g + ½ h'' (κ - κ_g)²: no root (a ghost) when h_g h'' > 0
        for beta in (beta_c + delta, beta_c - delta):
            kappa = self._extremum(k_c, beta)
            h_g = self.h(kappa, beta)
            eps = 1e-5
            h2 = (self.dh(kappa + eps, beta) - self.dh(kappa - eps, beta)) / (2 * eps)
            if (h_g * h2 > 0) == past:
                break
        self.beta = beta
        if past and not self._bottleneck(kappa, h_g, h2):
            raise Shoulder(f"|h| does not double between κ_g and the next fixed point (δ={delta})")
        rate = alpha if time == "discrete" else 1.0
        self.relaxation = 1.0 / rate      # every direction but κ decays at the leak rate
        phi = np.tanh(self.m * kappa + self.beta * self.bdir)
        self.location = phi - h_g / np.dot(n, n) * n      # minimum of q in the full space
        self.passage = math.pi * math.sqrt(2 / (rate ** 2 * abs(h_g) * abs(h2)))
        s = rate * abs(h_g) / np.linalg.norm(n)
        # width along the slow direction e ∝ D m: speed doubles where ½ c_u z² = s
        d = 1 - phi ** 2
        e = d * self.m / np.linalg.norm(d * self.m)
        c_u = rate * abs(h2) * (n @ e) ** 2 / np.linalg.norm(n)
        self.width = math.sqrt(2 * s / c_u)
        mt, nt = torch.as_tensor(self.m), torch.as_tensor(n)
        bt = torch.as_tensor(self.beta * self.bdir)
        if time == "discrete":
            self.dynamics = fp.DiscreteDynamics(
                lambda x, u: (1 - alpha) * x + alpha * torch.tanh((x @ nt)[:, None] * mt + bt), N)
        else:
            self.dynamics = fp.ContinuousDynamics(
                lambda x, u: -x + torch.tanh((x @ nt)[:, None] * mt + bt), N)

    def _extremum(self, k_c, beta):
        """The root of h' nearest the fold point k_c (h's extremum there) at this β."""
        for half in (0.25, 0.5, 1.0, 2.0):
            lo, hi = k_c - half, k_c + half
            if self.dh(lo, beta) * self.dh(hi, beta) < 0:
                return brentq(lambda k: self.dh(k, beta), lo, hi, xtol=1e-14)
        raise RuntimeError("no extremum of h near the fold")

    def _bottleneck(self, kappa, h_g, h2):
        """Whether the exact 1-D flow speeds up to 2|h_g| on both sides of κ_g before any root
        of h and before |h| falls below |h_g| again: a bottleneck the flow passes, not a
        shoulder on the way into a fixed point (far past the fold the node downstream can sit
        closer than the quadratic width) or a ripple beside a slower minimum (which would be
        a second ghost the truth does not list)."""
        width = math.sqrt(2 * abs(h_g) / abs(h2))
        for side in (-1.0, 1.0):
            for z in np.linspace(0.02, 50.0, 2500) * width:
                h = self.h(kappa + side * z, self.beta)
                if h * h_g <= 0 or abs(h) < abs(h_g):
                    return False
                if abs(h) >= 2 * abs(h_g):
                    break
        return True

    def _fold(self):
        """A saddle-node (h = h' = 0) of the 1-D flow, from several starting guesses."""
        for k0 in (1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0):
            for b0 in (0.3, -0.3, 1.0, -1.0, 0.1, -0.1):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    (k, b), _, ok, _ = fsolve(lambda z: [self.h(z[0], z[1]), self.dh(z[0], z[1])],
                                              (k0, b0), full_output=True, xtol=1e-13)
                if ok == 1 and abs(self.h(k, b)) < 1e-11 and abs(self.dh(k, b)) < 1e-9:
                    return k, b
        raise RuntimeError("no saddle-node found for this seed")

    def h(self, k, beta):
        return -k + self.n @ np.tanh(self.m * k + beta * self.bdir)

    def dh(self, k, beta):
        return -1 + self.n @ ((1 - np.tanh(self.m * k + beta * self.bdir) ** 2) * self.m)


def _normal(n, rng, count=256):
    return rng.standard_normal((count, n))


def _tanh_map_case(rng, n: int, b: float, b_c: float, family: str, fmt: str) -> "Case":
    """The map x <- tanh(2x + b) past its fold (b > b_c), rotated into n dimensions: its ghost at
    the minimum of tanh(2y + b) - y, where tanh = -sqrt(1/2), with the exact passage time."""
    dyn = systems.tanh_map(2.0, b, n_states=n, seed=int(rng.integers(1e6)))
    t = -math.sqrt(0.5)
    y = (math.atanh(t) - b) / 2
    s, c = t - y, -4 * t
    states = rng.uniform(-1, 1, (256, n)) @ dyn.Q.T
    return Case(family, "discrete", n, dyn, states, (y * dyn.Q[:, 0])[None],
                np.array([math.pi * math.sqrt(2 / (s * c))]), np.array([math.sqrt(2 * s / c)]),
                f"delta={b - b_c:{fmt}}",
                relaxation=np.array([_relaxation([0.5] * (n - 1), dyn, states)]))


def _saddle_node_case(rng, family: str, time_kind: str, n: int, r: float, dt: float,
                      fmt: str) -> "Case":
    """The saddle-node normal form past its fold (r > 0) in n dimensions: its ghost at the
    origin, passage time pi/sqrt(r) (in steps of dt for maps)."""
    dyn = systems.saddle_node(r, n_states=n, time=time_kind, dt=dt, seed=int(rng.integers(1e6)))
    unit = 1.0 if time_kind == "continuous" else dt
    states = _normal(n, rng)
    return Case(family, time_kind, n, dyn, states, np.zeros((1, n)),
                np.array([math.pi / math.sqrt(r) / unit]), np.array([math.sqrt(r)]),
                f"r={r:{fmt}}",
                relaxation=np.array([_relaxation(_rates(n), dyn, states, unit)]))


def _relaxation(rates, dyn, states, unit=1.0):
    """True relaxation time: 1/median of the transverse rates (times the map's step ``unit``);
    1/σ over the states when there is no transverse direction."""
    if len(rates):
        return 1.0 / (unit * float(np.median(np.abs(rates))))
    jac = fp.jacobian(dyn, states)
    return 1.0 / float(np.sqrt((jac ** 2).sum((1, 2)).mean() / dyn.n_states))


def _rates(n):
    """Decay rates of the extra coordinates of systems.saddle_node (its default)."""
    return np.linspace(0.5, 2.0, max(n - 1, 1))[: n - 1]


def build_cases(seed: int, quick: bool) -> List[Case]:
    rng = np.random.default_rng(seed)
    cases: List[Case] = []
    none = lambda n: (np.zeros((0, n)), np.zeros(0), np.zeros(0))  # noqa: E731
    scale = 0.25 if quick else 1.0

    def count(k):
        return max(2, int(round(k * scale)))

    # ---- ghosts: the embedded normal form, r over four decades
    for time_kind in ("continuous", "discrete"):
        dt = 0.5
        for i in range(count(30)):
            n = DIMS[i % len(DIMS)]
            r = 10 ** rng.uniform(-6, -2)
            cases.append(_saddle_node_case(rng, "saddle_node", time_kind, n, r, dt, ".2e"))
    # ---- ghosts: the one-unit tanh map past its saddle-node
    b_c = systems.tanh_saddle_node_b(2.0)
    for i in range(count(30)):
        cases.append(_tanh_map_case(rng, DIMS[i % len(DIMS)], b_c + 10 ** rng.uniform(-6, -2),
                                    b_c, "tanh_map", ".2e"))
    # ---- ghosts: rank-one networks (both time types), and saddle-like ghosts
    for time_kind in ("discrete", "continuous"):
        for i in range(count(10)):
            delta = 10 ** rng.uniform(-5, -2)
            model = RankOne(delta, seed=40 + i, time=time_kind, past=True)
            states = fp.sample_initial_states(model.dynamics, 256, n_steps=50, noise=0.1, seed=i,
                                              init_scale=3.0)
            cases.append(Case("rank_one", time_kind, 100, model.dynamics, states,
                              model.location[None], np.array([model.passage]),
                              np.array([model.width]), f"delta={delta:.2e}",
                              relaxation=np.array([model.relaxation])))
    for i in range(count(10)):
        n = (3, 10, 50, 100)[i % 4]
        r = 10 ** rng.uniform(-6, -2)
        # one unstable transverse direction (rate -1), the rest decays
        rates = np.concatenate([[-1.0], np.linspace(0.5, 2.0, n - 2)])
        ghost = systems.saddle_node(r, n_states=n, rates=rates, seed=int(rng.integers(1e6)))
        cases.append(Case("saddle_ghost", "continuous", n, ghost, _normal(n, rng),
                          np.zeros((1, n)), np.array([math.pi / math.sqrt(r)]),
                          np.array([math.sqrt(r)]), f"r={r:.2e}",
                          relaxation=np.array([1.0 / float(np.median(np.abs(rates)))])))

    # ---- weak ghosts: 0.05-0.3 past the fold (issue 18)
    for time_kind in ("continuous", "discrete"):
        dt = 0.5
        for i in range(count(10)):
            n = DIMS[i % len(DIMS)]
            r = rng.uniform(0.05, 0.3)
            cases.append(_saddle_node_case(rng, "saddle_node_w", time_kind, n, r, dt, ".3f"))
    for i in range(count(10)):
        cases.append(_tanh_map_case(rng, DIMS[i % len(DIMS)], b_c + rng.uniform(0.05, 0.3),
                                    b_c, "tanh_map_w", ".3f"))
    for time_kind in ("discrete", "continuous"):
        made, seed, shoulders = 0, 100, 0
        while made < count(12):
            coupling = (1.5, 2.5, 4.0)[made % 3]
            delta = rng.uniform(0.05, 0.3)
            seed += 1
            try:
                model = RankOne(delta, seed=seed, time=time_kind, past=True, coupling=coupling)
            except Shoulder:  # the node downstream is too close: no bottleneck left (counted)
                shoulders += 1
                continue
            except RuntimeError:  # no fold for this draw, or no extremum of h that far past it
                continue
            states = fp.sample_initial_states(model.dynamics, 256, n_steps=50, noise=0.1,
                                              seed=seed, init_scale=3.0)
            cases.append(Case("rank_one_w", time_kind, 100, model.dynamics, states,
                              model.location[None], np.array([model.passage]),
                              np.array([model.width]),
                              f"delta={delta:.3f} coupling={coupling} seed={seed}",
                              relaxation=np.array([model.relaxation])))
            made += 1
        print(f"rank_one_w {time_kind}: {shoulders} draw(s) skipped as shoulders (no speed "
              f"doubling between the minimum and the next fixed point in the exact 1-D flow)")

    # ---- no ghost
    for time_kind in ("continuous", "discrete"):
        for i in range(count(15)):
            n = DIMS[i % len(DIMS)]
            r = -10 ** rng.uniform(-6, -2)
            dyn = systems.saddle_node(r, n_states=n, time=time_kind, dt=0.5,
                                      seed=int(rng.integers(1e6)))
            cases.append(Case("saddle_node-", time_kind, n, dyn, _normal(n, rng), *none(n),
                              f"r={r:.2e}"))
    for i in range(count(10)):
        n = DIMS[i % len(DIMS)]
        delta = 10 ** rng.uniform(-6, -2)
        dyn = systems.tanh_map(2.0, b_c - delta, n_states=n, seed=int(rng.integers(1e6)))
        cases.append(Case("tanh_map-", "discrete", n, dyn,
                          rng.uniform(-1, 1, (256, n)) @ dyn.Q.T, *none(n), f"delta={delta:.2e}"))
    for i in range(count(10)):
        delta = 10 ** rng.uniform(-5, -2)
        time_kind = ("discrete", "continuous")[i % 2]
        model = RankOne(delta, seed=60 + i, time=time_kind, past=False)
        states = fp.sample_initial_states(model.dynamics, 256, n_steps=50, noise=0.1, seed=i,
                                          init_scale=3.0)
        cases.append(Case("rank_one-", time_kind, 100, model.dynamics, states, *none(100),
                          f"delta={delta:.2e}"))
    for time_kind in ("continuous", "discrete"):
        for i in range(count(5)):
            n = (2, 10, 50, 100, 200)[i % 5]
            A = rng.standard_normal((n, n)) / math.sqrt(n)
            if time_kind == "continuous":
                A = A - (np.max(np.linalg.eigvals(A).real) + 0.5) * np.eye(n)
            else:
                A = 0.8 * A / np.max(np.abs(np.linalg.eigvals(A)))
            cases.append(Case("linear", time_kind, n, systems.linear(A, time_kind), _normal(n, rng),
                              *none(n)))
            cases.append(Case("line", time_kind, n, systems.line_attractor(n, time_kind, seed=i),
                              _normal(n, rng), *none(n)))
            eps = 10 ** rng.uniform(-5, -2)
            for name, corrugation in (("drift", 0.0), ("corrugated", 0.1)):
                drift = systems.drift_manifold(eps, n, time_kind, corrugation, seed=i)
                cases.append(Case(name, time_kind, n, drift, _normal(n, rng), *none(n),
                                  f"eps={eps:.1e}"))
    for i in range(count(5)):
        n = (3, 16, 32, 64, 128)[i % 5]
        dyn = systems.rotated_flipflop(n, seed=i)
        cases.append(Case("flipflop", "discrete", n, dyn, rng.uniform(-1, 1, (256, n)),
                          *none(n)))
    for i in range(count(5)):
        n = (2, 5, 10, 50, 100)[i % 5]
        A = -np.eye(n) + 0.9 * np.diag(np.ones(n - 1), 1)
        dyn = systems.linear(A, "continuous")
        start = 3 * rng.standard_normal((1, n))
        trajectory = dyn.simulate(start, 40, dt=0.1)[0].numpy()
        cases.append(Case("fast", "continuous", n, dyn, trajectory, *none(n)))
    return cases


# ---------------------------------------------------------------------------- scoring
def describe(case: Case) -> str:
    """``family time n=N label``: what ``--case`` matches and the miss list prints."""
    return f"{case.family} {case.time} n={case.n} {case.label}".strip()


def run(cases: List[Case], run_finder: bool, verbose: bool = False) -> None:
    for case in cases:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.result = detect_ghosts(case.dynamics, initial_states=case.states,
                                        run_finder=run_finder)
        case.seconds = time.perf_counter() - started
        found = case.result
        case.matched = []
        for j in range(len(found)):
            if len(case.ghosts) == 0:
                case.matched.append(-1)
                continue
            dist = np.linalg.norm(case.ghosts - found.x[j], axis=1)
            k = int(np.argmin(dist))
            case.matched.append(k if dist[k] <= 0.1 * case.width[k] else -1)
        if verbose:
            info = found.info
            print(f"{describe(case)}: {found} in {case.seconds:.2f} s, matched {case.matched} "
                  f"of {len(case.ghosts)}; starts {info.get('starts')}, candidates "
                  f"{info.get('candidates')}, rejected "
                  f"{ {k: v for k, v in info['rejected'].items() if v} }")


def report(cases: List[Case]) -> None:
    families = list(dict.fromkeys(c.family for c in cases))
    print(f"{'family':14s} {'time':10s} {'systems':>7s} {'true':>5s} {'found':>5s} {'TP':>4s} "
          f"{'FP':>4s} {'FN':>4s} {'sec/system':>10s}")
    tot = dict(true=0, found=0, tp=0, fp=0, fn=0)
    loc_err, pass_err, dwell_err, abs_loc, worst = [], [], [], [], []
    for fam in families:
        for time_ in ("continuous", "discrete"):
            group = [c for c in cases if c.family == fam and c.time == time_]
            if not group:
                continue
            true = sum(len(c.ghosts) for c in group)
            found = sum(len(c.result) for c in group)
            tp = sum(sum(1 for m in c.matched if m >= 0) for c in group)
            hit = sum(len({m for m in c.matched if m >= 0}) for c in group)
            fp_ = found - tp
            fn = true - hit
            for key, value in zip(("true", "found", "tp", "fp", "fn"), (true, found, hit, fp_, fn)):
                tot[key] += value
            secs = np.mean([c.seconds for c in group])
            print(f"{fam:14s} {time_:10s} {len(group):7d} {true:5d} {found:5d} {hit:4d} {fp_:4d} "
                  f"{fn:4d} {secs:10.2f}")
            for c in group:
                for j, m in enumerate(c.matched):
                    if m < 0:
                        continue
                    d = np.linalg.norm(c.result.x[j] - c.ghosts[m])
                    abs_loc.append(d)
                    loc_err.append(d / c.width[m])
                    pass_err.append(abs(c.result.passage_time[j] / c.passage[m] - 1))
                    if c.result.passed[j]:
                        err = abs(c.result.dwell_time[j] / c.passage[m] - 1)
                        dwell_err.append(err)
                        worst.append((err, (f"{c.family} {c.time} n={c.n} {c.label}: "
                                            f"passage {c.passage[m]:.4g}, "
                                            f"dwell {c.result.dwell_time[j]:.4g}, "
                                            f"s = {c.result.velocity_norm[j]:.2e}")))
    precision = tot["tp"] / tot["found"] if tot["found"] else 1.0
    recall = tot["tp"] / tot["true"] if tot["true"] else 1.0
    print()
    print(f"{'class':22s} {'true':>5s} {'found':>5s} {'recall':>7s}   reported class (strong/weak)")
    by_class = {"strong (S >= 20)": (20, np.inf), "weak (5 <= S < 20)": (5, 20),
                "faint (S < 5)": (0, 5), "target (S >= 5)": (5, np.inf)}
    for name, (lo, hi) in by_class.items():
        true = hit = 0
        reported = {"strong": 0, "weak": 0}
        for c in cases:
            strength = c.passage / c.relaxation if len(c.relaxation) else np.zeros(0)
            for k in range(len(c.ghosts)):
                if not lo <= strength[k] < hi:
                    continue
                true += 1
                js = [j for j, m in enumerate(c.matched) if m == k]
                if js:
                    hit += 1
                    reported[str(c.result.strength_class[js[0]])] += 1
        rec = hit / true if true else float("nan")
        print(f"{name:22s} {true:5d} {hit:5d} {rec:7.3f}   {reported['strong']}/{reported['weak']}")
    strength_err = [abs(c.result.strength[j] / (c.passage[m] / c.relaxation[m]) - 1)
                    for c in cases for j, m in enumerate(c.matched) if m >= 0]
    if strength_err:
        print(f"strength error vs truth: median {np.median(strength_err):.1e}, "
              f"max {np.max(strength_err):.1e}")
    seconds = np.array([c.seconds for c in cases])
    print()
    print(f"systems: {len(cases)} ({sum(1 for c in cases if len(c.ghosts))} with a ghost)")
    print(f"precision: {precision:.4f}   recall: {recall:.4f}   (targets: precision >= 0.99, "
          f"recall >= 0.99 on S >= 5)")
    if loc_err:
        print(f"location error / width: median {np.median(loc_err):.1e}, max {np.max(loc_err):.1e}"
              f"  (absolute: max {np.max(abs_loc):.1e})")
        print(f"passage-time error, prediction π√(2/(s c)) vs exact: median "
              f"{np.median(pass_err):.1e}, max {np.max(pass_err):.1e}")
    if dwell_err:
        print(f"passage-time error, simulated dwell vs exact ({len(dwell_err)} passed): median "
              f"{np.median(dwell_err):.1e}, 95% {np.quantile(dwell_err, 0.95):.1e}, "
              f"max {np.max(dwell_err):.1e}")
    for err, text in sorted(worst, reverse=True)[:3]:
        print(f"  largest dwell error {err:.1e}: {text}")
    print(f"time: total {seconds.sum():.1f} s, per system median {np.median(seconds):.2f} s, "
          f"max {seconds.max():.2f} s")
    wrong = [c for c in cases if any(m < 0 for m in c.matched)
             or len({m for m in c.matched if m >= 0}) < len(c.ghosts)]
    for c in wrong:
        print(f"  miss/false: {describe(c)}: {c.result} "
              f"rejected={ {k: v for k, v in c.result.info['rejected'].items() if v} }")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-finder", action="store_true",
                        help="skip find_fixed_points (only the ghost search's own fixed points)")
    parser.add_argument("--quick", action="store_true", help="a quarter of the systems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", metavar="A,B",
                        help="only these families (e.g. saddle_node_w,tanh_map_w,rank_one_w)")
    parser.add_argument("--case", metavar="TEXT", action="append",
                        help="only the systems whose 'family time n=N label' contains TEXT "
                             "(repeatable); prints each one's result")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    cases = build_cases(args.seed, args.quick)
    if args.families:
        cases = [c for c in cases if c.family in args.families.split(",")]
    if args.case:
        cases = [c for c in cases if any(text in describe(c) for text in args.case)]
    print(f"built {len(cases)} systems in {time.perf_counter() - started:.1f} s; "
          f"finder {'off' if args.no_finder else 'on'}")
    run(cases, run_finder=not args.no_finder, verbose=bool(args.case))
    report(cases)


if __name__ == "__main__":
    main()
