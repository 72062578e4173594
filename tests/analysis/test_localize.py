"""Localizing events between two checkpoints by bisection along interpolated weights."""
import numpy as np
import pytest
import torch

from analysis import analyze_checkpoint
from analysis.events import RestructuringEvent, detect_events
from analysis.localize import interpolate_modules, localize_event
from checkpoints.models import LeakyRNN
from fixedpoints import DiscreteDynamics, systems


def pitch_map(w, seed=3):
    """x <- Q tanh(D Qᵀ x), D = diag(w, 0.5): a pitchfork at w = 1."""
    Q = torch.tensor(systems.random_orthogonal(2, seed))
    d = torch.tensor([w, 0.5], dtype=torch.float64)
    return DiscreteDynamics(lambda x, u: torch.tanh((x @ Q) * d) @ Q.T, 2)


def hopf_map(rho, theta=0.5):
    """x <- tanh(ρ R(θ) x): the origin loses stability through a complex pair at ρ = 1."""
    c, s = np.cos(theta), np.sin(theta)
    R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64) * rho
    return DiscreteDynamics(lambda x, u: torch.tanh(x @ R.T), 2)


def test_saddle_node_of_the_tanh_map_is_located_at_b_c():
    b0, b1 = 0.50, 0.56
    b_c = systems.tanh_saddle_node_b(2.0)
    alpha_true = (b_c - b0) / (b1 - b0)
    roots = systems.tanh_map_fixed_points(2.0, b0)
    pair = roots[roots < 0]                     # the stable node and the saddle that collide
    event = RestructuringEvent(0, 1, "saddle_node", location=np.array([pair.mean()]),
                               detail={"direction": "vanish"})
    loc = localize_event(event, lambda a: systems.tanh_map(2.0, b0 + a * (b1 - b0)),
                         radius=0.4)
    assert loc.converged, loc.message
    assert loc.alpha == pytest.approx(alpha_true, abs=2e-3)
    assert loc.alpha_high - loc.alpha_low <= 1e-3
    # before the collision the pair's eigenvalue is close to 1 (margin ~ 0); after it, the
    # minimal speed near there is tiny (the ghost)
    assert abs(loc.measure["margin_low"]) < 0.05
    assert loc.measure["n_fixed_low"] == 2 and loc.measure["n_fixed_high"] == 0


def test_pitchfork_and_complex_crossing_are_located():
    one = analyze_checkpoint(pitch_map(0.9), n_initial=64)
    three = analyze_checkpoint(pitch_map(1.1), n_initial=64)
    events = detect_events(one, three)
    assert [e.kind for e in events] == ["pitchfork"]
    loc = localize_event(events[0], lambda a: pitch_map(0.9 + 0.2 * a), before=one, after=three)
    assert loc.alpha == pytest.approx(0.5, abs=5e-3)

    stable = analyze_checkpoint(hopf_map(0.8), n_initial=64)
    focus = analyze_checkpoint(hopf_map(1.1), n_initial=64)
    events = detect_events(stable, focus)
    assert [e.kind for e in events] == ["stability_change"]
    assert events[0].detail["crossing"] == "complex"
    loc = localize_event(events[0], lambda a: hopf_map(0.8 + 0.3 * a), before=stable,
                         after=focus)
    assert loc.alpha == pytest.approx(2 / 3, abs=2e-3)          # ρ(α) = 1
    # at the crossing the complex pair sits on the unit circle
    assert abs(loc.measure["margin_low"]) < 1e-3 and abs(loc.measure["margin_high"]) < 1e-3
    assert abs(loc.measure["eigval_low"][1]) > 0.1


def test_gradual_kinds_are_not_localized():
    event = RestructuringEvent(0, 1, "attractor_moved", location=np.zeros(1))
    loc = localize_event(event, lambda a: systems.tanh_map(2.0, 0.0))
    assert loc.alpha is None and "not localized" in loc.message


def test_interpolate_modules_mixes_weights_without_touching_the_inputs():
    torch.manual_seed(0)
    a = LeakyRNN(2, 8, 1).double()
    b = LeakyRNN(2, 8, 1).double()
    before = {k: v.clone() for k, v in a.state_dict().items()}
    mid = interpolate_modules(a, b, 0.25)
    for key, value in mid.state_dict().items():
        torch.testing.assert_close(value, 0.75 * a.state_dict()[key] + 0.25 * b.state_dict()[key])
    for key, value in a.state_dict().items():
        assert torch.equal(value, before[key])
    for key, value in interpolate_modules(a, b, 1.0).state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key])
    with pytest.raises(ValueError, match="same model"):
        interpolate_modules(a, LeakyRNN(2, 8, 1, rank=2), 0.5)
