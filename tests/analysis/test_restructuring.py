"""The restructuring curve: parts measured against hand-computed values; episodes and leads."""
import numpy as np
import pytest

from analysis import analyze_series
from analysis.events import RestructuringEvent
from analysis.restructuring import group_episodes, leading_margin, restructuring_curve
from fixedpoints import systems

from .test_events import epoch


def test_leading_margin_discrete_and_continuous():
    eig = np.array([[0.5, 2.0], [0.9j, 0.1]])
    np.testing.assert_allclose(leading_margin(eig, "discrete"), [np.log(2.0), np.log(0.9)])
    np.testing.assert_allclose(leading_margin(np.array([[-1.0, 0.5 + 2j]]), "continuous"), [0.5])


def test_parts_of_the_rate_on_hand_made_epochs():
    # same two attractors, one moved by 0.2 spread; spectra: index 0 with |λ| = 0.5 on both
    a = epoch(0, [((0, 0), 0), ((2, 0), 0)])
    b = epoch(10, [((0.2, 0), 0), ((2, 0), 0)])
    c = epoch(15, [((0.2, 0), 0), ((2, 0), 0), ((4, 4), 1)])     # a saddle is born
    born = RestructuringEvent(10, 15, "birth", ("after/fp2",), np.zeros(2), {})
    moved = RestructuringEvent(0, 10, "attractor_moved", (), np.zeros(2), {})
    curve = restructuring_curve([a, b, c], [moved, born], drop_epoch=20)
    first, second = curve.intervals
    assert first.topology == 0 and first.displacement == pytest.approx(0.1)   # mean of 0.2, 0
    assert first.eigenvalue == pytest.approx(0.0)
    assert first.rate == pytest.approx(0.1 / 10)                             # per epoch
    assert second.topology == 1 and second.displacement == pytest.approx(0.0)
    assert second.rate == pytest.approx(1 / 5)
    (episode,) = curve.episodes          # two consecutive intervals with events: one episode
    assert (episode.epoch_start, episode.epoch_end, episode.first_epoch) == (0, 15, 10)
    assert episode.lead == 10 and episode.lead_bracket == (10, 20)
    assert episode.kinds == {"attractor_moved": 1, "birth": 1}
    summary = curve.to_dict()
    assert summary["first_episode_lead"] == 10 and len(summary["curve"]) == 2


def test_the_eigenvalue_part_sees_a_saddle_grow_more_unstable_with_the_same_points():
    a = epoch(0, [((0, 0), 1, np.array([1.5, 0.5]))])
    b = epoch(1, [((0, 0), 1, np.array([3.0, 0.5]))])
    (interval,) = restructuring_curve([a, b], []).intervals
    mu_a, mu_b = np.log(1.5), np.log(3.0)
    assert interval.topology == 0 and interval.displacement == 0
    assert interval.eigenvalue == pytest.approx((mu_b - mu_a) / mu_b)


def test_episodes_are_runs_of_intervals_with_events_and_leads_are_signed():
    from analysis.restructuring import IntervalRate

    def iv(a, b, n):
        return IntervalRate(a, b, n, 0.0, 0.0, n / (b - a), n, 1)

    intervals = [iv(0, 10, 1), iv(10, 20, 2), iv(20, 30, 0), iv(30, 40, 1)]
    episodes = group_episodes(intervals, [], drop_epoch=25)
    assert [(e.epoch_start, e.epoch_end, e.n_events) for e in episodes] == [(0, 20, 3),
                                                                           (30, 40, 1)]
    assert [e.lead for e in episodes] == [15, -15]        # after the drop: negative


def test_a_series_summary_carries_the_curve_and_the_first_episode():
    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.46, 0.52, 0.54])]
    result = analyze_series(series, log=([0, 1, 2, 3], [1.0, 1.0, 1.0, 0.1]))
    rs = result.summary()["restructuring"]
    assert [c["epoch_after"] for c in rs["curve"]] == [1, 2, 3]
    assert rs["first_episode"]["epoch_start"] == 2 and rs["first_episode"]["epoch_end"] == 3
    assert rs["curve"][2]["topology"] >= 1
