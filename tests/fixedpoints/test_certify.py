"""Certified answers (issue 12): interval arithmetic, the exhaustive low-rank search, Krawczyk
certificates, stability verdicts and ghost exclusion radii."""
from __future__ import annotations

import warnings
from dataclasses import replace
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from torch import nn

import fixedpoints as fp
from checkpoints.models import LeakyRNN, RankOneRNN
from fixedpoints.certify import certify_points, eigen_discs, exclusion_radius
from fixedpoints.complete import finish
from fixedpoints.intervals import Interval, imatmul
from fixedpoints.lowrank import LowRankForm, solve_reduced


# ============================================================================ helpers
class RowLowRank(nn.Module):
    """Stand-in for the ghost paper's row-convention model: ``r @ (S_l @ S_r)``."""

    def __init__(self, s_l, s_r, w_in, b, alpha=0.2):
        super().__init__()
        self.S_l = nn.Parameter(torch.as_tensor(s_l))
        self.S_r = nn.Parameter(torch.as_tensor(s_r))
        self.W_in = nn.Parameter(torch.as_tensor(w_in))  # (n_inputs, N), row convention
        self.b = nn.Parameter(torch.as_tensor(b))
        self.alpha = alpha
        self.n_states = self.S_l.shape[0]
        self.n_inputs = self.W_in.shape[0]

    def _drive(self, r, u):
        return torch.tanh(r @ (self.S_l @ self.S_r) + u @ self.W_in + self.b)

    def step(self, r, u):
        return (1 - self.alpha) * r + self.alpha * self._drive(r, u)

    def velocity(self, r, u):
        return -r + self._drive(r, u)

    def low_rank_form(self, u=None):
        with torch.no_grad():
            c = self.b.double() if u is None else u.double() @ self.W_in.double() + self.b
            return {"left": self.S_r.double().T.clone(), "right": self.S_l.double().T.clone(),
                    "bias": c.double().clone(), "nonlinearity": "tanh"}


def staircase_form(count: int, rng, beta: float = 20.0, w: float = 1.0, copies: int = 2):
    """A rank-2 network with exactly ``count`` ∈ {1, 3, 5, 7, 9} fixed points, in closed form.

    κ₁ = Σ_j w tanh(β (κ₁ − a_j)) is a staircase: with steps at ±(2j − 1) w (j = 1..s) the line
    κ₁ crosses it once on every plateau (at 0 and ±2jw) and once on every step: 4s + 1 roots;
    with one more step at 0 and the others at ±2jw it gives 4s + 3. κ₂ = ½ tanh(κ₂ + 0.3) has
    one root (slope ½ < 1). tanh(βx) differs from sign(x) by < 2e^{-2β|x|} ≈ 1e-17 at the
    crossings, so the counts are exact. The κ coordinates are then rotated and every unit is
    split in ``copies`` identical halves and shuffled, so the reduced equations are coupled.
    Returns (form, number of saddles).
    """
    odd = count % 4 == 3
    s = (count - 3) // 4 if odd else (count - 1) // 4
    steps = [0.0] if odd else []
    for j in range(1, s + 1):
        a = 2 * j * w if odd else (2 * j - 1) * w
        steps += [a, -a]
    a = np.repeat(np.array(steps), copies)
    n1 = len(a)
    n = n1 + copies
    left, right, bias = np.zeros((n, 2)), np.zeros((2, n)), np.zeros(n)
    left[:n1, 0], right[0, :n1], bias[:n1] = beta, w / copies, -beta * a
    left[n1:, 1], right[1, n1:], bias[n1:] = 1.0, 0.5 / copies, 0.3
    theta = rng.uniform(0, 2 * np.pi)
    q = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    perm = rng.permutation(n)
    saddles = len(steps)
    return LowRankForm((left @ q)[perm], (q.T @ right)[:, perm], bias[perm]), saddles


