"""Limit cycles as topology nodes and the Hopf / cycle birth-death events between epochs."""
import numpy as np
import torch

from analysis.epoch import EpochSettings, analyze_dynamics
from analysis.events import detect_events
from fixedpoints import ContinuousDynamics


def hopf_flow(mu, omega=2.0, n=6):
    """Supercritical Hopf normal form in the first two coordinates, −y in the others."""
    def field(x, u):
        a, b = x[:, :1], x[:, 1:2]
        r2 = a * a + b * b
        return torch.cat([mu * a - omega * b - a * r2, omega * a + mu * b - b * r2, -x[:, 2:]],
                         dim=1)
    return ContinuousDynamics(field, n, dt=0.05, name=f"hopf(mu={mu})")


def analyze(mu, epoch):
    settings = EpochSettings(scale=1.0)
    return analyze_dynamics(hopf_flow(mu), settings, epoch=epoch)


def test_stable_cycle_is_an_attractor_node_and_hopf_event_links_the_focus():
    before, after = analyze(-0.3, 0), analyze(0.3, 1)
    assert "limit_cycle" not in before.topology.node_kind
    kinds = list(after.topology.node_kind)
    assert kinds.count("limit_cycle") == 1
    sig = after.topology.signature()
    assert sig.counts["limit_cycle"] == 1
    assert "cycle0" in after.topology.attractors()
    period = after.topology.info["cycles"][0]["period"]
    assert abs(period - np.pi) < 1e-4   # 2π/ω (RK4 at dt = 0.05)
    assert not after.topology.ends_unresolved()
    # the focus at 0 loses stability (index 0 -> 2) and the cycle is born around it
    events = detect_events(before, after)
    hopf = [e for e in events if e.kind == "hopf"]
    assert len(hopf) == 1 and hopf[0].detail["direction"] == "create"
    focus = hopf[0].detail["focus"]
    assert (focus["index_before"], focus["index_after"]) == (0, 2)
    back = [e for e in detect_events(after, before) if e.kind == "hopf"]
    assert len(back) == 1 and back[0].detail["direction"] == "collapse"


def test_cycle_birth_without_a_focus_nearby():
    from types import SimpleNamespace

    from analysis.events import cycle_events
    after = analyze(0.3, 1)
    empty = SimpleNamespace(epoch=0, topology=None, fixed_points=after.fixed_points[:0],
                            ghosts=None, scale=1.0)
    events = cycle_events(empty, after, 0.5)
    assert [e.kind for e in events] == ["cycle_birth"]
    assert events[0].points == ("after/cycle0",)
    assert [e.kind for e in cycle_events(after, empty, 0.5)] == ["cycle_death"]


def test_mechanism_labels():
    from types import SimpleNamespace

    from analysis.mechanism import MECHANISMS, mechanism_of
    from analysis.topology import build_topology
    from fixedpoints import find_fixed_points
    from fixedpoints.systems import line_attractor, rotated_flipflop, saddle_node
    # an oscillation: the Hopf normal form past the bifurcation
    after = analyze(0.3, 1)
    assert mechanism_of(after) == "limit_cycle"
    assert after.summary()["mechanism"] == "limit_cycle"
    # one stable focus: nothing holds state
    assert mechanism_of(analyze(-0.3, 0)) == "none"

    def epoch_of(dyn, ghosts=None):
        x0 = np.random.default_rng(0).normal(0, 1, (128, dyn.n_states))
        fp = find_fixed_points(dyn, x0)
        return SimpleNamespace(fixed_points=fp, ghosts=ghosts,
                               topology=build_topology(dyn, fp, ghosts))
    # 8 stable corners of the 3-bit flip-flop
    assert mechanism_of(epoch_of(rotated_flipflop(8))) == "fixed_point_attractors"
    # a line attractor
    assert mechanism_of(epoch_of(line_attractor(4))) == "slow_manifold"
    # past the saddle-node: only a ghost
    ghost = SimpleNamespace(x=np.zeros((1, 1)), n_unstable=np.zeros(1, int))
    assert mechanism_of(epoch_of(saddle_node(0.01), ghost)) == "ghost"
    assert set(MECHANISMS) == {"limit_cycle", "slow_manifold", "fixed_point_attractors",
                               "ghost", "none"}


def test_timeline_draws_one_band_per_run_of_a_mechanism():
    from analysis.plotting import close_figure, plot_timeline
    art = plot_timeline([0, 1, 2, 3], [1.0, 0.9, 0.5, 0.1], {"stable": [1, 1, 2, 2]},
                        mechanisms=["none", "none", "fixed_point_attractors",
                                    "fixed_point_attractors"])
    assert [label for label, _ in art["mechanisms"]] == ["none", "fixed_point_attractors"]
    close_figure(art["figure"])


def test_period_doubling_orbit_is_attached_to_its_stability_change():
    from analysis import analyze_series
    from fixedpoints import DiscreteDynamics

    def flip(w):   # x <- -w tanh(x): the eigenvalue -w crosses -1 at w = 1, a 2-cycle is born
        return DiscreteDynamics(lambda x, u: torch.cat([-w * torch.tanh(x[:, :1]),
                                                        0.5 * x[:, 1:]], 1), 2)
    res = analyze_series([(e, flip(w)) for e, w in enumerate([0.9, 1.1])], n_initial=64)
    assert [e.kind for e in res.events] == ["stability_change"]
    d = res.events[0].detail
    assert d["bifurcation"] == "period_doubling" and d["cycle"]["period"] == 2.0
    assert res.events[0].points[-1] == "after/cycle0"
    assert res.results[1].summary()["mechanism"] == "limit_cycle"
