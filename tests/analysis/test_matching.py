"""Matching points between checkpoints and following them across epochs."""
import numpy as np
import pytest

from analysis.matching import build_tracks, match_points, state_spread


def test_state_spread_is_rms_distance_to_centroid():
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert state_spread(x) == pytest.approx(1.0)
    assert state_spread(x * 7 + 3) == pytest.approx(7.0)
    assert state_spread(x[:1]) == 0.0


def test_permuted_and_jittered_points_match_back():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 5))
    perm = rng.permutation(30)
    b = a[perm] + 1e-3 * rng.standard_normal((30, 5))
    m = match_points(a, b, gate=0.1)
    assert len(m.pairs) == 30 and len(m.unmatched_a) == 0 and len(m.unmatched_b) == 0
    # a[i] went to b[j] with perm[j] == i
    for i, j in m.pairs:
        assert perm[j] == i
    assert np.all(m.distance < 0.01)


def test_gate_splits_far_pairs_into_death_and_birth():
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.02, 0.0], [5.0, 5.0]])
    m = match_points(a, b, gate=0.5)
    assert m.pairs.tolist() == [[0, 0]]
    assert m.unmatched_a.tolist() == [1]
    assert m.unmatched_b.tolist() == [1]


def test_a_far_pair_never_blocks_a_near_one():
    # without gating inside the assignment, pairing a0-b1 and a1-b0 (total 2.2) would beat
    # a0-b0 + a1-b1 only if both were allowed; here a1-b1 is beyond the gate.
    a = np.array([[0.0], [1.0]])
    b = np.array([[0.9], [10.0]])
    m = match_points(a, b, gate=0.5)
    assert m.pairs.tolist() == [[1, 0]]
    assert m.unmatched_a.tolist() == [0] and m.unmatched_b.tolist() == [1]


def test_empty_sets_and_bad_input():
    m = match_points(np.zeros((0, 3)), np.ones((2, 3)), gate=1.0)
    assert len(m.pairs) == 0 and m.unmatched_b.tolist() == [0, 1]
    with pytest.raises(ValueError, match="gate"):
        match_points(np.zeros((1, 2)), np.zeros((1, 2)), gate=-1.0)
    with pytest.raises(ValueError, match="shape"):
        match_points(np.zeros((1, 2)), np.zeros((1, 3)), gate=1.0)


def test_tracks_follow_points_and_break_at_gaps():
    epochs = [0, 1, 2]
    x0 = np.array([[0.0], [1.0]])
    x1 = np.array([[1.01], [0.01], [3.0]])      # reordered, plus a new point
    x2 = np.array([[0.02], [3.01]])              # the point near 1 died

    def kinds(k):
        return np.array(["stable"] * k)

    def idx(k):
        return np.zeros(k, int)

    points = [(x0, kinds(2), idx(2)), (x1, kinds(3), idx(3)), (x2, kinds(2), idx(2))]
    matchings = [match_points(x0, x1, 0.2), match_points(x1, x2, 0.2)]
    tracks = build_tracks(epochs, points, matchings)
    by_start = {(t.epochs[0], round(float(t.x[0, 0]), 2)): t for t in tracks}
    assert by_start[(0, 0.0)].epochs == (0, 1, 2)
    assert by_start[(0, 1.0)].epochs == (0, 1)
    assert by_start[(1, 3.0)].epochs == (1, 2)
    assert len(tracks) == 3
    with pytest.raises(ValueError, match="matchings"):
        build_tracks(epochs, points, matchings[:1])
