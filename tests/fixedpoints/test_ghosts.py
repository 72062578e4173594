"""Ghost detection: embedded normal forms, a rank-one RNN, discrimination, invariance, results.

Ground truth comes from closed forms (the saddle-node normal form, the one-unit tanh map), from an
independent 1-D reduction solved with scipy (the rank-one RNN), and from direct simulation.
"""
import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, fsolve

import fixedpoints as fp
from fixedpoints import systems
from fixedpoints.ghosts import GhostOptions, Ghosts, detect_ghosts


def _states(n, n_samples=256, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal((n_samples, n))


def _detect(dyn, x0, **options):
    options.setdefault("run_finder", False)
    return detect_ghosts(dyn, initial_states=x0, **options)


# ---------------------------------------------------------------------------- reference systems
def _scaled(dyn, factor):
    """The continuous field ``factor · f``: same orbits, time rescaled by 1/factor."""
    return fp.ContinuousDynamics(lambda x, u: factor * dyn.fn(x, u), dyn.n_states)


def _saddle_ghost(n, r, seed=0):
    """dy0/dt = r + y0², dy1/dt = +y1 (one unstable transverse direction), the rest decays."""
    rates = np.concatenate([[-1.0], np.linspace(0.5, 2.0, n - 2)])
    return systems.saddle_node(r, n_states=n, rates=rates, seed=seed)


def _tanh_ghost(b):
    """Closed-form ghost of y <- tanh(2y + b) past the saddle-node: location, s, curvature."""
    t = -math.sqrt(0.5)                 # tanh(2y+b) at the minimum of |h|: 2 (1 - t²) = 1
    y = (math.atanh(t) - b) / 2.0
    s = t - y
    c = -4.0 * t                        # h'' = -2 w² t (1 - t²) with w = 2
    return y, s, c


class RankOne:
    """x <- (1-α) x + α tanh(m κ + b), κ = n·x, with a ghost just past a saddle-node in κ."""

    def __init__(self, N=100, alpha=0.5, delta=1e-3, seed=40, time="discrete", coupling=2.5):
        rng = np.random.default_rng(seed)
        m0 = rng.normal(0, 1 / np.sqrt(N), N)
        n = rng.normal(0, 1 / np.sqrt(N), N)
        self.m = m0 + coupling * n / np.dot(n, n)  # enough overlap (> 1) for bistability
        self.n = n
        self.bdir = rng.normal(0, 1, N)
        self.alpha = alpha
        k_c, beta_c = fsolve(lambda z: [self.h(z[0], z[1]), self.dh(z[0], z[1])], (1.0, 0.3))
        assert abs(self.h(k_c, beta_c)) < 1e-10
        self.beta = beta_c + delta
        # 1-D reduced flow, solved independently: the ghost is where h' = 0 near κ_c
        for half in (0.5, 1.0, 2.0):  # widening brackets: far past the fold h' = 0 moves away
            lo, hi = k_c - half, k_c + half
            if self.dh(lo, self.beta) * self.dh(hi, self.beta) < 0 or half == 2.0:
                self.kappa = brentq(lambda k: self.dh(k, self.beta), lo, hi, xtol=1e-14)
                break
        self.h_g = self.h(self.kappa, self.beta)
        eps = 1e-5
        self.h2 = (self.dh(self.kappa + eps, self.beta) - self.dh(self.kappa - eps, self.beta)) \
            / (2 * eps)
        mt, nt = torch.as_tensor(self.m), torch.as_tensor(n)
        bt = torch.as_tensor(self.beta * self.bdir)
        if time == "discrete":
            self.dynamics = fp.DiscreteDynamics(
                lambda x, u: (1 - alpha) * x + alpha * torch.tanh((x @ nt)[:, None] * mt + bt), N)
        else:
            self.dynamics = fp.ContinuousDynamics(
                lambda x, u: -x + torch.tanh((x @ nt)[:, None] * mt + bt), N)
        self.rate = alpha if time == "discrete" else 1.0

    def h(self, k, beta):
        return -k + self.n @ np.tanh(self.m * k + beta * self.bdir)

    def dh(self, k, beta):
        return -1 + self.n @ ((1 - np.tanh(self.m * k + beta * self.bdir) ** 2) * self.m)


# ---------------------------------------------------------------------------- normal forms
@pytest.mark.parametrize("time", ["continuous", "discrete"])
def test_embedded_saddle_node_normal_form(time):
    n, r, dt = 50, 1e-4, 0.1
    dyn = systems.saddle_node(r, n_states=n, time=time, seed=3)
    ghosts = _detect(dyn, _states(n))
    assert len(ghosts) == 1
    g = ghosts[0]
    unit = 1.0 if time == "continuous" else dt      # the map's velocity is dt · f
    assert np.linalg.norm(g.x[0]) < 1e-8             # the ghost of r + y0² sits at y = 0
    assert g.velocity_norm[0] == pytest.approx(unit * r, rel=1e-8)
    assert g.speed[0] == pytest.approx(0.5 * (unit * r) ** 2, rel=1e-8)
    assert g.curvature[0] == pytest.approx(2.0 * unit, rel=1e-6)
    assert abs(g.slow_direction[0] @ dyn.Q[:, 0]) == pytest.approx(1.0, abs=1e-10)
    assert g.slow_direction[0] @ dyn.Q[:, 0] > 0    # oriented along the flow (+y0)
    expected = math.pi / math.sqrt(r) / unit        # time units, or map steps
    assert g.passage_time[0] == pytest.approx(expected, rel=1e-6)
    assert g.dwell_time[0] == pytest.approx(expected, rel=0.05)
    assert g.passed[0]
    # transverse spectrum: the decay rates of the extra coordinates, attracting
    rates = np.linspace(0.5, 2.0, n - 1)
    native = -rates if time == "continuous" else 1 - dt * rates
    np.testing.assert_allclose(np.sort(g.transverse_eigvals[0].real), np.sort(native), atol=1e-9)
    assert g.n_unstable[0] == 0 and g.kind[0] == "attracting"
    assert g.isolation[0] == pytest.approx(1.0, abs=1e-3)
    assert g.alignment[0] == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("r", [1e-6, 1e-4, 1e-2])
def test_passage_time_over_four_decades_continuous(r):
    dyn = systems.saddle_node(r, n_states=10, time="continuous", seed=1)
    ghosts = _detect(dyn, _states(10))
    assert len(ghosts) == 1
    assert ghosts.passage_time[0] == pytest.approx(math.pi / math.sqrt(r), rel=1e-6)
    assert ghosts.dwell_time[0] == pytest.approx(ghosts.passage_time[0], rel=0.05)


@pytest.mark.parametrize("n, delta", [(1, 1e-3), (200, 1e-5)])
def test_tanh_map_ghost_in_high_dimension(n, delta):
    b = systems.tanh_saddle_node_b(2.0) + delta
    dyn = systems.tanh_map(2.0, b, n_states=n, seed=5)
    y, s, c = _tanh_ghost(b)
    x0 = np.random.default_rng(1).uniform(-1, 1, (128, n)) @ dyn.Q.T
    ghosts = _detect(dyn, x0)
    assert len(ghosts) == 1
    g = ghosts[0]
    assert np.linalg.norm(g.x[0] - y * dyn.Q[:, 0]) < 1e-7
    assert g.velocity_norm[0] == pytest.approx(s, rel=1e-7)
    assert g.curvature[0] == pytest.approx(c, rel=1e-6)
    predicted = math.pi * math.sqrt(2 / (s * c))     # map steps
    assert g.passage_time[0] == pytest.approx(predicted, rel=1e-6)
    assert g.dwell_time[0] == pytest.approx(predicted, rel=0.05)
    assert g.kind[0] == "attracting"
    if n > 1:  # the extra coordinates contract by 0.5 per step
        np.testing.assert_allclose(np.abs(g.transverse_eigvals[0]), 0.5, atol=1e-9)


def test_saddle_like_ghost_reports_its_index():
    dyn = _saddle_ghost(12, 1e-4)
    ghosts = _detect(dyn, _states(12))
    assert len(ghosts) == 1
    assert ghosts.n_unstable[0] == 1 and ghosts.kind[0] == "saddle"
    assert ghosts.counts() == {"attracting": 0, "saddle": 1, "repelling": 0}
    assert np.sort(ghosts.transverse_eigvals[0].real)[-1] == pytest.approx(1.0, abs=1e-9)
    assert ghosts.passage_time[0] == pytest.approx(math.pi / 1e-2, rel=1e-6)


# ---------------------------------------------------------------------------- rank-one RNN
def test_rank_one_rnn_matches_exact_1d_reduction():
    model = RankOne(N=100, delta=1e-3)
    dyn = model.dynamics
    x0 = fp.sample_initial_states(dyn, 256, n_steps=50, noise=0.1, seed=0)
    ghosts = _detect(dyn, x0)
    assert len(ghosts) == 1
    g = ghosts[0]
    n_norm = np.linalg.norm(model.n)
    # location: κ = n·x at the minimum of |dκ/dt| of the 1-D flow
    assert model.n @ g.x[0] == pytest.approx(model.kappa, abs=1e-7)
    # minimal speed: v = α h(κ_g) n/|n|², so |v| = α |h(κ_g)| / |n|
    assert g.velocity_norm[0] == pytest.approx(model.alpha * abs(model.h_g) / n_norm, rel=1e-7)
    # non-normal: the flow (along n) is not the slow direction (along D m)
    assert 0.1 < g.alignment[0] < 0.99
    # passage through the 1-D map κ <- κ + α h(κ): π √(2 / (α² h_g h''))
    predicted = math.pi * math.sqrt(2 / (model.alpha ** 2 * abs(model.h_g) * abs(model.h2)))
    assert g.passage_time[0] == pytest.approx(predicted, rel=1e-5)
    assert g.dwell_time[0] == pytest.approx(predicted, rel=0.05)
    assert g.kind[0] == "attracting"


def test_rank_one_rnn_before_the_bifurcation_has_no_ghost():
    model = RankOne(N=100, delta=-1e-3)
    x0 = fp.sample_initial_states(model.dynamics, 256, n_steps=50, noise=0.1, seed=0)
    assert len(_detect(model.dynamics, x0)) == 0


# ---------------------------------------------------------------------------- discrimination
@pytest.mark.parametrize("time", ["continuous", "discrete"])
def test_no_ghost_with_true_fixed_points_only(time):
    # just before the saddle-node: the node-saddle pair still exists
    dyn = systems.saddle_node(-1e-4, n_states=20, time=time, seed=2)
    ghosts = _detect(dyn, _states(20))
    assert len(ghosts) == 0
    assert ghosts.info["rejected"]["fixed_point"] > 0
    rng = np.random.default_rng(0)
    A = -np.eye(5) + 0.3 * rng.standard_normal((5, 5)) if time == "continuous" else \
        0.5 * np.eye(5) + 0.1 * rng.standard_normal((5, 5))
    assert len(_detect(systems.linear(A, time), _states(5))) == 0


def test_no_ghost_in_flipflop_or_bistable_tanh_map():
    dyn = systems.rotated_flipflop(16, seed=0)
    assert len(_detect(dyn, np.random.default_rng(0).uniform(-1, 1, (256, 16)))) == 0
    dyn = systems.tanh_map(2.0, 0.40, n_states=10)
    assert len(_detect(dyn, np.random.default_rng(0).uniform(-1, 1, (256, 10)))) == 0


@pytest.mark.parametrize("time", ["continuous", "discrete"])
def test_no_ghost_on_line_attractor_or_slow_manifold(time):
    x0 = _states(20)
    line = _detect(systems.line_attractor(20, time, seed=1), x0)
    assert len(line) == 0 and line.info["rejected"]["fixed_point"] > 0
    # a flat valley of q: constant drift along a line (every point of it is a minimum of q)
    drift = _detect(systems.drift_manifold(1e-3, 20, time), x0)
    assert len(drift) == 0
    rejected = drift.info["rejected"]
    assert rejected["not_bottleneck"] + rejected["flat"] + rejected["not_minimum"] > 0
    # a drift modulated by ±10% has isolated minima of q, but the speed never rises far above s
    corrugated = _detect(systems.drift_manifold(1e-3, 20, time, corrugation=0.1), x0)
    assert len(corrugated) == 0 and corrugated.info["rejected"]["shallow"] > 0


def test_no_ghost_from_points_along_a_fast_trajectory():
    dyn = systems.linear(-np.eye(5) + 0.5 * np.diag(np.ones(4), 1), "continuous")
    trajectory = dyn.simulate(3 * np.ones((1, 5)), 30, dt=0.1)[0].numpy()
    assert len(_detect(dyn, trajectory)) == 0


def test_known_fixed_point_inside_the_clearance_vetoes_the_ghost_and_cuts_its_window():
    n, r = 5, 1e-4
    dyn = systems.saddle_node(r, n_states=n, time="continuous", seed=0)
    x0 = _states(n)
    alone = _detect(dyn, x0)
    assert len(alone) == 1 and alone.contrast[0] == pytest.approx(101.0, rel=1e-6)
    # pretend a fixed point lies 1.5 widths (√r) from the ghost, inside its clearance of 2
    fake = FakeFixedPoints(np.full((1, n), 1.5 * math.sqrt(r) / math.sqrt(n)), x0)
    vetoed = detect_ghosts(dyn, fixed_points=fake, initial_states=x0)
    assert len(vetoed) == 0 and vetoed.info["rejected"]["near_fixed_point"] == 1
    # 3 widths away: a weak ghost's node downstream; the window is cut to half that distance,
    # where the normal form's speed has risen to 1 + 1.5² = 3.25 times s
    near = detect_ghosts(dyn, fixed_points=FakeFixedPoints(
        np.full((1, n), 3 * math.sqrt(r) / math.sqrt(n)), x0), initial_states=x0)
    assert len(near) == 1
    assert near.contrast[0] == pytest.approx(3.25, rel=1e-6)
    assert near.dwell_time[0] == pytest.approx(math.pi / math.sqrt(r), rel=0.05)
    far = FakeFixedPoints(np.full((1, n), 30 * math.sqrt(r) / math.sqrt(n)), x0)
    kept = detect_ghosts(dyn, fixed_points=far, initial_states=x0)
    assert len(kept) == 1
    assert kept.fixed_point_distance[0] == pytest.approx(30 * math.sqrt(r), rel=1e-6)


def FakeFixedPoints(x, x0):
    centred = x0 - x0.mean(0)
    return fp.FixedPoints(x=x, speed=np.zeros(len(x)), eigvals=-np.ones(x.shape, complex),
                          kind=np.array(["stable"] * len(x)), n_unstable=np.zeros(len(x), int),
                          time="continuous", q_fixed=1e-20,
                          scale=float(np.sqrt((centred ** 2).sum(1).mean())))


# ---------------------------------------------------------------------------- invariance
@pytest.mark.parametrize("factor", [10.0, 0.1])
def test_scaling_a_continuous_field_changes_no_verdict(factor):
    n = 6
    x0 = _states(n, n_samples=128)
    systems_ = {
        "ghost": systems.saddle_node(1e-4, n_states=n, time="continuous", seed=1),
        "fixed": systems.saddle_node(-1e-4, n_states=n, time="continuous", seed=1),
        "valley": systems.drift_manifold(1e-3, n),
        "broad": systems.drift_manifold(1e-3, n, corrugation=0.1),
        "narrow": systems.drift_manifold(1e-2, n, corrugation=0.9),
    }
    for name, dyn in systems_.items():
        base = _detect(dyn, x0)
        scaled = _detect(_scaled(dyn, factor), x0)
        assert len(scaled) == len(base), name
        assert scaled.info["rejected"] == base.info["rejected"], name
        if len(base):
            np.testing.assert_allclose(scaled.x, base.x, atol=1e-9)
            np.testing.assert_allclose(scaled.width, base.width, rtol=1e-6)
            np.testing.assert_allclose(scaled.passage_time, base.passage_time / factor, rtol=1e-6)
            np.testing.assert_allclose(scaled.dwell_time, base.dwell_time / factor, rtol=1e-3)
    assert len(_detect(systems_["ghost"], x0)) == 1
    assert len(_detect(systems_["narrow"], x0)) >= 1


def test_with_the_finder_and_its_result():
    b = systems.tanh_saddle_node_b(2.0) + 1e-3
    dyn = systems.tanh_map(2.0, b, n_states=10, seed=2)
    x0 = np.random.default_rng(3).uniform(-1, 1, (128, 10)) @ dyn.Q.T
    ghosts = detect_ghosts(dyn, initial_states=x0)            # runs find_fixed_points first
    assert len(ghosts) == 1
    result = fp.find_fixed_points(dyn, x0)
    again = detect_ghosts(dyn, fixed_points=result, initial_states=x0)
    np.testing.assert_allclose(again.x, ghosts.x, atol=1e-9)
    # the finder's slow points alone are candidates too
    alone = detect_ghosts(dyn, fixed_points=result)
    np.testing.assert_allclose(alone.x, ghosts.x, atol=1e-9)
    # the only true fixed point (the far stable node) is known and far away
    assert np.isfinite(ghosts.fixed_point_distance[0])
    assert ghosts.fixed_point_distance[0] > 10 * ghosts.width[0]


# ---------------------------------------------------------------------------- result object
def test_ghosts_result_container_and_round_trip(tmp_path):
    dyn = _saddle_ghost(6, 1e-3, seed=4)
    x0 = _states(6)
    ghosts = _detect(dyn, x0)
    both = detect_ghosts(systems.saddle_node(1e-3, n_states=6, seed=4), initial_states=x0,
                         run_finder=False)
    assert len(ghosts) == 1 and len(both) == 1
    assert isinstance(ghosts[0], Ghosts) and len(ghosts[0]) == 1
    assert len(ghosts[np.array([False])]) == 0
    assert ghosts.index_counts() == {1: 1}
    assert "saddle=1" in repr(ghosts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ghosts.x = None  # frozen
    stem = ghosts.save(tmp_path / "g")
    loaded = Ghosts.load(stem)
    for name in Ghosts._ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(ghosts, name))
    assert loaded.time == ghosts.time and loaded.scale == ghosts.scale
    text = json.dumps(ghosts.to_dict())
    assert json.loads(text)["counts"]["saddle"] == 1
    empty = Ghosts.empty(4, "continuous")
    assert len(empty) == 0 and empty.transverse_eigvals.shape == (0, 3)


# ---------------------------------------------------------------------------- errors
def test_bad_input_raises_clear_errors():
    dyn = systems.saddle_node(1e-4, n_states=3)
    with pytest.raises(ValueError, match="fixed_points .* or .*initial_states"):
        detect_ghosts(dyn)
    with pytest.raises(ValueError, match="unknown option"):
        detect_ghosts(dyn, initial_states=_states(3), windw=3)
    with pytest.raises(ValueError, match="min_contrast"):
        GhostOptions(min_contrast=-1)
    with pytest.raises(ValueError, match="shape"):
        detect_ghosts(dyn, initial_states=_states(4))
    with pytest.raises(ValueError, match="non-finite"):
        detect_ghosts(dyn, initial_states=np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="Dynamics"):
        detect_ghosts(lambda x: x, initial_states=_states(3))


def test_flow_curvature_closed_form_equals_the_directional_double_backward():
    """c_u = eᵀ(Σ u_k ∇²v_k)e: the GRU's closed form and the two-pass autograd fallback agree."""
    from fixedpoints.ghosts import _flow_curvature

    dyn = fp.from_module(torch.nn.GRU(3, 8), input=[0.1, 0.2, -0.3])
    gen = torch.Generator().manual_seed(0)
    x, u, e = (torch.randn(5, 8, dtype=torch.float64, generator=gen) for _ in range(3))
    exact = _flow_curvature(dyn, x, u, e)
    fallback = _flow_curvature(dyn._replace(curvature_fn=None), x, u, e)
    assert float(exact.abs().max()) > 0.1
    torch.testing.assert_close(exact, fallback, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------------------- strength (issue 18)
@pytest.mark.parametrize("time", ["continuous", "discrete"])
def test_toy_model_ghost_reported_wherever_it_holds_five_relaxation_times(time):
    # SCIENCE.md's toy model dx/dt = x² + r (discrete: its Euler map, dt = 0.1). One dimension:
    # the relaxation time is 1/σ, σ the RMS of |J_v| = |2x| (map: dt·|2x|) over the states.
    dt = 0.1
    x0 = np.linspace(-1.0, 1.0, 32)[:, None]      # ≤ 32 states: σ is taken over all of them
    unit = 1.0 if time == "continuous" else dt
    sigma = unit * np.sqrt(np.mean((2 * x0[:, 0]) ** 2))
    r_max = (math.pi * sigma / (5.0 * unit)) ** 2          # where S = π/(√r·unit) · σ = 5
    strengths = []
    for r in np.geomspace(1e-6, r_max, 7):
        dyn = systems.saddle_node(float(r), n_states=1, time=time, dt=dt)
        ghosts = _detect(dyn, x0)
        expected = (math.pi / math.sqrt(r) / unit) * sigma     # passage / relaxation time
        assert len(ghosts) == 1, (r, ghosts.info["rejected"])
        assert abs(ghosts.x[0, 0]) < 1e-8
        assert ghosts.strength[0] == pytest.approx(expected, rel=1e-6)
        assert ghosts.relaxation_time[0] == pytest.approx(1 / sigma, rel=1e-9)
        assert ghosts.strength_class[0] == ("strong" if expected >= 20 else "weak")
        strengths.append(float(ghosts.strength[0]))
    assert strengths[-1] == pytest.approx(5.0, rel=1e-6)
    assert np.all(np.diff(strengths) < 0)                     # falls as r grows
    # users filter by strength: above the ghost's own strength it is dropped, and counted
    weak = _detect(systems.saddle_node(float(r_max), n_states=1, time=time, dt=dt), x0,
                   min_strength=6.0)
    assert len(weak) == 0 and weak.info["rejected"]["too_weak"] == 1


def _is_bottleneck(model):
    """Whether the exact 1-D flow speeds up to 2|h_g| on both sides of κ_g before any root of h
    and before |h| falls below |h_g| again (the detector's speed doubling, ``min_contrast = 2``).
    Far past the fold the minimum of |h| turns into a shoulder on the way into the node and then
    disappears (h' loses its root): there is no bottleneck left to report."""
    width = math.sqrt(2 * abs(model.h_g) / abs(model.h2))
    for side in (-1.0, 1.0):
        for z in np.linspace(0.02, 50.0, 2500) * width:
            h = model.h(model.kappa + side * z, model.beta)
            if h * model.h_g <= 0 or abs(h) < abs(model.h_g):
                return False
            if abs(h) >= 2 * abs(model.h_g):
                break
    return True


def _rank_one(delta, time, coupling, seed):
    """The RankOne network at δ, or None where the 1-D flow has no bottleneck there."""
    try:
        model = RankOne(N=100, delta=float(delta), seed=seed, time=time, coupling=coupling)
    except ValueError:  # no extremum of h within the bracket this far past the fold
        return None
    if model.h_g * model.h2 <= 0 or not _is_bottleneck(model):
        return None
    return model


def _rank_one_scan(time, coupling=4.0, seed=40, points=6):
    """Rank-one RNNs of SCIENCE.md past their fold over the WHOLE range of δ = β − β_c where the
    exact 1-D flow has a bottleneck: ``points`` values log-spaced from 1e-3 to 0.97 δ_end, with
    δ_end (where the speed minimum stops being a bottleneck) found by bisection. The strength
    from the exact 1-D reduction: passage π√(2/(rate² |h_g| |h''|)), relaxation 1/rate (every
    direction but κ decays at the leak rate)."""
    lo, hi = 1e-3, 1e-3
    while _rank_one(hi, time, coupling, seed) is not None and hi < 10:
        lo, hi = hi, 2 * hi
    for _ in range(30):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _rank_one(mid, time, coupling, seed) is not None else (lo, mid)
    out = []
    for delta in np.geomspace(1e-3, 0.97 * lo, points):
        model = _rank_one(delta, time, coupling, seed)
        assert model is not None, delta   # the bottleneck range is one interval here
        passage = math.pi * math.sqrt(2 / (model.rate ** 2 * abs(model.h_g) * abs(model.h2)))
        out.append((float(delta), model, passage * model.rate))
    return out, lo


@pytest.mark.parametrize("time, seed", [("discrete", 40), ("continuous", 40), ("discrete", 49)])
def test_rank_one_rnn_ghost_reported_over_the_whole_range_with_falling_strength(time, seed):
    # seed 40: strong to weak (S from 429 at δ = 1e-3 to 16 where the bottleneck ends, δ ≈ 1.11);
    # seed 49: down to S ≈ 7, a weak ghost; both beyond 5 relaxation times over the whole range
    scan, end = _rank_one_scan(time, seed=seed)
    # where the 1-D speed minimum stops being a bottleneck (bisected on the exact latent flow)
    assert end == pytest.approx({40: 1.106, 49: 0.621}[seed], rel=1e-2)
    strengths = []
    for delta, model, expected in scan:
        assert expected >= 5
        x0 = fp.sample_initial_states(model.dynamics, 128, n_steps=50, noise=0.1, seed=0,
                                      init_scale=3.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ghosts = detect_ghosts(model.dynamics, initial_states=x0)
        near = [j for j in range(len(ghosts)) if abs(model.n @ ghosts.x[j] - model.kappa) < 1e-6]
        assert len(near) == 1, (delta, ghosts, ghosts.info["rejected"])
        j = near[0]
        assert ghosts.strength[j] == pytest.approx(expected, rel=1e-4)
        assert ghosts.relaxation_time[j] == pytest.approx(1 / model.rate, rel=1e-6)
        assert ghosts.strength_class[j] == ("strong" if expected >= 20 else "weak")
        strengths.append(float(ghosts.strength[j]))
    assert strengths[-1] < 20 <= strengths[0]       # weak ones included
    assert np.all(np.diff(strengths) < 0)           # falling as δ grows


# ---------------------------------------------------------------------------- the search (issue 18)
def _rank_one_location(model):
    """The minimum of q in state space: tanh(m κ_g + b) − h_g n/|n|² (v = rate·h n/|n|² there)."""
    phi = np.tanh(model.m * model.kappa + model.beta * model.bdir)
    return phi - model.h_g / np.dot(model.n, model.n) * model.n


def test_newton_reaches_a_very_slow_ghost_where_q_is_flat_to_round_off():
    # δ = 2e-5 past the fold: s ≈ 5e-5, and 3.5e-9 from the minimum q differs from its minimum
    # by a relative 1e-12, below what float64 resolves of ½‖v‖². The search must still reach
    # ∇q = 0 there (it stopped at 1e-7 widths, unconverged, when only q-decreasing steps counted)
    from fixedpoints.ghosts import _newton_search, _reduced_form
    model = RankOne(N=100, delta=2e-5, seed=40, time="continuous", coupling=2.5)
    dyn = model.dynamics
    truth = torch.as_tensor(_rank_one_location(model))[None]
    red = _reduced_form(dyn, truth, 1.0, GhostOptions())
    width = float(torch.sqrt(2 * red["s"] / red["c_u"]))
    start = truth + 3.5e-9 * red["e"]
    opts = GhostOptions()
    x, q, converged, on_wall, _, _ = _newton_search(dyn, start, truth - 10, truth + 10, 1.0, opts)
    assert bool(converged[0]) and not bool(on_wall[0])
    assert _reduced_form(dyn, x, 1.0, opts)["grad_cos"][0] <= opts.grad_rtol
    assert float((x - truth).norm()) < 1e-10 * width


def test_a_ghost_beyond_the_states_box_is_reached_by_widening_it():
    # dy0/dt = 1e-3 + y0², unrotated; the states have y0 in [1.5, 3.5]: the first box (margin
    # half its width) ends at y0 = 0.5, short of the ghost at 0
    dyn = systems.saddle_node(1e-3, n_states=3, seed=None)
    rng = np.random.default_rng(0)
    x0 = np.c_[rng.uniform(1.5, 3.5, 128), rng.uniform(-1, 1, (128, 2))]
    ghosts = _detect(dyn, x0)
    assert len(ghosts) == 1 and np.linalg.norm(ghosts.x[0]) < 1e-8
    assert ghosts.info["box_widenings"] >= 1
    strict = _detect(dyn, x0, box_margin=0.0)         # no margin, no widening: on the wall
    assert len(strict) == 0 and strict.info["rejected"]["outside_box"] >= 1


def test_starts_include_the_slow_cluster_at_a_ghost_not_only_the_attractor():
    # 300 states at a stable node, 10 in a slow stretch elsewhere: the 32 slowest states all sit
    # at the node, so the start choice must take each slow cluster's local minimum
    from fixedpoints.ghosts import _choose_starts

    def flow(x, u):
        y = x[:, :1]
        return torch.cat([torch.where(y < 2.5, -(y - 4.0), 1e-2 + (y - 1.0) ** 2), -x[:, 1:]], 1)

    dyn = fp.ContinuousDynamics(flow, 3)
    rng = np.random.default_rng(0)
    node = np.c_[4.0 + 0.01 * rng.standard_normal(300), 0.01 * rng.standard_normal((300, 2))]
    slow = np.c_[1.0 + 0.02 * rng.standard_normal(10), 0.02 * rng.standard_normal((10, 2))]
    states = np.concatenate([node, slow])
    chosen = _choose_starts(dyn, dyn.states(states), GhostOptions(max_starts=16))
    assert len(chosen) == 16
    assert np.any(np.abs(chosen[:, 0] - 1.0) < 0.1)     # a start in the slow stretch
    again = _choose_starts(dyn, dyn.states(states), GhostOptions(max_starts=16, seed=7))
    np.testing.assert_array_equal(chosen, again)         # no random number drawn


def _seed_cases():
    """Weak ghosts (0.05-0.3 past the fold) and the rank-one RNN, with their truth."""
    b_c = systems.tanh_saddle_node_b(2.0)
    cases = []
    for time, n, r in (("continuous", 10, 0.2), ("discrete", 50, 0.1)):
        dyn = systems.saddle_node(r, n_states=n, time=time, dt=0.5, seed=3)
        cases.append((f"saddle_node {time} r={r}", dyn, np.zeros(n),
                      lambda s, n=n: np.random.default_rng(s).standard_normal((256, n))))
    dyn = systems.tanh_map(2.0, b_c + 0.15, n_states=10, seed=5)
    y = _tanh_ghost(b_c + 0.15)[0]
    cases.append(("tanh_map 0.15", dyn, y * dyn.Q[:, 0],
                  lambda s, dyn=dyn: np.random.default_rng(s).uniform(-1, 1, (256, 10)) @ dyn.Q.T))
    model = RankOne(N=100, delta=1.0, seed=40, time="discrete", coupling=4.0)   # S = 16
    cases.append(("rank_one 1.0", model.dynamics, _rank_one_location(model),
                  lambda s, dyn=model.dynamics: fp.sample_initial_states(
                      dyn, 128, n_steps=50, noise=0.1, seed=s, init_scale=3.0)))
    return cases


def _same_ghosts_for_every_seed(name, dyn, truth, states, seeds=range(5)):
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ghosts = detect_ghosts(dyn, initial_states=states(seed), seed=seed)
        assert len(ghosts) == 1, (name, seed, ghosts.info["rejected"])
        assert np.linalg.norm(ghosts.x[0] - truth) < 1e-6 * ghosts.width[0], (name, seed)


@pytest.mark.parametrize("case", range(4))
def test_weak_ghosts_are_found_the_same_for_five_seeds(case):
    _same_ghosts_for_every_seed(*_seed_cases()[case])


@pytest.mark.slow
@pytest.mark.parametrize("time", ["discrete", "continuous"])
def test_rank_one_fold_series_gives_the_same_ghost_for_five_seeds(time):
    for delta, model, _ in _rank_one_scan(time)[0]:
        _same_ghosts_for_every_seed(f"rank_one {time} {delta:.3g}", model.dynamics,
                                    _rank_one_location(model),
                                    lambda s, dyn=model.dynamics: fp.sample_initial_states(
                                        dyn, 128, n_steps=50, noise=0.1, seed=s,
                                        init_scale=3.0))


def test_a_low_rank_network_yields_its_ghost_from_the_latent_whatever_the_states():
    # the built-in RankOneRNN (it has low_rank_form) at δ = 0.3 past its fold, probed only with
    # states at its stable node: no state is near the ghost, the latent grid's minima are
    from checkpoints.models import RankOneRNN
    from fixedpoints.ghosts import _low_rank_seeds

    ref = RankOne(N=100, delta=0.3, seed=40, time="discrete", coupling=4.0)
    model = RankOneRNN(n_states=100).double()
    with torch.no_grad():
        model.m.copy_(torch.as_tensor(ref.m))
        model.n.copy_(torch.as_tensor(ref.n))
        model.b.copy_(torch.as_tensor(ref.beta * ref.bdir))
    dyn = fp.from_module(model, time="discrete")
    truth = _rank_one_location(ref)
    seeds = _low_rank_seeds(dyn, 16)
    assert np.min(np.linalg.norm(seeds - truth, axis=1)) < 1e-9   # a seed IS the ghost
    ends = dyn.simulate(fp.sample_initial_states(dyn, 64, seed=0), 400)[:, -1].numpy()
    x0 = ends + 1e-3 * np.random.default_rng(0).standard_normal(ends.shape)
    assert np.min(np.linalg.norm(x0 - truth, axis=1)) > 1.0         # far from every state
    ghosts = detect_ghosts(dyn, initial_states=x0)
    assert len(ghosts) == 1 and np.linalg.norm(ghosts.x[0] - truth) < 1e-9
    plain = fp.DiscreteDynamics(lambda x, u: model.step(x), 100)    # the same map, no form
    assert len(_low_rank_seeds(plain, 16)) == 0
