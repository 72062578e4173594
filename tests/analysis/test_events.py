"""Restructuring events: each rule on hand-made epochs, then on swept dynamical systems."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from analysis import analyze_series
from analysis.epoch import EpochAnalysis
from analysis.events import EVENT_KINDS, EventOptions, RestructuringEvent, detect_events
from analysis.topology import Topology
from fixedpoints import DiscreteDynamics, FixedPoints, systems
from fixedpoints.results import FinderStatus


# ----------------------------------------------------------------------------- hand-made epochs
def spectrum(index, n, complex_pair=None):
    """A discrete-time spectrum with `index` unstable eigenvalues (|λ| > 1)."""
    if complex_pair is not None:
        r, theta = complex_pair
        rest = [0.5] * (n - 2)
        return np.array([r * np.exp(1j * theta), r * np.exp(-1j * theta)] + rest)
    return np.array([1.5] * index + [0.5] * (n - index), dtype=complex)


def epoch(e, points, ghosts=(), edges=(), scale=1.0, n=2):
    """An EpochAnalysis from (x, index[, eigvals]) tuples, ghost locations and node edges."""
    xs, idx, eig = [], [], []
    for p in points:
        xs.append(np.asarray(p[0], float))
        idx.append(p[1])
        eig.append(p[2] if len(p) > 2 else spectrum(p[1], n))
    k = len(xs)
    idx = np.array(idx, int)
    eigvals = np.array(eig).reshape(k, n)
    native = np.abs(eigvals) > 1
    idx = native.sum(1).astype(int)
    kind = np.where(idx == 0, "stable", np.where(idx == n, "unstable", "saddle"))
    fp = FixedPoints(x=np.array(xs).reshape(k, n), speed=np.zeros(k), eigvals=eigvals,
                     kind=kind, n_unstable=idx, time="discrete",
                     status=FinderStatus.CONVERGED, scale=scale)
    gx = np.array(ghosts, float).reshape(-1, n)
    ghost_obj = SimpleNamespace(x=gx, n_unstable=np.zeros(len(gx), int))
    ids = [f"fp{i}" for i in range(k)] + [f"ghost{j}" for j in range(len(gx))] + \
          ["escape", "unresolved"]
    kinds = list(kind) + ["ghost"] * len(gx) + ["escape", "unresolved"]
    row = {name: r for r, name in enumerate(ids)}
    topo = Topology(node_id=np.array(ids), node_kind=np.array(kinds),
                    node_index=np.array(list(idx) + [0] * len(gx) + [-1, -1]),
                    node_ref=np.arange(len(ids)),
                    node_x=np.concatenate([fp.x, gx, np.full((2, n), np.nan)]),
                    edge_source=np.array([row[s] for s, _ in edges], int),
                    edge_target=np.array([row[t] for _, t in edges], int),
                    edge_branches=np.ones(len(edges), int))
    return EpochAnalysis(epoch=e, fixed_points=fp, ghosts=ghost_obj, topology=topo, scale=scale)


def kinds(events):
    return [e.kind for e in events]


def test_identical_epochs_have_no_events():
    a = epoch(0, [((-1, 0), 0), ((0, 0), 1), ((1, 0), 0)], edges=[("fp1", "fp0"), ("fp1", "fp2")])
    b = epoch(1, [((1, 0), 0), ((-1, 0), 0), ((0, 0), 1)], edges=[("fp2", "fp1"), ("fp2", "fp0")])
    assert detect_events(a, b) == []


def test_saddle_node_vanish_consumes_pair_and_ghost():
    a = epoch(0, [((-1, 0), 0), ((-0.8, 0), 1), ((1, 0), 0)],
              edges=[("fp1", "fp0"), ("fp1", "fp2")])
    b = epoch(1, [((1, 0), 0)], ghosts=[(-0.9, 0)], edges=[("ghost0", "fp0")])
    events = detect_events(a, b)
    assert kinds(events) == ["saddle_node"]
    e = events[0]
    assert e.detail["direction"] == "vanish" and e.detail["ghost"] == "ghost0"
    assert e.detail["indices"] == [0, 1]
    assert e.detail["n_attractors"] == [2, 1]
    assert set(e.points) == {"before/fp0", "before/fp1", "after/ghost0"}
    np.testing.assert_allclose(e.location, [-0.9, 0])
    assert (e.epoch_before, e.epoch_after) == (0, 1)


def test_saddle_node_appear_is_the_reverse():
    a = epoch(0, [((1, 0), 0)], ghosts=[(-0.9, 0)])
    b = epoch(1, [((-1, 0), 0), ((-0.8, 0), 1), ((1, 0), 0)])
    events = detect_events(a, b)
    assert kinds(events) == ["saddle_node"]
    assert events[0].detail["direction"] == "appear"
    assert events[0].detail["n_attractors"] == [1, 2]


def test_saddle_node_without_ghost_and_with_missed_partner():
    a = epoch(0, [((-1, 0), 0), ((-0.8, 0), 1), ((1, 0), 0)])
    b = epoch(1, [((1, 0), 0)])
    events = detect_events(a, b)
    assert kinds(events) == ["saddle_node"] and events[0].detail["ghost"] is None
    # the search missed the saddle before: a lone stable point vanishes where a ghost appears
    a = epoch(0, [((-1, 0), 0), ((1, 0), 0)])
    b = epoch(1, [((1, 0), 0)], ghosts=[(-0.9, 0)])
    events = detect_events(a, b)
    assert kinds(events) == ["saddle_node"]
    assert events[0].detail["partner"] is None and events[0].detail["ghost"] == "ghost0"


def test_far_apart_or_same_index_points_are_separate_deaths():
    far = epoch(0, [((-1, 0), 0), ((1, 0), 1), ((5, 5), 0)], scale=1.0)
    after = epoch(1, [((5, 5), 0)])
    assert sorted(kinds(detect_events(far, after, EventOptions(pair_distance=1.0)))) == \
        ["death", "death"]
    same = epoch(0, [((-1, 0), 0), ((-0.8, 0), 0), ((5, 5), 0)])
    assert sorted(kinds(detect_events(same, after))) == ["death", "death"]


def test_pitchfork_split_and_merge():
    one = epoch(0, [((0, 0), 0), ((5, 5), 0)])
    three = epoch(1, [((0.4, 0), 0), ((0, 0), 1), ((-0.4, 0), 0), ((5, 5), 0)])
    events = detect_events(one, three)
    assert kinds(events) == ["pitchfork"]
    d = events[0].detail
    assert d["direction"] == "split" and d["index_single"] == 0 and d["index_middle"] == 1
    assert d["n_attractors"] == [2, 3]
    back = detect_events(three, one)
    assert kinds(back) == ["pitchfork"] and back[0].detail["direction"] == "merge"
    # lopsided: the middle point far from the flanks' midpoint is no pitchfork
    skew = epoch(1, [((0.4, 0), 0), ((0.35, 0), 1), ((-0.4, 0), 0), ((5, 5), 0)])
    assert "pitchfork" not in kinds(detect_events(one, skew))


def test_stability_change_real_and_complex_crossings():
    a = epoch(0, [((0, 0), 0, np.array([0.9, 0.5], complex))])
    b = epoch(1, [((0.01, 0), 1, np.array([1.1, 0.5], complex))])
    events = detect_events(a, b)
    assert kinds(events) == ["stability_change"]
    d = events[0].detail
    assert (d["index_before"], d["index_after"], d["crossing"]) == (0, 1, "real")
    assert d["crossed_eigvals"] == [[pytest.approx(1.1), 0.0]]
    assert d["n_attractors"] == [1, 0]
    # a complex pair crossing the unit circle (Hopf-like): index 0 -> 2
    a = epoch(0, [((0, 0), 0, spectrum(0, 2, complex_pair=(0.95, 0.5)))])
    b = epoch(1, [((0, 0), 2, spectrum(2, 2, complex_pair=(1.05, 0.5)))])
    events = detect_events(a, b)
    assert kinds(events) == ["stability_change"]
    assert events[0].detail["crossing"] == "complex"
    assert events[0].detail["index_after"] == 2


def test_lone_births_deaths_and_ghosts():
    a = epoch(0, [((0, 0), 0)], ghosts=[(3, 3)])
    b = epoch(1, [((0, 0), 0), ((-3, 3), 1)], ghosts=[(3, -3)])
    assert sorted(kinds(detect_events(a, b))) == ["birth", "ghost_appeared", "ghost_vanished"]
    ev = {e.kind: e for e in detect_events(a, b)}
    assert ev["birth"].detail["index"] == 1 and ev["birth"].points == ("after/fp1",)
    assert sorted(kinds(detect_events(b, a))) == ["death", "ghost_appeared", "ghost_vanished"]



def test_a_ghost_that_moved_beyond_the_gate_is_the_same_ghost():
    # the gate is 0.3 spread: a ghost that slid by one spread, or by five with no fixed point
    # nearer than that, moved; it did not vanish while another appeared
    a = epoch(0, [((0, 0), 0)], ghosts=[(3, 3)])
    assert detect_events(a, epoch(1, [((0, 0), 0)], ghosts=[(3, 2)])) == []
    lone = epoch(0, [((-10, -10), 0)], ghosts=[(3, 3)])
    far = epoch(1, [((-10, -10), 0)], ghosts=[(8, 3)])
    assert detect_events(lone, far) == [] and detect_events(far, lone) == []
    # with a fixed point nearer to them than they are to each other, it is two events
    # (test_lone_births_deaths_and_ghosts), and so is a ghost left without a partner
    two = epoch(1, [((0, 0), 0)], ghosts=[(3, 2), (-3, -3)])
    assert kinds(detect_events(a, two)) == ["ghost_appeared"]
    assert detect_events(a, two)[0].points == ("after/ghost1",)

def test_attractor_moved_relative_to_spread():
    a = epoch(0, [((0, 0), 0)], scale=2.0)
    small = epoch(1, [((0.1, 0), 0)], scale=2.0)          # 0.05 spread
    big = epoch(1, [((0.5, 0), 0)], scale=2.0)            # 0.25 spread, inside the 0.3 gate
    assert detect_events(a, small) == []
    events = detect_events(a, big)
    assert kinds(events) == ["attractor_moved"]
    assert events[0].detail["displacement"] == pytest.approx(0.25)
    # the same move in a network 10x smaller is beyond the gate (and beyond `jump`): with
    # nothing else between the two places it is still one attractor that moved, not a death and
    # a birth; with a saddle between them it is not
    moved = detect_events(epoch(0, [((0, 0), 0)], scale=0.2), epoch(1, [((0.5, 0), 0)], scale=0.2))
    assert kinds(moved) == ["attractor_moved"] and moved[0].detail["jump"] is True
    assert moved[0].detail["displacement"] == pytest.approx(2.5)
    assert sorted(kinds(detect_events(epoch(0, [((0, 0), 0), ((0.3, 0), 1)], scale=0.2),
                                      epoch(1, [((0.5, 0), 0), ((0.3, 0), 1)], scale=0.2)))) == \
        ["birth", "death"]


def test_connection_change_only_among_surviving_points():
    pts = [((-1, 0), 0), ((0, 0), 1), ((1, 0), 0), ((0, 1), 1)]
    a = epoch(0, pts, edges=[("fp1", "fp0"), ("fp1", "fp2"), ("fp3", "fp0")])
    b = epoch(1, pts, edges=[("fp1", "fp0"), ("fp1", "fp2"), ("fp3", "fp2")])
    events = detect_events(a, b)
    assert kinds(events) == ["connection_change"]
    change = events[0].detail["changes"][0]
    assert change["source_before"] == "fp3"
    assert change["targets_before"] == ["fp0"] and change["targets_after"] == ["fp2"]
    # a connection that changed because its target died belongs to the death event
    c = epoch(1, [((0, 0), 1), ((1, 0), 0), ((0, 1), 1)],
              edges=[("fp0", "fp1"), ("fp2", "fp1")])
    assert sorted(kinds(detect_events(a, c))) == ["death"]


def test_attractor_count_without_point_explanation():
    # a cycle appears (trajectories find no point attractor) while every point persists
    a = epoch(0, [((0, 0), 1), ((2, 0), 0)], edges=[("fp0", "fp1")])
    b = epoch(1, [((0, 0), 1), ((2, 0), 0)], edges=[("fp0", "fp1"), ("fp0", "unresolved")])
    events = detect_events(a, b)
    assert "attractor_count" in kinds(events)
    count = [e for e in events if e.kind == "attractor_count"][0]
    assert count.detail["n_attractors"] == [1, 2]
    assert count.detail["explained_by_point_events"] == 0


def test_kinds_filter_and_option_validation():
    a = epoch(0, [((0, 0), 0)], ghosts=[(3, 3)])
    b = epoch(1, [((0, 0), 0), ((-3, 3), 1)])
    assert kinds(detect_events(a, b, {"kinds": ("birth",)})) == ["birth"]
    with pytest.raises(ValueError, match="unknown kind"):
        EventOptions(kinds=("brith",))
    with pytest.raises(ValueError, match="gate"):
        EventOptions(gate=0)
    with pytest.raises(ValueError, match="unknown event option"):
        EventOptions.make({"gat": 1})


def test_event_serialization_round_trip():
    a = epoch(0, [((-1, 0), 0), ((-0.8, 0), 1), ((1, 0), 0)])
    b = epoch(1, [((1, 0), 0)], ghosts=[(-0.9, 0)])
    e = detect_events(a, b)[0]
    d = e.to_dict()
    back = RestructuringEvent.from_dict(d)
    assert back.kind == e.kind and back.points == e.points
    np.testing.assert_allclose(back.location, e.location)
    assert set(EVENT_KINDS) >= {"saddle_node", "pitchfork", "stability_change", "birth", "death",
                                "ghost_appeared", "ghost_vanished", "attractor_moved",
                                "connection_change", "attractor_count"}


def test_same_index_jump_beyond_the_gate_is_a_move_not_a_death_and_birth():
    a = epoch(0, [((0, 0), 0), ((3, 0), 0), ((1.5, 0), 1)])
    b = epoch(1, [((1.0, 0), 0), ((3, 0), 0), ((1.5, 0.1), 1)])   # moved by 1.0 spread
    events = detect_events(a, b)
    assert kinds(events) == ["attractor_moved"]
    assert events[0].detail["jump"] is True
    assert events[0].detail["displacement"] == pytest.approx(1.0)
    # a saddle that disappears while an attractor appears is no jump (different index)
    c = epoch(1, [((0, 0), 0), ((3, 0), 0), ((0.6, 1.0), 0)])
    assert sorted(kinds(detect_events(a, c))) == ["birth", "death"]


# ----------------------------------------------------------------------------- swept systems
SWEEP_B = [0.40, 0.46, 0.50, 0.52, 0.53, 0.54, 0.55]      # b_c ≈ 0.5328 lies in (0.53, 0.54)


@pytest.mark.parametrize("n_states", [1, 100])
def test_tanh_sweep_gives_exactly_one_saddle_node_at_the_bracket(n_states):
    b_c = systems.tanh_saddle_node_b(2.0)
    series = [(e, systems.tanh_map(2.0, b, n_states=n_states, seed=0))
              for e, b in enumerate(SWEEP_B)]
    result = analyze_series(series, n_initial=128)
    assert result.failed == ()
    assert [e.kind for e in result.events] == ["saddle_node"]
    event = result.events[0]
    assert SWEEP_B[event.epoch_before] < b_c < SWEEP_B[event.epoch_after]
    assert event.detail["direction"] == "vanish"
    assert event.detail["ghost"] is not None            # the ghost that remains, near −0.716
    after = result.result_at(event.epoch_after)
    ghost_y = after.ghosts.x[0] @ series[0][1].Q if n_states > 1 else after.ghosts.x[0]
    assert ghost_y[0] == pytest.approx(-0.716, abs=0.02)
    # read backwards in time, the same checkpoints give one saddle-node where the pair appears
    backwards = [detect_events(b, a) for a, b in zip(result.results[:-1], result.results[1:])]
    flat = [e for events in backwards for e in events]
    assert [e.kind for e in flat] == ["saddle_node"]
    assert flat[0].detail["direction"] == "appear"


def test_pitchfork_hopf_and_period_doubling_series():
    Q = torch.tensor(systems.random_orthogonal(2, 3))

    def pitch(w):
        d = torch.tensor([w, 0.5], dtype=torch.float64)
        return DiscreteDynamics(lambda x, u: torch.tanh((x @ Q) * d) @ Q.T, 2)

    def hopf(rho, theta=0.5):
        c, s = np.cos(theta), np.sin(theta)
        R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64) * rho
        return DiscreteDynamics(lambda x, u: torch.tanh(x @ R.T), 2)

    def period_doubling(w):   # x <- -w tanh(x): eigenvalue -w crosses -1 at w = 1
        return DiscreteDynamics(lambda x, u: torch.cat([-w * torch.tanh(x[:, :1]),
                                                        0.5 * x[:, 1:]], 1), 2)

    res = analyze_series([(e, pitch(w)) for e, w in enumerate([0.8, 0.9, 1.1])], n_initial=128)
    assert [e.kind for e in res.events] == ["pitchfork"]
    assert (res.events[0].epoch_before, res.events[0].epoch_after) == (1, 2)
    assert res.events[0].detail["direction"] == "split"

    res = analyze_series([(e, hopf(r)) for e, r in enumerate([0.8, 0.9, 1.1])], n_initial=128)
    assert [e.kind for e in res.events] == ["stability_change"]
    assert res.events[0].detail["crossing"] == "complex"
    assert (res.events[0].detail["index_before"], res.events[0].detail["index_after"]) == (0, 2)

    res = analyze_series([(e, period_doubling(w)) for e, w in enumerate([0.8, 0.9, 1.1])],
                         n_initial=128)
    assert [e.kind for e in res.events] == ["stability_change"]
    d = res.events[0].detail
    assert d["crossing"] == "real" and d["crossed_eigvals"][0][0] == pytest.approx(-1.1)


def _with_strength(analysis, strength):
    """The epoch with its ghosts given strengths (and classes at the detector's default)."""
    from fixedpoints.ghosts import STRONG_STRENGTH
    s = np.asarray(strength, float)
    analysis.ghosts.strength = s
    analysis.ghosts.strength_class = np.where(s >= STRONG_STRENGTH, "strong", "weak")
    return analysis


def test_ghost_events_carry_strength_and_use_one_threshold():
    a = _with_strength(epoch(0, [((0, 0), 0)], ghosts=[(3, 3)]), [30.0])
    fading = _with_strength(epoch(1, [((0, 0), 0)], ghosts=[(3, 3)]), [3.0])
    # every reported ghost counts by default: the same ghost, weaker, is no event
    assert detect_events(a, fading) == []
    # with a threshold, a ghost that fades below it has vanished, and says how strong it was
    (event,) = detect_events(a, fading, EventOptions(min_ghost_strength=5.0))
    assert event.kind == "ghost_vanished"
    assert event.detail["strength"] == 30.0 and event.detail["strength_class"] == "strong"
    (event,) = detect_events(fading, a, EventOptions(min_ghost_strength=5.0))
    assert event.kind == "ghost_appeared" and event.detail["strength_class"] == "strong"
    # a saddle-node's remnant carries its strength too
    pair = epoch(0, [((1, 0), 0), ((-1, 0), 1), ((3, 3), 0)])  # the attractor at (3, 3) stays
    remnant = _with_strength(epoch(1, [((3, 3), 0)], ghosts=[(0, 0)]), [12.0])
    (event,) = [e for e in detect_events(pair, remnant) if e.kind == "saddle_node"]
    assert event.detail["ghost"] == "ghost0"
    assert event.detail["ghost_strength"] == 12.0 and event.detail["ghost_strength_class"] == "weak"
    # below the threshold the remnant is not a ghost: the pair vanished without one
    (event,) = [e for e in detect_events(pair, remnant, EventOptions(min_ghost_strength=20.0))
                if e.kind == "saddle_node"]
    assert event.detail["ghost"] is None
    with pytest.raises(ValueError, match="min_ghost_strength"):
        EventOptions(min_ghost_strength=-1.0)


# ------------------------------------------------------------------------ each rule on its own
from analysis import events as ev_rules  # noqa: E402


def _state(a, b, **options):
    return ev_rules.rule_state(a, b, EventOptions(**options))


def test_rules_are_listed_in_their_order_of_application():
    names = [r.__name__ for r in ev_rules.RULES]
    assert names[0] == "rule_moves" and names[-1] == "rule_attractor_count"
    assert names.index("rule_saddle_node") < names.index("rule_birth_death")


def test_rule_moves_pairs_a_stable_point_and_a_saddle_that_both_moved_far():
    # a stable point and its saddle both moved by 1.0 spread (twice the gate): a saddle-node
    # vanishing and another appearing would be wrong; so would two deaths and two births
    a = epoch(0, [((0, 0), 0), ((0.6, 0), 1), ((3, 0), 0)])
    b = epoch(1, [((0, 1), 0), ((0.6, 1), 1), ((3, 0), 0)])
    st = _state(a, b)
    assert st.dead == {0, 1} and st.born == {0, 1}
    ev_rules.rule_moves(st)
    assert st.dead == set() and st.born == set()
    assert sorted((i, j) for i, j, _ in st.moves) == [(0, 0), (1, 1)]
    assert [d for _, _, d in sorted(st.moves)] == pytest.approx([1.0, 1.0])
    events = detect_events(a, b)
    assert kinds(events) == ["attractor_moved"]
    assert events[0].detail == {"displacement": pytest.approx(1.0), "jump": True}


def test_rule_moves_needs_mutual_nearest_points_of_the_same_index():
    # the new stable point is nearer to another old stable point, which did not vanish: the old
    # one at x = 0 is not its nearest, so no move (a death and a birth)
    a = epoch(0, [((0, 0), 0), ((2.2, 0), 0)])
    b = epoch(1, [((1.6, 0), 0), ((2.2, 0), 0)])
    st = _state(a, b, gate=0.5)
    ev_rules.rule_moves(st)
    assert st.moves == [] and st.dead == {0} and st.born == {0}


def test_rule_saddle_node_alone_consumes_the_pair_and_the_ghost():
    a = epoch(0, [((-1, 0), 0), ((-0.8, 0), 1), ((1, 0), 0)])
    b = epoch(1, [((1, 0), 0)], ghosts=[(-0.9, 0)])
    st = _state(a, b)
    ev_rules.rule_saddle_node(st)
    assert [e.kind for e in st.events] == ["saddle_node"]
    assert st.dead == set() and st.ghost_new == set()


def test_rule_stability_change_alone():
    a = epoch(0, [((0, 0), 0)])
    b = epoch(1, [((0.01, 0), 1)])
    st = _state(a, b)
    assert st.changed_index == {0: 0}
    ev_rules.rule_stability_change(st)
    assert [e.detail["index_after"] for e in st.events] == [1]


def test_rule_birth_death_and_rule_ghosts_report_only_what_is_left():
    a = epoch(0, [((0, 0), 0)], ghosts=[(5, 5)])
    b = epoch(1, [((0, 0), 0), ((3, 3), 1)], ghosts=[(-5, -5)])
    st = _state(a, b)
    ev_rules.rule_birth_death(st)
    ev_rules.rule_ghosts(st)
    assert [e.kind for e in st.events] == ["birth", "ghost_appeared", "ghost_vanished"]
    st = _state(a, b)
    st.born.clear()
    ev_rules.rule_birth_death(st)
    assert st.events == []


def test_rule_attractor_count_attaches_the_change_to_the_explaining_event():
    a = epoch(0, [((0, 0), 0)])
    b = epoch(1, [((0, 0), 0), ((3, 3), 0)])
    st = _state(a, b)
    ev_rules.rule_birth_death(st)
    ev_rules.rule_attractor_count(st)
    assert [e.kind for e in st.events] == ["birth"]
    assert st.events[0].detail["n_attractors"] == [1, 2]
    st = _state(a, b)           # nothing explains it: an attractor_count event of its own
    ev_rules.rule_attractor_count(st)
    assert [e.kind for e in st.events] == ["attractor_count"]


def _ghost_event(kind, before, after, ghost):
    side = "after" if kind == "ghost_appeared" else "before"
    return RestructuringEvent(before, after, kind, (f"{side}/{ghost}",), np.zeros(2), {})


def test_a_ghost_seen_at_one_checkpoint_is_a_transient_not_two_events():
    events = [
        _ghost_event("ghost_appeared", 0, 10, "ghost0"),      # seen at 10 only
        _ghost_event("ghost_vanished", 10, 20, "ghost0"),
        _ghost_event("ghost_appeared", 10, 20, "ghost1"),     # seen at 20 and 30: persists
        _ghost_event("ghost_vanished", 30, 40, "ghost1"),
        _ghost_event("ghost_vanished", 0, 10, "ghost2"),      # at the first checkpoint only
        RestructuringEvent(10, 20, "birth", ("after/fp0",), np.zeros(2), {}),
    ]
    kept, transients = ev_rules.split_transients(events)
    assert [(e.kind, e.epoch_before) for e in kept] == [
        ("ghost_appeared", 10), ("ghost_vanished", 30), ("birth", 10)]
    assert [(t.kind, t.epoch_before, t.epoch_after, t.detail["ghost"]) for t in transients] == [
        ("transient", 0, 0, "ghost2"), ("transient", 10, 10, "ghost0")]
    assert transients[1].detail["parts"] == ["ghost_vanished", "ghost_appeared"]
    # the remnant of a saddle-node, gone one checkpoint later: the saddle-node stays
    fold = RestructuringEvent(0, 10, "saddle_node", ("before/fp0", "before/fp1", "after/ghost0"),
                              np.zeros(2), {"direction": "vanish"})
    kept, transients = ev_rules.split_transients(
        [fold, _ghost_event("ghost_vanished", 10, 20, "ghost0"),
         RestructuringEvent(20, 30, "birth", ("after/fp0",), np.zeros(2), {})])
    assert [e.kind for e in kept] == ["saddle_node", "birth"]
    assert [(t.epoch_before, t.detail["parts"]) for t in transients] == [(10, ["ghost_vanished"])]
    # ghosts that appear and stay while nothing else happens up to the end of the series are
    # events: the series' own last checkpoint bounds it, not the last event's
    appear = [_ghost_event("ghost_appeared", 600, 620, "ghost0"),
              _ghost_event("ghost_appeared", 600, 620, "ghost1")]
    kept, transients = ev_rules.split_transients(appear, epochs=range(0, 720, 20))
    assert [e.kind for e in kept] == ["ghost_appeared"] * 2 and transients == []
    kept, transients = ev_rules.split_transients(appear, epochs=[0, 600, 620])
    assert kept == [] and len(transients) == 2   # seen at the last checkpoint only


def test_events_read_as_sentences_with_their_bracket_and_lead():
    from analysis.events import describe_event, lead_phrase

    e = RestructuringEvent(850, 900, "saddle_node", ("before/fp0", "before/fp1"), None,
                           {"direction": "vanish", "kinds": ["stable", "saddle"],
                            "indices": [0, 1], "ghost": "ghost0"})
    assert describe_event(e, 978) == ("Between epochs 850 and 900, a stable point and a saddle "
                                      "collided and vanished, leaving a ghost (78 to 128 epochs "
                                      "before the drop).")
    assert describe_event(e).endswith("leaving a ghost.")
    assert lead_phrase(850, 900, 880) == "20 epochs after to 30 before the drop"
    assert lead_phrase(850, 900, 800) == "50 to 100 epochs after the drop"
    assert lead_phrase(850, 900, 978, alpha=0.5) == "103 epochs before the drop"
    born = RestructuringEvent(0, 10, "birth", (), None, {"kind": "saddle", "index": 1})
    assert "a saddle was born alone" in describe_event(born, None)
