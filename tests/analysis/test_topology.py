"""Topology graphs: points as nodes, where unstable directions and ghost outflows lead."""
from types import SimpleNamespace

import numpy as np

from analysis.topology import Signature, Topology, build_topology, same_topology
from fixedpoints import FixedPoints, classify, linearize, systems
from fixedpoints.results import FinderStatus


def exact_points(dynamics, x, scale=1.0):
    """FixedPoints built from known locations (no search), with spectra and kinds."""
    lin = linearize(dynamics, x)
    speed = np.zeros(len(x))
    kind, n_unstable = classify(dynamics, lin.eigvals, speed, q_fixed=1e-20)
    return FixedPoints(x=np.asarray(x, float), speed=speed, eigvals=lin.eigvals, kind=kind,
                       n_unstable=n_unstable, time=dynamics.time,
                       status=FinderStatus.CONVERGED, scale=scale)


def flipflop(n_states=12, seed=0, n_bits=3):
    dyn = systems.rotated_flipflop(n_states, n_bits=n_bits, seed=seed)
    ref = systems.flipflop_fixed_points(dyn, n_bits=n_bits)
    return dyn, exact_points(dyn, ref.x, scale=1.0)


def test_flipflop_signature_and_saddle_connections():
    dyn, fp = flipflop()
    topo = build_topology(dyn, fp, scale=1.0)
    sig = topo.signature()
    assert sig.counts["stable"] == 8 and sig.counts["saddle"] == 19
    assert sig.index_counts == {0: 8, 1: 12, 2: 6, 3: 1}
    assert sig.n_attractors == 8
    g = topo.graph
    y = fp.x @ dyn.Q                                   # rotated coordinates: ±y* or 0
    sign = np.sign(np.round(y[:, :3], 6))
    for i in np.flatnonzero(fp.n_unstable == 1):
        # the zero coordinate is the unstable one: its branches go to the two corners that
        # differ from the saddle only there
        expected = set()
        for s in (-1, 1):
            corner = sign[i].copy()
            corner[sign[i] == 0] = s
            j = int(np.flatnonzero(np.all(sign == corner, axis=1))[0])
            expected.add(f"fp{j}")
        assert set(g.successors(f"fp{i}")) == expected
        assert all(g.edges[f"fp{i}", t]["branches"] == 1 for t in expected)
    # every unstable branch of every point ends on an attractor (none unresolved or escaped)
    assert topo.info["n_unresolved"] == 0 and topo.info["n_escaped"] == 0
    assert all(g.nodes[t]["kind"] == "stable" for _, t in g.edges)
    # branches: 12 saddles x 2 + 6 x 4 + 1 x 6 trajectories
    assert topo.info["n_trajectories"] == 54


def test_isomorphism_ignores_rotation_and_labels_but_not_structure():
    dyn_a, fp_a = flipflop(seed=0)
    dyn_b, fp_b = flipflop(seed=5)
    perm = np.random.default_rng(1).permutation(len(fp_b))
    ta = build_topology(dyn_a, fp_a, scale=1.0)
    tb = build_topology(dyn_b, fp_b[perm], scale=1.0)
    assert ta.signature() == tb.signature()
    assert same_topology(ta, tb)
    dyn_c, fp_c = flipflop(n_bits=2)
    tc = build_topology(dyn_c, fp_c, scale=1.0)
    assert tc.signature().n_attractors == 4
    assert not same_topology(ta, tc)
    # same points, one connection rerouted: signatures equal, graphs not isomorphic
    src, dst = ta.edge_source.copy(), ta.edge_target.copy()
    stable_rows = np.flatnonzero(ta.node_kind == "stable")
    k = int(np.flatnonzero(ta.node_index[src] == 1)[0])      # a robust edge (index-1 source)
    dst[k] = next(r for r in stable_rows if r != dst[k] and (src[k], r) not in zip(src, dst))
    rerouted = Topology(ta.node_id, ta.node_kind, ta.node_index, ta.node_ref, ta.node_x,
                        src, dst, ta.edge_branches)
    assert rerouted.signature().points_equal(ta.signature())
    assert not same_topology(ta, rerouted)
    assert same_topology(ta, rerouted, edges=False)


def test_tanh_map_saddle_branches_and_ghost_outflow():
    b = 0.40
    dyn = systems.tanh_map(2.0, b, n_states=1)
    roots = systems.tanh_map_fixed_points(2.0, b)
    fp = exact_points(dyn, roots[:, None], scale=0.8)
    topo = build_topology(dyn, fp, scale=0.8)
    saddle = int(np.flatnonzero(fp.n_unstable == 1)[0])
    stables = {f"fp{i}" for i in np.flatnonzero(fp.n_unstable == 0)}
    assert set(topo.graph.successors(f"fp{saddle}")) == stables

    # past the saddle-node: one stable point and a ghost near -0.716 whose outflow reaches it
    dyn = systems.tanh_map(2.0, 0.55, n_states=1)
    roots = systems.tanh_map_fixed_points(2.0, 0.55)
    assert len(roots) == 1
    fp = exact_points(dyn, roots[:, None], scale=0.8)
    ghosts = SimpleNamespace(x=np.array([[-0.716]]), n_unstable=np.array([0]))
    topo = build_topology(dyn, fp, ghosts, scale=0.8)
    assert topo.edges() == [("ghost0", "fp0")]
    assert topo.signature().counts["ghost"] == 1


def test_escape_and_unresolved_sinks():
    # x <- 2x: the origin is a repeller and every branch leaves
    dyn = systems.linear(np.array([[2.0]]), time="discrete")
    fp = exact_points(dyn, np.zeros((1, 1)))
    topo = build_topology(dyn, fp, scale=1.0)
    assert topo.edges() == [("fp0", "escape")]
    assert topo.info["n_escaped"] == 2
    # a rotation by 90 degrees scaled outward then saturated: a cycle, no attractor point
    import torch
    from fixedpoints import DiscreteDynamics

    c, s = np.cos(0.3), np.sin(0.3)
    R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64) * 1.5
    dyn = DiscreteDynamics(lambda x, u: torch.tanh(x @ R.T), 2)
    fp = exact_points(dyn, np.zeros((1, 2)))
    topo = build_topology(dyn, fp, scale=1.0, max_steps=300)
    assert fp.n_unstable[0] == 2
    assert topo.edges() == [("fp0", "unresolved")]
    assert topo.ends_unresolved()
    assert topo.signature().n_attractors == 1   # the cycle, seen as the unresolved sink


def test_topology_round_trips_through_arrays():
    dyn, fp = flipflop(n_bits=2)
    topo = build_topology(dyn, fp, scale=1.0)
    back = Topology.from_arrays(topo.to_arrays())
    assert back.edges() == topo.edges()
    assert back.signature() == topo.signature()
    assert Signature.from_dict(topo.signature().to_dict()) == topo.signature()
    assert "attractors=4" in str(topo.signature())
