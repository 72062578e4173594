"""Limit cycles against closed forms: the Hopf normal form, a rotation map, the logistic map."""
import numpy as np
import pytest
import torch

from fixedpoints import ContinuousDynamics, DiscreteDynamics
from fixedpoints.cycles import (CycleOptions, LimitCycle, find_limit_cycles, refine_flow_cycle,
                                refine_map_cycle)
from fixedpoints.systems import random_orthogonal


def hopf(mu=0.5, omega=2.0, n=100, seed=0, dt=0.01):
    """dr/dt = μr − r³, dθ/dt = ω in the first two coordinates, dy/dt = −y in the rest."""
    Q = torch.as_tensor(random_orthogonal(n, seed))

    def field(x, u):
        y = x @ Q
        a, b = y[:, :1], y[:, 1:2]
        r2 = a * a + b * b
        out = torch.cat([mu * a - omega * b - a * r2, omega * a + mu * b - b * r2, -y[:, 2:]],
                        dim=1)
        return out @ Q.T

    def jac(x, u):  # closed form, Q J_g Qᵀ (autodiff gives the same, slower)
        y = x @ Q
        a, b = y[:, 0], y[:, 1]
        g = -torch.eye(n, dtype=x.dtype).repeat(len(x), 1, 1)
        g[:, 0, 0] = mu - 3 * a * a - b * b
        g[:, 0, 1] = -omega - 2 * a * b
        g[:, 1, 0] = omega - 2 * a * b
        g[:, 1, 1] = mu - a * a - 3 * b * b
        return Q @ g @ Q.T

    dyn = ContinuousDynamics(field, n, dt=dt, jacobian_fn=jac)
    dyn.Q = Q.numpy()
    return dyn


def test_hopf_closed_form_jacobian_matches_autodiff():
    dyn = hopf(n=20)
    x = torch.randn(3, 20, dtype=torch.float64)
    auto = ContinuousDynamics(dyn.fn, 20).jacobian(x)
    assert torch.allclose(dyn.jacobian(x), auto, atol=1e-12)


def rotation_map(k=5, c=0.3, eps=-0.05, n=100, seed=1):
    """Polar map r ← r + c r (1 − r²), θ ← θ + 2π/k + ε sin(kθ); others ← 0.5 y.

    Its period-k orbits on r = 1: θ_j = 2πj/k (multipliers (1 − 2c)^k and (1 + εk)^k) and
    θ_j = π/k + 2πj/k ((1 − 2c)^k and (1 − εk)^k)."""
    Q = torch.as_tensor(random_orthogonal(n, seed))

    def step(x, u):
        y = x @ Q
        a, b = y[:, 0], y[:, 1]
        r = torch.sqrt(a * a + b * b)
        th = torch.atan2(b, a)
        r2 = r + c * r * (1 - r * r)
        th2 = th + 2 * np.pi / k + eps * torch.sin(k * th)
        z = torch.stack([r2 * torch.cos(th2), r2 * torch.sin(th2)], dim=1)
        return torch.cat([z, 0.5 * y[:, 2:]], dim=1) @ Q.T

    dyn = DiscreteDynamics(step, n)
    dyn.Q = Q.numpy()
    return dyn


def test_hopf_normal_form_cycle_in_100_dimensions():
    mu, omega = 0.5, 2.0
    dyn = hopf(mu, omega, dt=0.02)
    x0 = np.random.default_rng(0).normal(0, 0.3, (3, 100))
    opts = CycleOptions(n_transient=400, n_record=250, max_seeds=2)
    found = find_limit_cycles(dyn, x0, opts)
    assert len(found) == 1
    cyc = found[0]
    T = 2 * np.pi / omega
    assert cyc.time == "continuous" and cyc.period == pytest.approx(T, abs=1e-6)
    radius = np.linalg.norm((cyc.points @ dyn.Q)[:, :2], axis=1)
    assert np.abs(radius - np.sqrt(mu)).max() < 1e-6
    mods = np.sort(np.abs(cyc.multipliers))[::-1]
    assert mods[0] == pytest.approx(1.0, abs=1e-6)                    # along the orbit
    assert mods[1] == pytest.approx(np.exp(-2 * mu * T), rel=1e-5)    # radial
    assert np.allclose(mods[2:], np.exp(-T), rtol=1e-5)               # the 98 others
    assert cyc.stable and cyc.n_unstable == 0