def leaky_from_form(form: LowRankForm, alpha=0.3) -> LeakyRNN:
    model = LeakyRNN(1, form.n_states, 1, alpha=alpha, rank=form.rank).double()
    with torch.no_grad():
        model.S_l.copy_(torch.as_tensor(form.left))
        model.S_r.copy_(torch.as_tensor(form.right))
        model.W_in.weight.zero_()
        model.W_in.bias.copy_(torch.as_tensor(form.bias))
    return model


def random_states(n, k=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(k, n))


def fixed_only(result):
    return result[result.kind != "slow"]


def same_set(a, b, tol=1e-12):
    """Every point of a within tol (max-norm) of one of b and vice versa, same count."""
    if len(a) != len(b):
        return False
    gaps = np.abs(a[:, None, :] - b[None]).max(-1)
    return bool((gaps.min(1) < tol).all() and (gaps.min(0) < tol).all())


# ============================================================================ intervals
def test_interval_operations_enclose_exact_results():
    rng = np.random.default_rng(0)
    lo = rng.normal(size=200) * 3
    hi = lo + np.abs(rng.normal(size=200)) * rng.choice([0, 1e-12, 1.0], size=200)
    x = Interval(lo, hi)
    t, s = x.tanh(), x.sigmoid()
    mpmath.mp.dps = 40
    for i in range(200):
        for frac in (0.0, 0.37, 1.0):
            p = mpmath.mpf(lo[i]) + frac * (mpmath.mpf(hi[i]) - mpmath.mpf(lo[i]))
            assert t.lo[i] <= mpmath.tanh(p) <= t.hi[i]
            assert s.lo[i] <= 1 / (1 + mpmath.exp(-p)) <= s.hi[i]
    # products and sums against exact rational arithmetic
    a = rng.normal(size=(4, 30))
    b = Interval(rng.normal(size=(30, 2)), None)
    b.hi = b.lo + 1e-3
    prod = imatmul(a, b)
    y = b.lo + 0.5e-3
    for i in range(4):
        for j in range(2):
            exact = sum(Fraction(a[i, k]) * Fraction(y[k, j]) for k in range(30))
            assert Fraction(prod.lo[i, j]) <= exact <= Fraction(prod.hi[i, j])
    sq = Interval(np.array([-1.0, 2.0]), np.array([3.0, 5.0])).square()
    assert sq.lo[0] == 0.0 and sq.hi[0] >= 9.0 and sq.lo[1] <= 4.0 and sq.hi[1] >= 25.0


# ============================================================================ exhaustive search
def _dense_root_count(m, n, c, grid=40001):
    s = np.abs(n).sum()
    k = np.linspace(-s, s, grid)
    g = k - np.tanh(c + np.outer(k, m)) @ n
    sign = np.sign(g)
    return int(np.sum(sign[:-1] * sign[1:] < 0) + np.sum(sign == 0)), k


def test_rank_one_roots_match_a_dense_scan_for_200_networks():
    rng = np.random.default_rng(12)
    counts = []
    for _ in range(200):
        size = int(rng.integers(3, 40))
        m = rng.normal(size=size)
        n = m * rng.uniform(0.3, 4.0) / (m @ m) + rng.normal(size=size) * 0.3 / size
        c = rng.normal(size=size) * rng.uniform(0, 0.5)
        sol = solve_reduced(LowRankForm(m[:, None], n[None, :], c))
        expected, grid = _dense_root_count(m, n, c)
        assert sol.complete
        assert len(sol.kappa) == expected
        step = grid[1] - grid[0]
        for root, box in zip(sol.kappa[:, 0], sol.enclosure[:, 0]):
            assert box[0] <= root <= box[1]
            assert abs(root - np.tanh(c + root * m) @ n) < 1e-12
            assert box[1] - box[0] < 1e-10 and np.min(np.abs(grid - root)) <= step
        counts.append(expected)
    assert set(counts) >= {1, 3}  # the sample holds both regimes


