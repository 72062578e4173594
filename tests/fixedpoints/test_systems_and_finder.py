"""The finder against closed-form answers: linear systems, the saddle-node normal form, the tanh
map around its saddle-node, and the rotated flip-flop map (27 fixed points)."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import fixedpoints as fp
from fixedpoints import systems


def two_way_match(found, truth, tol):
    """Every point found is real and every real point is found (within tol)."""
    d = cdist(found, truth)
    return d.min(axis=1).max() <= tol and d.min(axis=0).max() <= tol


@pytest.mark.parametrize("time", ["continuous", "discrete"])
def test_linear_system_has_only_its_fixed_point_with_the_eigenvalues_of_A(time):
    rng = np.random.default_rng(0)
    Q = systems.random_orthogonal(6, seed=3)
    eig = np.array([-0.5, -1.0, -2.0, 0.7, -0.3, -1.5]) if time == "continuous" else \
        np.array([0.5, 0.2, -0.6, 1.4, 0.9, 0.1])
    A = Q @ np.diag(eig) @ Q.T
    b = rng.standard_normal(6)
    dyn = systems.linear(A, time=time, b=b)
    x_star = np.linalg.solve(-A, b) if time == "continuous" else np.linalg.solve(np.eye(6) - A, b)
    x0 = x_star + rng.standard_normal((64, 6))
    res = fp.find_fixed_points(dyn, x0)
    assert len(res) == 1
    np.testing.assert_allclose(res.x[0], x_star, atol=1e-10)
    np.testing.assert_allclose(np.sort(res.eigvals[0].real), np.sort(eig), atol=1e-10)
    assert res.kind[0] == "saddle" and res.n_unstable[0] == 1
    assert res.speed[0] <= 1e-20


@pytest.mark.parametrize("time", ["continuous", "discrete"])
@pytest.mark.parametrize("n_states", [1, 20])
def test_saddle_node_below_bifurcation_gives_two_fixed_points(time, n_states):
    r = -0.04
    dyn = systems.saddle_node(r, n_states=n_states, time=time, seed=5)
    rng = np.random.default_rng(1)
    y0 = rng.uniform(-0.6, 0.6, size=(256, n_states))
    res = fp.find_fixed_points(dyn, y0 @ dyn.Q.T)
    truth = np.zeros((2, n_states))
    truth[:, 0] = [-0.2, 0.2]
    truth = truth @ dyn.Q.T
    fixed = res.of_kind("stable", "saddle", "unstable")
    assert len(fixed) == 2
    assert two_way_match(fixed.x, truth, 1e-8)
    stable = fixed.x[fixed.kind == "stable"][0] @ dyn.Q
    assert stable[0] == pytest.approx(-0.2, abs=1e-8)
    # eigenvalue along the slow direction: ±2√|r| (discrete Euler map: 1 ± dt·2√|r|)
    lam = np.sort(np.real(fixed.eigvals[:, 0]))
    expect = (np.array([2 * 0.2, 2 * 0.2]) if time == "continuous"
              else 1 + 0.1 * np.array([0.4, 0.4]))
    assert lam.max() == pytest.approx(expect.max(), abs=1e-8)


def test_saddle_node_above_bifurcation_has_a_slow_point_with_speed_r():
    r = 0.01
    dyn = systems.saddle_node(r, n_states=1, time="continuous")
    res = fp.find_fixed_points(dyn, np.linspace(-0.5, 0.5, 64)[:, None], slow_tol=1e-1)
    assert res.counts()["stable"] + res.counts()["saddle"] + res.counts()["unstable"] == 0
    slow = res.of_kind("slow")
    assert len(slow) == 1
    assert slow.x[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert np.sqrt(2 * slow.speed[0]) == pytest.approx(r, rel=1e-6)  # minimal |v| = r
    assert abs(slow.eigvals[0, 0]) < 1e-6  # J_v singular at any minimum of q with q > 0


def test_tanh_map_three_fixed_points_below_and_one_above_the_saddle_node():
    b_c = systems.tanh_saddle_node_b(2.0)
    assert b_c == pytest.approx(0.5328, abs=1e-4)
    x0 = np.linspace(-1, 1, 128)[:, None]
    below = fp.find_fixed_points(systems.tanh_map(2.0, 0.40), x0)
    truth = systems.tanh_map_fixed_points(2.0, 0.40)
    fixed = below.of_kind("stable", "saddle", "unstable")
    assert len(truth) == 3 and len(fixed) == 3
    assert two_way_match(fixed.x, truth[:, None], 1e-10)
    assert sorted(fixed.kind.tolist()) == ["stable", "stable", "unstable"]
    above = fp.find_fixed_points(systems.tanh_map(2.0, 0.55), x0, slow_tol=1e-1)
    fixed = above.of_kind("stable", "saddle", "unstable")
    assert len(fixed) == 1 and fixed.kind[0] == "stable"
    slow = above.of_kind("slow")
    assert len(slow) == 1 and slow.x[0, 0] == pytest.approx(-0.716, abs=5e-3)
    # discrete time: the map's Jacobian has an eigenvalue exactly 1 at the slow point
    assert abs(slow.eigvals[0, 0]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("n_states", [64, 256])
def test_rotated_flipflop_all_27_fixed_points_from_1024_initial_states(n_states):
    dyn = systems.rotated_flipflop(n_states, seed=2)
    x0 = fp.sample_initial_states(dyn, 1024, noise=0.5, n_steps=20, seed=0)
    res = fp.find_fixed_points(dyn, x0)
    truth = systems.flipflop_fixed_points(dyn)
    assert len(res) == 27
    assert res.counts() == {"stable": 8, "saddle": 19, "unstable": 0, "slow": 0}
    assert res.index_counts() == {0: 8, 1: 12, 2: 6, 3: 1}
    assert two_way_match(res.x, truth.x, 1e-9)
    # every found point's index matches the true point it sits on
    nearest = cdist(res.x, truth.x).argmin(1)
    np.testing.assert_array_equal(res.n_unstable, truth.n_unstable[nearest])
    assert res.speed.max() <= 1e-20 * res.info["q_scale"] + 1e-30
    assert res.success


def test_orthogonal_change_of_coordinates_changes_no_count_kind_or_eigenvalue():
    base = systems.rotated_flipflop(32, seed=4)
    R = torch.as_tensor(systems.random_orthogonal(32, seed=9))
    rotated = fp.DiscreteDynamics(lambda x, u: base.fn(x @ R, u) @ R.T, 32)
    x0 = fp.sample_initial_states(base, 512, noise=0.5, n_steps=20, seed=1)
    a = fp.find_fixed_points(base, x0)
    b = fp.find_fixed_points(rotated, x0 @ R.numpy().T)
    assert a.counts() == b.counts() and a.index_counts() == b.index_counts()
    order_a = np.lexsort(a.x.T)
    mapped = b.x @ R.numpy()
    order_b = np.lexsort(mapped.T)
    np.testing.assert_allclose(mapped[order_b], a.x[order_a], atol=1e-9)
    np.testing.assert_allclose(np.sort_complex(b.eigvals[order_b].ravel()),
                               np.sort_complex(a.eigvals[order_a].ravel()), atol=1e-9)


def test_rerunning_from_the_finders_own_output_changes_nothing():
    dyn = systems.rotated_flipflop(16, seed=6)
    x0 = fp.sample_initial_states(dyn, 512, noise=0.5, n_steps=20, seed=2)
    first = fp.find_fixed_points(dyn, x0)
    again = fp.find_fixed_points(dyn, first.x)
    assert again.counts() == first.counts()
    assert two_way_match(again.x, first.x, 1e-10)


def test_line_attractor_is_reported_as_one_region_not_many_points():
    dyn = systems.line_attractor(8, time="continuous", seed=1)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((256, 8))
    res = fp.find_fixed_points(dyn, x0)
    assert len(res.slow_regions) == 1
    region = res.slow_regions[0]
    assert region.dimension == 1
    line = dyn.Q[:, 0]
    assert abs(abs(region.axes[0] @ line) - 1) < 1e-6  # the region lies along the line
    assert region.extent[0] > 1.0
    assert len(res) <= 3  # not hundreds of "fixed points"


def test_scaling_a_continuous_field_changes_no_verdict():
    base = systems.saddle_node(-0.04, n_states=5, seed=2)
    x0 = np.random.default_rng(3).uniform(-0.6, 0.6, (128, 5)) @ base.Q.T
    results = []
    for factor in (0.1, 1.0, 10.0):
        scaled = fp.ContinuousDynamics(lambda x, u, f=factor: f * base.fn(x, u), 5)
        results.append(fp.find_fixed_points(scaled, x0))
    assert all(r.counts() == results[1].counts() for r in results)
    for r in results:
        np.testing.assert_allclose(np.sort(r.x, axis=0), np.sort(results[1].x, axis=0), atol=1e-8)


def test_results_save_and_load_round_trip_without_pickle(tmp_path):
    dyn = systems.rotated_flipflop(8, seed=1)
    res = fp.find_fixed_points(dyn, fp.sample_initial_states(dyn, 256, noise=0.5, seed=0))
    stem = res.save(tmp_path / "fp")
    assert (tmp_path / "fp.npz").exists() and (tmp_path / "fp.json").exists()
    loaded = fp.FixedPoints.load(stem)
    np.testing.assert_array_equal(loaded.x, res.x)
    np.testing.assert_array_equal(loaded.eigvals, res.eigvals)
    np.testing.assert_array_equal(loaded.kind, res.kind)
    assert loaded.status is res.status and loaded.counts() == res.counts()
    with np.load(tmp_path / "fp.npz", allow_pickle=False) as data:  # no object arrays inside
        assert all(data[k].dtype != object for k in data.files)
    sub = res[res.kind == "stable"]
    assert len(sub) == 8 and set(sub.kind) == {"stable"}


def test_sample_initial_states_is_reproducible_and_uses_inputs():
    gru = torch.nn.GRU(2, 8)
    dyn = fp.from_module(gru)
    a = fp.sample_initial_states(dyn, 100, seed=3, noise=0.1)
    b = fp.sample_initial_states(dyn, 100, seed=3, noise=0.1)
    c = fp.sample_initial_states(dyn, 100, seed=4, noise=0.1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    driven = fp.sample_initial_states(dyn, 50, inputs=np.ones((20, 2)), seed=0)
    assert driven.shape == (50, 8)
    with pytest.raises(ValueError, match="inputs"):
        fp.sample_initial_states(dyn, 50, inputs=np.ones((20, 3)))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 3)), "shape"),
    (np.full((4, 2), np.nan), "non-finite"),
    (np.array([["a", "b"]]), "dtype"),
    (np.zeros((0, 2)), "empty"),
])
def test_bad_initial_states_raise_value_errors_that_name_the_argument(bad, match):
    dyn = systems.tanh_map(2.0, 0.4, n_states=2)
    with pytest.raises(ValueError, match=match) as info:
        fp.find_fixed_points(dyn, bad)
    assert "initial_states" in str(info.value)


def test_bad_options_name_the_field():
    dyn = systems.tanh_map(2.0, 0.4)
    with pytest.raises(ValueError, match="tol_unique"):
        fp.find_fixed_points(dyn, np.zeros((3, 1)), tol_unique=-1)
    with pytest.raises(ValueError, match="unknown option"):
        fp.find_fixed_points(dyn, np.zeros((3, 1)), tolerance=1)


def test_a_stationary_point_where_q_curves_down_is_not_a_slow_point():
    # dx/dt = r + x², r < 0: q = ½(r + x²)² has a local MAXIMUM at x = 0 (∇q = 0 there)
    dyn = systems.saddle_node(-0.01, n_states=1)
    res = fp.find_fixed_points(dyn, np.array([[0.0], [0.001], [-0.3], [0.3]]), slow_tol=1.0)
    assert res.counts()["slow"] == 0
    assert len(res.of_kind("stable", "unstable")) == 2


@pytest.mark.parametrize("n_states", [1, 100])
def test_saddle_between_two_attractors_is_found_from_trajectory_states(n_states):
    # trajectories collapse onto the two attractors; the saddle between them is found only by
    # seeding along the segment between them (a Newton step from the midpoint jumps past it)
    dyn = systems.tanh_map(2.0, 0.40, n_states=n_states)
    x0 = fp.sample_initial_states(dyn, 128, seed=0)
    res = fp.find_fixed_points(dyn, x0)
    truth = systems.tanh_map_fixed_points(2.0, 0.40)
    assert res.index_counts() == {0: 2, 1: 1}
    found = np.sort((res.x @ dyn.Q)[:, 0])
    np.testing.assert_allclose(found, truth, atol=1e-9)


def test_optional_first_order_descent_finds_the_same_points():
    dyn = systems.rotated_flipflop(16, seed=6)
    x0 = fp.sample_initial_states(dyn, 256, noise=0.5, n_steps=20, seed=2)
    plain = fp.find_fixed_points(dyn, x0)
    descended = fp.find_fixed_points(dyn, x0, max_iter=100)
    assert descended.info["descent_iterations"] > 0
    assert descended.index_counts() == plain.index_counts() == {0: 8, 1: 12, 2: 6, 3: 1}
    assert two_way_match(descended.x, plain.x, 1e-9)