def test_unstable_hopf_cycle_refined_from_a_nearby_guess():
    """Subcritical sign (dr/dt = −μr + r³): an unstable cycle of radius √μ that Newton still
    finds from a rough guess."""
    mu, omega, n = 0.1, 2.0, 4
    Q = torch.eye(n, dtype=torch.float64)

    def field(x, u):
        a, b = x[:, :1], x[:, 1:2]
        r2 = a * a + b * b
        return torch.cat([-mu * a - omega * b + a * r2, omega * a - mu * b + b * r2,
                          -x[:, 2:]], dim=1) @ Q
    dyn = ContinuousDynamics(field, n, dt=0.01)
    cyc = refine_flow_cycle(dyn, np.array([0.33, 0.02, 0.01, 0.0]), 3.0)
    assert cyc is not None and not cyc.stable and cyc.n_unstable == 1
    assert cyc.period == pytest.approx(np.pi, abs=1e-6)
    assert np.abs(np.linalg.norm(cyc.points[:, :2], axis=1) - np.sqrt(mu)).max() < 1e-6


def test_rotation_map_period_five_orbit_in_100_dimensions():
    k, c, eps = 5, 0.3, -0.05
    dyn = rotation_map(k, c, eps)
    x0 = np.random.default_rng(1).normal(0, 0.5, (4, 100))
    found = find_limit_cycles(dyn, x0, CycleOptions(n_transient=400, n_record=200))
    assert len(found) == 1
    cyc = found[0]
    assert cyc.time == "discrete" and cyc.period == k and len(cyc.points) == k
    y = cyc.points @ dyn.Q
    assert np.abs(np.linalg.norm(y[:, :2], axis=1) - 1).max() < 1e-10
    phase = np.mod(np.arctan2(y[:, 1], y[:, 0]), 2 * np.pi / k)
    assert np.minimum(phase, 2 * np.pi / k - phase).max() < 1e-10   # θ_j = 2πj/k
    expected = np.sort([(1 + eps * k) ** k, (1 - 2 * c) ** k] + [0.5 ** k] * 98)
    assert np.allclose(np.sort(np.abs(cyc.multipliers)), expected, rtol=1e-8)
    assert cyc.stable
    # the unstable orbit between them, from a guess near θ = π/k
    th = np.pi / k + 0.01
    guess = np.zeros(100)
    guess[:2] = [1.01 * np.cos(th), 1.01 * np.sin(th)]
    other = refine_map_cycle(dyn, guess @ dyn.Q.T, k)
    assert other is not None and not other.stable and other.n_unstable == 1
    assert np.abs(np.abs(other.multipliers).max() - (1 - eps * k) ** k) < 1e-8


def test_logistic_period_two_orbit_closed_form():
    r = 3.2
    dyn = DiscreteDynamics(lambda x, u: r * x * (1 - x), 1)
    found = find_limit_cycles(dyn, np.array([[0.1], [0.3], [0.9]]),
                              CycleOptions(n_transient=500, n_record=200, max_period=8))
    assert len(found) == 1 and found[0].period == 2
    s = np.sqrt((r - 3) * (r + 1))
    expected = np.sort([(r + 1 - s) / (2 * r), (r + 1 + s) / (2 * r)])
    assert np.allclose(np.sort(found[0].points[:, 0]), expected, atol=1e-12)
    assert found[0].multipliers[0].real == pytest.approx(-r * r + 2 * r + 4, abs=1e-10)


def test_logistic_period_four_is_found_and_fixed_point_maps_give_none():
    dyn = DiscreteDynamics(lambda x, u: 3.5 * x * (1 - x), 1)
    found = find_limit_cycles(dyn, np.array([[0.2]]), CycleOptions(n_transient=500,
                                                                   n_record=200, max_period=8))
    assert len(found) == 1 and found[0].period == 4 and found[0].stable
    calm = DiscreteDynamics(lambda x, u: 2.5 * x * (1 - x), 1)
    none = find_limit_cycles(calm, np.array([[0.2]]), CycleOptions(n_transient=500,
                                                                   n_record=200, max_period=8))
    assert len(none) == 0 and none.info["settled"] == 1


def test_options_and_result_validation():
    with pytest.raises(ValueError, match="max_period"):
        CycleOptions(max_period=1)
    with pytest.raises(ValueError, match="n_record"):
        CycleOptions(n_record=10, max_period=8)
    with pytest.raises(ValueError, match="period"):
        LimitCycle(time="discrete", period=0.0, points=np.zeros((1, 1)),
                   multipliers=np.zeros(1), stable=True, residual=0.0)