@pytest.mark.parametrize("count", [1, 3, 5, 7, 9])
def test_rank_two_networks_with_known_counts(count):
    form, saddles = staircase_form(count, np.random.default_rng(count))
    sol = solve_reduced(form)
    assert sol.complete and len(sol.kappa) == count and len(sol.unresolved) == 0
    model = leaky_from_form(form)
    for time in ("discrete", "continuous"):
        dyn = fp.from_module(model, input=[0.0], time=time)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = fp.find_fixed_points(dyn, random_states(form.n_states), complete=True)
        fixed = fixed_only(result)
        assert result.complete and len(fixed) == count
        assert np.isfinite(fixed.certified_radius).all()
        assert (fixed.error_bound <= fixed.certified_radius).all()
        assert fixed.stability_certified.all()
        assert fixed.index_counts() == ({0: count - saddles, 1: saddles} if saddles else {0: 1})
        # every certified point is a fixed point of the model itself
        with torch.no_grad():
            v = dyn.velocity(dyn.states(fixed.x)).numpy()
        assert np.abs(v).max() < 1e-12
        assert result.search_box.shape == (2, 2)


def test_counts_do_not_depend_on_seed_or_starts():
    form, _ = staircase_form(9, np.random.default_rng(3))
    dyn = fp.from_module(leaky_from_form(form), input=[0.0])
    points = []
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = fp.find_fixed_points(dyn, random_states(form.n_states, k=4, seed=seed),
                                          seed=seed)
        fixed = fixed_only(result)
        assert result.complete and len(fixed) == 9
        points.append(fixed.x)
    assert same_set(points[0], points[1]) and same_set(points[0], points[2])


def test_row_convention_and_both_time_forms_agree():
    form, _ = staircase_form(5, np.random.default_rng(5))
    n = form.n_states
    w_in = np.random.default_rng(0).normal(size=(2, n)) * 0.0
    row = RowLowRank(form.right.T.copy(), form.left.T.copy(), w_in, form.bias.copy())
    col = leaky_from_form(form)
    found = []
    for model, inp in ((row, [0.0, 0.0]), (col, [0.0])):
        for time in ("discrete", "continuous"):
            dyn = fp.from_module(model.double(), input=inp, time=time)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                result = fixed_only(fp.find_fixed_points(dyn, random_states(n)))
            assert len(result) == 5 and np.isfinite(result.certified_radius).all()
            assert result.stability_certified.all()
            found.append(result.x)
    for other in found[1:]:
        assert same_set(other, found[0])


