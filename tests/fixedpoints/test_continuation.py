"""Pseudo-arclength continuation: folds of the tanh map and the saddle-node normal form, Hopf."""
import numpy as np
import pytest
import torch

from fixedpoints import ContinuousDynamics, DiscreteDynamics
from fixedpoints.continuation import (ContinuationOptions, continue_fixed_points,
                                      parse_input_path)
from fixedpoints.systems import random_orthogonal, tanh_map_fixed_points, tanh_saddle_node_b


def tanh_input_map(w=2.0, n=1, seed=0):
    """y_0 ← tanh(w y_0 + u), the other coordinates contract by 0.5 (rotated by Q)."""
    Q = torch.as_tensor(random_orthogonal(n, seed)) if n > 1 else torch.eye(1, dtype=torch.float64)

    def step(x, u):
        y = x @ Q
        y = torch.cat([torch.tanh(w * y[:, :1] + u[:, :1]), 0.5 * y[:, 1:]], dim=1)
        return y @ Q.T
    dyn = DiscreteDynamics(step, n, n_inputs=1)
    dyn.Q = Q.numpy()
    return dyn


@pytest.mark.parametrize("n", [1, 6])
def test_tanh_map_fold_at_b_0_5328(n):
    dyn = tanh_input_map(2.0, n)
    roots = tanh_map_fixed_points(2.0, 0.0)          # three fixed points at b = 0
    x0 = np.zeros((3, n))
    x0[:, 0] = roots
    x0 = x0 @ dyn.Q.T
    res = continue_fixed_points(dyn, [0.0], [1.0], x0)
    b_c = tanh_saddle_node_b(2.0)
    folds = res.folds()
    assert len(folds) == 1                            # the lower node and the saddle collide
    assert abs(folds[0].input[0] - b_c) < 1e-6
    assert abs(folds[0].x @ dyn.Q[:, 0] - (-np.sqrt(0.5))) < 1e-4
    assert np.abs(np.abs(folds[0].eigvals).max() - 1.0) < 1e-4   # the map's eigenvalue 1
    upper = [br for br in res.branches if br.x[0] @ dyn.Q[:, 0] > 0.5][0]
    assert upper.info["stopped"] == "left the path" and upper.s[-1] >= 1.0
    assert upper.stable.all() and not upper.bifurcations
    assert not res.hopf_points()


def test_saddle_node_normal_form_fold_at_r_0():
    dyn = ContinuousDynamics(lambda x, u: u[:, :1] + x * x, 1, n_inputs=1)
    res = continue_fixed_points(dyn, [-1.0], [0.5], np.array([[-1.0], [1.0]]),
                                ContinuationOptions(step=0.01))
    folds = res.folds()
    assert len(folds) == 1
    r = folds[0].input[0]
    assert abs(r) < 1e-8 and abs(folds[0].x[0]) < 1e-4
    lower = res.branches[0]
    assert lower.n_unstable[0] == 0 and lower.n_unstable[-1] == 1  # it turns into the saddle


def test_hopf_point_of_the_hopf_normal_form():
    def field(x, u):
        mu = u[:, :1]
        a, b = x[:, :1], x[:, 1:2]
        r2 = a * a + b * b
        return torch.cat([mu * a - 2 * b - a * r2, 2 * a + mu * b - b * r2, -x[:, 2:]], dim=1)
    dyn = ContinuousDynamics(field, 3, n_inputs=1)
    res = continue_fixed_points(dyn, [-0.5], [0.5], np.zeros((1, 3)))
    hopf = res.hopf_points()
    assert len(hopf) == 1 and not res.folds()
    assert abs(hopf[0].input[0]) < 1e-9
    assert np.sort(np.abs(hopf[0].eigvals.imag))[-1] == pytest.approx(2.0, abs=1e-8)
    br = res.branches[0]
    assert br.n_unstable[0] == 0 and br.n_unstable[-1] == 2


def test_parse_input_path():
    a, b, n = parse_input_path("0,1:1,-1:20", 2)
    assert a.tolist() == [0.0, 1.0] and b.tolist() == [1.0, -1.0] and n == 20
    for bad, msg in (("0:1", "A:B:n"), ("0:x:3", "not a number"), ("0,1:1:3", "takes 1"),
                     ("1:1:5", "same input"), ("0:1:1", "at least 2")):
        with pytest.raises(ValueError, match=msg):
            parse_input_path(bad, 1)


def test_bifurcation_diagram_of_a_model_writes_plot_and_json(tmp_path):
    import json

    from analysis.bifurcation import bifurcation_diagram
    from analysis.epoch import EpochSettings
    dyn = tanh_input_map(2.0, 3)
    diagram = bifurcation_diagram(dyn, "0:1:40", settings=EpochSettings(n_initial=64),
                                  out=tmp_path)
    folds = diagram.continuation.folds()
    assert len(folds) == 1 and abs(folds[0].input[0] - tanh_saddle_node_b(2.0)) < 1e-6
    data = json.loads((tmp_path / "bifurcation.json").read_text())
    assert [b["kind"] for b in data["bifurcations"]] == ["fold"]
    assert (tmp_path / "bifurcation.png").stat().st_size > 1000
    art = diagram.plot()
    assert art["stable"] and art["unstable"] and art["fold"] is not None
    from analysis.plotting import close_figure
    close_figure(art["ax"].figure)


def test_cli_find_input_path_reports_the_fold(tmp_path, capsys):
    import json

    from analysis.cli import main
    from checkpoints.models import LeakyRNN
    model = LeakyRNN(1, 1, 1, alpha=0.5)   # r <- r/2 + tanh(2 r + u)/2: fixed points of tanh map
    with torch.no_grad():
        model.W_rec.fill_(2.0)
        model.W_in.weight.fill_(1.0)
        model.W_in.bias.zero_()
    path = tmp_path / "model_epoch0.pt"
    torch.save(model.state_dict(), path)
    code = main(["find", str(path), "--input-path", "0:1:40", "--out", str(tmp_path / "o"),
                 "--json", "-q"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    folds = [b for b in payload["input_path"]["bifurcations"] if b["kind"] == "fold"]
    assert len(folds) == 1 and abs(folds[0]["input"][0] - tanh_saddle_node_b(2.0)) < 1e-6
    assert (tmp_path / "o" / "bifurcation.png").exists()
    assert main(["find", str(path), "--input-path", "0:1", "-q"]) == 2