def test_input_moves_the_reduced_problem():
    rng = np.random.default_rng(1)
    form, _ = staircase_form(3, rng)
    n = form.n_states
    w_in = np.zeros((1, n))
    w_in[0] = 50.0
    row = RowLowRank(form.right.T.copy(), form.left.T.copy(), w_in, form.bias.copy()).double()
    # a strong input saturates every unit: one fixed point, at tanh(c + 50 + L κ)
    dyn = fp.from_module(row, input=[1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fixed_only(fp.find_fixed_points(dyn, random_states(n)))
    assert len(result) == 1 and result[0].stability_certified.all()
    assert np.all(result.x > 0.99)


def test_full_rank_models_of_low_numerical_rank():
    rng = np.random.default_rng(4)
    form, _ = staircase_form(5, rng)
    n = form.n_states
    model = LeakyRNN(1, n, 1).double()
    with torch.no_grad():
        model.W_rec.copy_(torch.as_tensor(form.left @ form.right))
        model.W_in.weight.zero_()
        model.W_in.bias.copy_(torch.as_tensor(form.bias))
    assert model.low_rank_form()["left"].shape == (n, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fp.find_fixed_points(fp.from_module(model, input=[0.0]), random_states(n))
    assert result.complete and len(fixed_only(result)) == 5
    # a torch nn.RNN(tanh) with a rank-one recurrent matrix
    rnn = nn.RNN(1, 6).double()
    u = torch.linspace(-1, 1, 6, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(3.0 * torch.outer(u, u) / (u @ u))
        rnn.bias_hh_l0.zero_()
        rnn.bias_ih_l0.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fp.find_fixed_points(fp.from_module(rnn), random_states(6))
    assert result.complete and len(fixed_only(result)) == 3
    assert fixed_only(result).stability_certified.all()
    # a random full-rank one has no low-rank form
    assert LeakyRNN(1, 10, 1).low_rank_form() is None


def test_rank_one_model_and_budget_left_unresolved():
    torch.manual_seed(0)
    model = RankOneRNN(30).double()
    with torch.no_grad():
        model.n.copy_(3.0 * model.m / (model.m @ model.m))
    dyn = fp.from_module(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        full = fp.find_fixed_points(dyn, random_states(30))
        cut = fp.find_fixed_points(dyn, random_states(30), complete_budget=2)
    assert full.complete and len(fixed_only(full)) == 3
    assert not cut.complete and len(cut.unresolved) > 0
    assert cut.provenance().startswith("found from")
    assert full.provenance() == "complete (certified)"


def test_complete_true_needs_a_low_rank_form():
    gru = nn.GRU(2, 5).double()
    with pytest.raises(ValueError, match="complete=True needs a low-rank"):
        fp.find_fixed_points(fp.from_module(gru), random_states(5), complete=True)


# ============================================================================ certificates
@pytest.mark.parametrize("kind", ["gru", "gru_cell", "lstm", "rnn_tanh", "rnn_relu",
                                  "leaky_dense", "leaky_cont"])
def test_every_fixed_point_gets_a_certificate(kind):
    torch.manual_seed(1)
    if kind.startswith("gru"):
        module, n = (nn.GRU(3, 12) if kind == "gru" else nn.GRUCell(3, 12)).double(), 12
        with torch.no_grad():
            (module.weight_hh_l0 if kind == "gru" else module.weight_hh).mul_(6.0)
    elif kind == "lstm":
        module, n = nn.LSTM(3, 10).double(), 20
        with torch.no_grad():
            module.weight_hh_l0.mul_(4.0)
    elif kind.startswith("rnn"):
        module = nn.RNN(3, 12, nonlinearity=kind[4:]).double()
        n = 12
        with torch.no_grad():
            module.weight_hh_l0.copy_(torch.randn(12, 12, dtype=torch.float64) * 1.8 / 12 ** 0.5)
    else:
        module, n = LeakyRNN(2, 16, 1, gain=2.0).double(), 16
    dyn = fp.from_module(module, time="continuous" if kind == "leaky_cont" else None)
    x0 = fp.sample_initial_states(dyn, 256, noise=0.1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fixed_only(fp.find_fixed_points(dyn, x0))
    assert len(result) >= 1
    ok = np.isfinite(result.certified_radius)
    assert ok.all(), (kind, result.certified_radius)
    assert (result.error_bound <= result.certified_radius).all()
    if kind == "rnn_relu":
        # piecewise linear: the exact fixed point solves (I - W_SS) x_S = c_S on the active set
        w = module.weight_hh_l0.detach().numpy()
        c = (module.bias_ih_l0 + module.bias_hh_l0).detach().numpy()
        for x, bound in zip(result.x, result.error_bound):
            active = (w @ x + c) > 0
            exact = np.zeros(n)
            exact[active] = np.linalg.solve(np.eye(active.sum()) - w[np.ix_(active, active)],
                                            c[active])
            assert np.allclose(np.maximum(w @ exact + c, 0), exact, atol=1e-13)
            assert np.abs(x - exact).max() <= bound
    else:
        assert result.error_bound.max() < 1e-8
    # uniqueness: no other reported point lies in a certified cube
    for i in range(len(result)):
        for j in range(len(result)):
            if i != j:
                gap = np.abs(result.x[i] - result.x[j]).max()
                assert gap + result.error_bound[j] > result.certified_radius[i]
    if kind != "rnn_relu":  # relu networks may sit at kinks; tanh ones should all be proved
        assert result.stability_certified.all()


@pytest.mark.parametrize("arch", ["leaky", "gru", "lstm"])
def test_certificate_locates_a_displaced_point(arch):
    torch.manual_seed(0)
    model = {"leaky": lambda: LeakyRNN(1, 10, 1, gain=2.5), "gru": lambda: nn.GRU(2, 10),
             "lstm": lambda: nn.LSTM(2, 5)}[arch]().double()
    dyn = fp.from_module(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fixed_only(fp.find_fixed_points(dyn, fp.sample_initial_states(dyn, 128)))
    x = result.x[:1].copy()
    for delta in (1e-9, 1e-6, 1e-4):
        moved = x.copy()
        moved[0, 3] += delta
        cert = certify_points(dyn, moved, scale=result.scale)
        # the true fixed point is delta away: the bound must cover it, and not wildly
        assert cert["error_bound"][0] >= delta * (1 - 1e-6)
        assert cert["error_bound"][0] <= 10 * delta
        assert cert["certified_radius"][0] >= cert["error_bound"][0]
    # a state far from every fixed point is never certified
    far_state = np.full((1, 10), 0.3)
    far = certify_points(dyn, far_state, scale=result.scale)
    with torch.no_grad():
        assert float(dyn.speed(dyn.states(far_state))) > 1e-6
    assert np.isnan(far["certified_radius"][0])


def test_models_without_an_enclosure_are_not_certified():
    stacked = nn.GRU(2, 4, num_layers=2).double()
    dyn = fp.from_module(stacked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fp.find_fixed_points(dyn, fp.sample_initial_states(dyn, 64))
    assert np.isnan(result.certified_radius).all()
    assert not result.stability_certified.any()
    assert not result.complete


def test_eigen_discs_hold_every_perturbed_eigenvalue():
    rng = np.random.default_rng(0)
    mid = rng.normal(size=(3, 6, 6))
    rad = 1e-5 * np.abs(rng.normal(size=(3, 6, 6)))
    vals, eps = eigen_discs(Interval(mid - rad, mid + rad))
    assert np.isfinite(eps).all() and (eps > 0).all()
    for i in range(3):
        for _ in range(20):
            sample = mid[i] + rad[i] * rng.uniform(-1, 1, size=(6, 6))
            for lam in np.linalg.eigvals(sample):
                assert np.min(np.abs(vals[i] - lam)) <= eps[i]


def _two_unit_focus(shift):
    """dr/dt = −r + tanh(W r) with W = [[1 − shift, −2], [2, 1 − shift]]: at r = 0 the
    eigenvalues are exactly −shift ± 2i."""
    model = LeakyRNN(0, 2, 1).double()
    with torch.no_grad():
        model.W_rec.copy_(torch.tensor([[1.0 - shift, -2.0], [2.0, 1.0 - shift]],
                                       dtype=torch.float64))
        model.W_in.bias.zero_()
    return fp.from_module(model, time="continuous")


def test_stability_not_claimed_on_the_boundary():
    # a centre (Hopf point): the fixed point is proved, its stability cannot be
    dyn = _two_unit_focus(0.0)
    cert = certify_points(dyn, np.zeros((1, 2)), scale=1.0, n_unstable=np.zeros(1, int))
    assert np.isfinite(cert["certified_radius"][0])
    assert not cert["stability_certified"][0]
    # 1e-12 inside the stable half-plane is resolved; so is a clear unstable focus
    for shift, index in ((1e-12, 0), (-0.1, 2)):
        cert = certify_points(_two_unit_focus(shift), np.zeros((1, 2)), scale=1.0,
                              n_unstable=np.full(1, index))
        assert cert["stability_certified"][0] and cert["eigen_radius"][0] < 1e-12
    # a wrong reported index is never certified
    cert = certify_points(_two_unit_focus(0.1), np.zeros((1, 2)), scale=1.0,
                          n_unstable=np.full(1, 2))
    assert not cert["stability_certified"][0]


def test_results_round_trip_with_certificates(tmp_path):
    form, _ = staircase_form(3, np.random.default_rng(0))
    dyn = fp.from_module(leaky_from_form(form), input=[0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fp.find_fixed_points(dyn, random_states(form.n_states))
    back = fp.FixedPoints.load(result.save(tmp_path / "fp"))
    assert back.complete and back.n_certified == result.n_certified == 3
    np.testing.assert_array_equal(back.certified_radius, result.certified_radius)
    np.testing.assert_array_equal(back.search_box, result.search_box)
    d = result.to_dict()
    assert d["complete"] and d["n_certified"] == 3 and d["provenance"] == "complete (certified)"
    assert all(p["certified_radius"] is not None for p in d["points"])
    subset = result[[0]]
    assert subset.certified_radius.shape == (1,) and subset.kappa.shape == (1, 2)


# ============================================================================ ghosts
def _ghost_rank_one(offset=0.02):
    from scipy.optimize import brentq, minimize_scalar
    size = 20
    rng = np.random.default_rng(0)
    m = 1 + 0.1 * rng.normal(size=size)
    n = 2.0 / size * (1 + 0.1 * rng.normal(size=size))

    def lowest(b):
        return -minimize_scalar(lambda k: -(k - np.tanh(m * k + b) @ n), bounds=(-3, 0),
                                method="bounded").fun

    b = brentq(lowest, 0.0, 2.0) + offset  # just past the saddle-node: a ghost at κ < 0
    model = RankOneRNN(size).double()
    with torch.no_grad():
        model.m.copy_(torch.as_tensor(m))
        model.n.copy_(torch.as_tensor(n))
        model.b.fill_(b)
    states = np.tanh(np.linspace(-3, 3, 200)[:, None] * m + b)
    states = states + 0.01 * rng.normal(size=states.shape)
    return model, states


@pytest.mark.parametrize("time", ["continuous", "discrete"])
def test_ghost_exclusion_radius_and_kappa_location(time):
    model, states = _ghost_rank_one()
    dyn = fp.from_module(model, time=time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        points = fp.find_fixed_points(dyn, states)
        ghosts = fp.detect_ghosts(dyn, points, states)
    assert points.complete and len(ghosts) == 1
    fixed = fixed_only(points)
    g = ghosts.x[0]
    radius = ghosts.exclusion_radius[0]
    assert radius > 0
    assert np.abs(fixed.x - g).max(1).min() > radius  # no fixed point in the cube
    # the same proof from a fresh exhaustive search (no finder result to reuse)
    from fixedpoints.ghost_certificates import certify_ghosts
    fresh = certify_ghosts(dyn, ghosts).exclusion_radius[0]
    assert 0 < fresh < np.abs(fixed.x - g).max(1).min() and abs(fresh - radius) < 1e-6 * radius
    # the speed bound alone proves a smaller, nonzero radius around the ghost
    local = exclusion_radius(dyn, ghosts.x, scale=points.scale)[0]
    assert 0 < local <= radius
    # the κ-space speed minimum lifts back onto the ghost (rank one: the same point)
    assert ghosts.kappa.shape == (1, 1)
    assert ghosts.kappa_distance[0] < 1e-6 * points.scale
    assert abs(ghosts.kappa[0, 0] - g @ model.n.detach().numpy()) < 1e-6
    assert ghosts.to_dict()["ghosts"][0]["exclusion_radius"] == radius


def test_exclusion_radius_with_a_known_radius_stops_early_and_loses_nothing(monkeypatch):
    # ghosts of low-rank models keep the larger of this search's radius and the low-rank
    # search's: with that radius known, the search stops where it cannot win, and the larger
    # of the two is unchanged
    import fixedpoints.certify as certify
    model, _ = _ghost_rank_one()
    dyn = fp.from_module(model, time="continuous")
    x = np.tanh(np.linspace(-2, 1, 5)[:, None] * model.m.detach().numpy()
                + model.b.detach().numpy())
    calls = []
    excludes = certify._excludes

    def counted(enc, g, v_g, rho):
        calls.append(len(g))
        return excludes(enc, g, v_g, rho)

    monkeypatch.setattr(certify, "_excludes", counted)
    plain = exclusion_radius(dyn, x, scale=4.0)
    plain_calls = sum(calls)
    assert (plain > 0).all()
    for known in (0.5 * plain, 1.9 * plain, 3.0 * plain, np.full(5, np.inf)):
        calls.clear()
        got = exclusion_radius(dyn, x, scale=4.0, known=known)
        assert np.array_equal(np.maximum(got, known), np.maximum(plain, known))
        assert sum(calls) <= plain_calls
    assert sum(calls) == 0  # an infinite known radius (no fixed point at all): nothing to try
    calls.clear()
    exclusion_radius(dyn, x, scale=4.0, known=3.0 * plain)
    assert sum(calls) < plain_calls


def ghost_rank_two():
    """The rank-one ghost network with a second, stable latent (one unit block) added:
    ``(left (n+2, 2), right (2, n+2), bias (n+2,), states (200, n+2))``, the states on the
    first latent's line."""
    model, _ = _ghost_rank_one()
    size = model.n_states
    m, n = model.m.detach().numpy(), model.n.detach().numpy()
    b = model.b.detach().numpy()
    left = np.zeros((size + 2, 2))
    right = np.zeros((2, size + 2))
    left[:size, 0], right[0, :size] = m, n
    left[size:, 1], right[1, size:] = 1.0, 0.25
    bias = np.concatenate([b, [0.3, 0.3]])
    states = np.tanh(np.linspace(-3, 3, 200)[:, None] * np.r_[m, 0, 0] + bias)
    return left, right, bias, states


def test_rank_two_ghost_located_in_kappa_within_its_width():
    # the second latent coupled to the first by a rotation: a coupled rank-2 network
    left, right, bias, states = ghost_rank_two()
    theta = 0.7
    q = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    form = LowRankForm(left @ q, 3.0 * q.T @ right / 3.0, bias)
    dyn = fp.from_module(leaky_from_form(form), input=[0.0], time="continuous")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        points = fp.find_fixed_points(dyn, states)
        ghosts = fp.detect_ghosts(dyn, points, states)
    assert points.complete and len(ghosts) >= 1
    assert (ghosts.exclusion_radius > 0).all()
    assert (ghosts.kappa_distance <= ghosts.width).all()


def test_the_polish_budget_bounds_the_n_dimensional_certificates_only():
    form, _ = staircase_form(9, np.random.default_rng(2))
    n = form.n_states
    dyn = fp.from_module(leaky_from_form(form), input=[0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fp.find_fixed_points(dyn, random_states(n), polish_budget=1.0)
    fixed = fixed_only(result)
    assert result.complete and len(fixed) == 9  # the exhaustive search is not budgeted by it
    # the κ-space proof certifies every root at K-dimensional cost: no budget cuts it
    assert fixed.n_certified == 9 and result.info["not_certified_over_budget"] == 0
    assert fixed.stability_certified.all()
    # the same points without their certificates: certify_points (60 n³ each) is budgeted to
    # max(4, budget / (240 n³)) of them, the stable ones first
    bare = replace(result, certified_radius=np.full(len(result), np.nan),
                   error_bound=np.full(len(result), np.nan),
                   stability_certified=np.zeros(len(result), bool))
    budgeted = finish(dyn, bare, complete=False, budget=240.0 * n ** 3 * 5)
    assert budgeted.info["not_certified_over_budget"] == 4
    certified = np.isfinite(budgeted.certified_radius)
    assert certified.sum() == 5 and certified[:5].all()
    assert (budgeted.kind[:5] == "stable").all() and budgeted.stability_certified[:5].all()
    np.testing.assert_array_equal(budgeted.x, result.x)  # complete=False: the same points


def test_low_rank_form_rejects_bad_shapes():
    with pytest.raises(ValueError, match="left has shape"):
        LowRankForm(np.ones((4, 2)), np.ones((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="bias has shape"):
        LowRankForm(np.ones((4, 1)), np.ones((1, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="complete="):
        fp.FinderOptions(complete="yes")


def test_epoch_summary_says_complete_for_a_low_rank_model():
    from analysis import analyze_checkpoint
    form, saddles = staircase_form(5, np.random.default_rng(6))
    dyn = fp.from_module(leaky_from_form(form), input=[0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = analyze_checkpoint(dyn, n_initial=32).summary()
    assert summary["search"] == "complete (certified)" and summary["complete"]
    assert summary["n_certified"] == 5 and summary["n_stability_certified"] == 5


def test_rank_three_network_with_27_fixed_points():
    """Three bistable latents κ_j = tanh(20 κ_j) (roots 0, ±1 each, to 1e-17), mixed by a
    random rotation: 27 fixed points with 8, 12, 6 and 1 of index 0, 1, 2 and 3."""
    from scipy.stats import special_ortho_group
    n = 6
    left, right, bias = np.zeros((n, 3)), np.zeros((3, n)), np.zeros(n)
    for u in range(n):
        left[u, u // 2], right[u // 2, u] = 20.0, 0.5
    q = special_ortho_group.rvs(3, random_state=1)
    form = LowRankForm(left @ q, q.T @ right, bias)
    dyn = fp.from_module(leaky_from_form(form), input=[0.0], time="continuous")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fixed_only(fp.find_fixed_points(dyn, random_states(n, k=4), complete=True))
    assert result.complete and len(result) == 27
    assert result.index_counts() == {0: 8, 1: 12, 2: 6, 3: 1}
    assert result.n_certified == 27 and result.stability_certified.all()


def test_a_degenerate_root_stays_unresolved_never_dropped():
    # κ = tanh(κ): a triple root at 0 (G'(0) = G''(0) = 0) that no Krawczyk test can certify
    form = LowRankForm(np.ones((2, 1)), 0.5 * np.ones((1, 2)), np.zeros(2))
    sol = solve_reduced(form, max_boxes=20_000)
    assert not sol.complete and len(sol.kappa) == 0
    assert len(sol.unresolved) == 1  # touching boxes merged into one hull
    lo, hi = sol.unresolved[0, 0]
    assert lo <= 0.0 <= hi and hi - lo < 1e-3
    dyn = fp.from_module(leaky_from_form(form), input=[0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fp.find_fixed_points(dyn, random_states(2), complete_budget=20_000)
    assert not result.complete and result.unresolved.shape == (1, 1, 2)
    assert result.provenance().startswith("found from")


def test_gershgorin_discs_prove_stability_where_the_eigenvectors_are_degenerate():
    """A rank-one Jacobian has a repeated eigenvalue 0, whose computed eigenvectors may be
    nearly parallel (the Bauer–Fike radius is then useless); Gershgorin's discs still prove
    the stable cases, and never a matrix with an eigenvalue outside the stable region."""
    from fixedpoints.certify import _gershgorin_stable
    from fixedpoints.intervals import Interval

    u = np.linspace(-1, 1, 6)
    rank_one = 0.1 * np.outer(u, u) / (u @ u)  # eigenvalues 0.1 and 0 (five times)
    unstable = np.diag([0.5, 0.5, 1.2, 0.1, 0.1, 0.1])  # |λ| = 1.2
    beyond = np.full((6, 6), 0.2)  # ρ = 1.2, Σ_j |J_ij| = 1.2
    mats = np.stack([rank_one, unstable, beyond])
    rad = 1e-12
    discrete = _gershgorin_stable(Interval(mats - rad, mats + rad), "discrete")
    assert discrete.tolist() == [True, False, False]
    # continuous time: J_v = J_F − I has the same discs shifted by −1
    eye = np.eye(6)
    cont = _gershgorin_stable(Interval(mats - eye - rad, mats - eye + rad), "continuous")
    assert cont.tolist() == [True, False, False]
    # a disc that touches the boundary proves nothing
    edge = np.eye(6)[None] * (1.0 - 1e-13)
    assert not _gershgorin_stable(Interval(edge - rad, edge + rad), "discrete").any()
