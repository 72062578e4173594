"""Input conditions (analysis.conditions) and every checkpoint along an input path
(analysis.input_path), from Python and through `ghostscope analyze`."""
import csv
import io
import json

import numpy as np
import pytest
import torch

from analysis.api import SeriesAnalysis, analyze_series
from analysis.cli import main
from analysis.conditions import (ConditionsAnalysis, analyze_conditions, check_conditions,
                                 read_conditions)
from analysis.input_path import analyze_input_path
from fixedpoints import ContinuousDynamics, DiscreteDynamics
from fixedpoints.systems import random_orthogonal, tanh_saddle_node_b

FAST = dict(n_initial=32, ghosts=False)


def tanh_input_map(w: float, b: float = 0.0, n: int = 1) -> DiscreteDynamics:
    """``y_0 <- tanh(w y_0 + b + u)``, the other coordinates contract by 0.5 (rotated)."""
    Q = torch.as_tensor(random_orthogonal(n, 0)) if n > 1 else torch.eye(1, dtype=torch.float64)

    def step(x, u):
        y = x @ Q
        y = torch.cat([torch.tanh(w * y[:, :1] + b + u[:, :1]), 0.5 * y[:, 1:]], dim=1)
        return y @ Q.T
    return DiscreteDynamics(step, n, n_inputs=1, name=f"tanh(w={w}, b={b})")


def _series():
    """The fold of x <- tanh(2x + b + u) (at b + u = 0.5328) crossed between epochs 2 and 3
    at u = 0, between 0 and 1 at u = 0.1, never at u = -0.3."""
    return [(e, tanh_input_map(2.0, b, 2)) for e, b in enumerate([0.40, 0.46, 0.52, 0.54])]


# ------------------------------------------------------------------------------ reading inputs
def test_read_conditions_from_a_dict_and_a_file(tmp_path):
    assert read_conditions({"delay": [0], "cue+": [1], "cue-": -1}) == {
        "delay": (0.0,), "cue+": (1.0,), "cue-": (-1.0,)}
    path = tmp_path / "inputs.json"
    path.write_text('{"b": [0, 1.5], "a": [2, 3]}')
    assert list(read_conditions(path).items()) == [("b", (0.0, 1.5)), ("a", (2.0, 3.0))]


@pytest.mark.parametrize("text, needles", [
    ('{"a/b": [0]}', ["'a/b'", "safe file name"]),
    ('{"..": [0]}', ["'..'", "safe file name"]),
    ('{"": [0]}', ["''", "safe file name"]),
    ('{"nul": [0]}', ["'nul'", "reserved"]),
    ('{"Cue": [0], "cue": [1]}', ["'Cue' and 'cue'", "rename one"]),
    ('{"cue": ["x"]}', ["'cue'", "not a list of numbers"]),
    ('{"cue": []}', ["'cue'", "not a list of numbers"]),
    ('{"cue": [[0]]}', ["'cue'", "not a list of numbers"]),
    ('{"cue": [true]}', ["'cue'", "not a list of numbers"]),
    ('{"cue": [NaN]}', ["'cue'", "NaN or inf"]),
    ('{}', ["names no condition"]),
    ('[[0], [1]]', ["not an object naming the conditions"]),
    ('{"cue": [0]', ["not readable JSON"]),
])
def test_bad_inputs_files_fail_in_one_line_naming_file_condition_and_fix(tmp_path, text,
                                                                         needles):
    path = tmp_path / "inputs.json"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_conditions(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for needle in needles:
        assert needle in message
    assert any(w in message for w in ("use ", "give ", "pick ", "rename", "write ", "pass "))


def test_a_vector_of_the_wrong_size_names_the_condition_and_the_size():
    with pytest.raises(ValueError, match=r"^inputs=: condition 'cue\+' has 2 value\(s\) but the "
                                         r"model takes 1 input\(s\); give each condition 1 "):
        check_conditions({"delay": (0.0,), "cue+": (1.0, 2.0)}, 1)
    with pytest.raises(ValueError, match="takes no input"):
        check_conditions({"a": (0.0,)}, 0)
    with pytest.raises(ValueError, match=r"condition 'cue\+' has 2 value"):
        analyze_conditions(_series(), {"delay": [0], "cue+": [1, 2]}, **FAST)
    with pytest.raises(ValueError, match="analyze_conditions"):
        analyze_series(_series(), inputs={"a": [0]})


# ------------------------------------------------------------------------------ per condition
def test_each_condition_equals_a_single_run_at_its_input(tmp_path):
    series = _series()
    inputs = {"delay": [0.0], "cue+": [0.1], "cue-": [-0.3]}
    out = tmp_path / "out"
    found = analyze_conditions(series, inputs, run={"out": out}, **FAST)
    assert isinstance(found, ConditionsAnalysis) and found.names == list(inputs)
    for name, vector in inputs.items():
        single = analyze_series(series, input=tuple(vector),
                                run={"out": tmp_path / f"single_{name}"}, **FAST)
        mine = found[name]
        assert mine.settings.input == tuple(vector) and mine.epochs == single.epochs
        for a, b in zip(mine.results, single.results):
            np.testing.assert_array_equal(a.fixed_points.x, b.fixed_points.x)
            assert list(a.fixed_points.kind) == list(b.fixed_points.kind)
        assert [e.to_dict() for e in mine.events] == [e.to_dict() for e in single.events]
        sub = out / "conditions" / name
        for f in ("events.csv", "events.json", "tracks.json"):
            assert (sub / f).read_text() == (tmp_path / f"single_{name}" / f).read_text()
        # the summaries agree but for the run's own facts (time taken, OUT, reuse counts)
        ours, theirs = ({k: v for k, v in json.loads((d / "summary.json").read_text()).items()
                         if k != "options"} for d in (sub, tmp_path / f"single_{name}"))
        assert ours["epochs"] == single.epochs
        for summary in (ours, theirs):
            for epoch in summary["per_epoch"]:
                del epoch["seconds"]
        assert ours == theirs
        assert len(list((sub / "epochs").glob("epoch_*.npz"))) == 4
        assert SeriesAnalysis.from_dir(sub).epochs == [0, 1, 2, 3]
    # the saddle-node at b + u = 0.5328, crossed where the closed form says, per condition
    folds = [(e.condition, e.epoch_before, e.epoch_after) for e in found.events
             if e.kind == "saddle_node"]
    assert folds == [("cue+", 0, 1), ("delay", 2, 3)]
    assert sorted((e.condition, e.kind, e.epoch_after) for e in found.events) == sorted(
        (name, e.kind, e.epoch_after) for name in inputs for e in found[name].events)
    assert all(e.to_dict()["condition"] == e.condition for e in found.events)
    rows = list(csv.DictReader(io.StringIO((out / "events.csv").read_text())))
    assert [(r["condition"], r["kind"], r["epoch_after"]) for r in rows] == [
        (e.condition, e.kind, str(e.epoch_after)) for e in found.events]
    assert [e["condition"] for e in json.loads((out / "events.json").read_text())] == \
        [e.condition for e in found.events]
    index = json.loads((out / "conditions.json").read_text())
    assert [(c["name"], c["input"], c["directory"], c["n_events"]) for c in index["conditions"]] \
        == [(n, v, f"conditions/{n}", len(found[n].events)) for n, v in inputs.items()]
    back = ConditionsAnalysis.from_dir(out)
    assert [e.to_dict() for e in back.events] == [e.to_dict() for e in found.events]
    assert back.inputs == {k: tuple(v) for k, v in inputs.items()}
    again = analyze_conditions(series, inputs, run={"out": out}, **FAST)  # resumes every condition
    assert [again[n].options["reused_epochs"] for n in inputs] == [4, 4, 4]
    with pytest.raises(ValueError, match="leave input= out"):
        analyze_conditions(series, inputs, input=(0.0,), **FAST)
    with pytest.raises(ValueError, match="holds a single-input analysis"):
        analyze_conditions(series, inputs, run={"out": tmp_path / "single_delay"}, **FAST)
    # and the other way round: a single-input run in the conditions' OUT, which would
    # overwrite their merged events.csv, is refused before anything is written
    events_before = (out / "events.csv").read_bytes()
    with pytest.raises(ValueError, match="holds an analysis at several input conditions"):
        analyze_series(series, run={"out": out}, input=(0.0,), **FAST)
    assert (out / "events.csv").read_bytes() == events_before
    assert not (out / "summary.json").exists() and not (out / "epochs").exists()


# ------------------------------------------------------------------------------ input path
def test_analyze_input_path_finds_the_tanh_fold_per_checkpoint(tmp_path):
    series = [(0, tanh_input_map(0.5, 0.0, 3)), (5, tanh_input_map(2.0, 0.0, 3))]
    out = tmp_path / "bif"
    found = analyze_input_path(series, "0:0.6:12", run={"out": out}, **FAST)
    assert found.at(0).bifurcations == ()                  # w = 0.5: one fixed point, no fold
    folds = found.at(5).folds
    assert len(folds) == 1 and not found.at(5).hopf_points
    assert abs(folds[0]["input"][0] - tanh_saddle_node_b(2.0)) < 1e-6
    assert abs(tanh_saddle_node_b(2.0) - 0.5328) < 1e-4
    assert (out / "epoch_0005.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_folds"] == 1
    assert summary["per_epoch"][1]["bifurcations"][0]["kind"] == "fold"
    again = analyze_input_path(series, "0:0.6:12", run={"out": out}, **FAST)  # reused from disk
    assert again.at(5).diagram is None and again.at(5).bifurcations == found.at(5).bifurcations
    other = analyze_input_path(series[:1], "0:0.3:4", run={"out": out}, **FAST)  # redone
    assert other.at(0).diagram is not None


def test_analyze_input_path_saddle_node_normal_form_fold_at_r_0():
    # dx/dt = r + x² − x³/5: the normal form with a cubic term that keeps the trajectories the
    # epoch pipeline starts from bounded (r + x² alone blows up in finite time, and its sampled
    # initial states are then inf). The fold is still at r = 0, x = 0; the cubic adds a
    # stable point near x = 5 and a second fold at r = −4/(27 · 0.2²) = −3.7, off the path.
    series = [(0, ContinuousDynamics(lambda x, u: u[:, :1] + x * x - 0.2 * x ** 3, 1,
                                     n_inputs=1))]
    found = analyze_input_path(series, "-1:0.5:30", **FAST)
    folds = found.at(0).folds
    assert len(folds) == 1
    assert abs(folds[0]["input"][0]) < 1e-8 and abs(folds[0]["x"][0]) < 1e-4
    with pytest.raises(ValueError, match="takes 1 input"):
        analyze_input_path(series, "0,0:1,1:10", **FAST)
    with pytest.raises(TypeError, match="run=RunOptions"):
        analyze_input_path(series, "-1:0.5:30", jobs=2, **FAST)


# ------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def tanh_run(tmp_path_factory):
    """Leaky RNNs r <- r/2 + tanh(w r + u)/2 (fixed points of the tanh map), w = 0.5, 2, 2.2."""
    from checkpoints.models import LeakyRNN

    path = tmp_path_factory.mktemp("tanh") / "ckpts"
    path.mkdir()
    for epoch, w in ((0, 0.5), (1, 2.0), (2, 2.2)):
        model = LeakyRNN(1, 1, 1, alpha=0.5)
        with torch.no_grad():
            model.W_rec.fill_(w)
            model.W_in.weight.fill_(1.0)
            model.W_in.bias.zero_()
        torch.save(model.state_dict(), path / f"model_epoch{epoch}.pt")
    return path


def test_input_path_redoes_a_checkpoint_rewritten_under_its_name(tmp_path):
    """The diagram of a file is reused while the file is unchanged (stamp: size, mtime)."""
    import shutil

    from checkpoints.models import LeakyRNN

    run = tmp_path / "ckpts"
    run.mkdir()
    for epoch, w in ((0, 0.5), (1, 2.0)):
        model = LeakyRNN(1, 1, 1, alpha=0.5)
        with torch.no_grad():
            model.W_rec.fill_(w)
            model.W_in.weight.fill_(1.0)
            model.W_in.bias.zero_()
        torch.save(model.state_dict(), run / f"model_epoch{epoch}.pt")
    out = tmp_path / "bif"
    first = analyze_input_path(str(run), "0:0.8:12", run={"out": out}, **FAST)
    assert len(first.at(1).folds) == 1
    again = analyze_input_path(str(run), "0:0.8:12", run={"out": out}, **FAST)
    assert again.at(0).diagram is None and again.at(1).diagram is None  # both reused
    shutil.copy(run / "model_epoch0.pt", run / "model_epoch1.pt")   # epoch 1 is now w = 0.5
    redone = analyze_input_path(str(run), "0:0.8:12", run={"out": out}, **FAST)
    assert redone.at(0).diagram is None                                 # unchanged: reused
    assert redone.at(1).diagram is not None and redone.at(1).folds == []


def test_cli_analyze_input_path_lists_the_folds_per_epoch(tanh_run, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["analyze", str(tanh_run), "--out", str(out), "--input-path", "0:0.8:12",
                 "--n-initial", "32", "--no-ghosts", "-q"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    per_epoch = {e["epoch"]: e for e in summary["options"]["input_path"]["per_epoch"]}
    assert per_epoch[0]["bifurcations"] == []
    fold = per_epoch[1]["bifurcations"]
    assert [b["kind"] for b in fold] == ["fold"]
    assert abs(fold[0]["input"][0] - tanh_saddle_node_b(2.0)) < 1e-6
    assert abs(per_epoch[2]["bifurcations"][0]["input"][0] - tanh_saddle_node_b(2.2)) < 1e-6
    assert sorted(p.name for p in (out / "bifurcation").glob("*.png")) == [
        "epoch_0000.png", "epoch_0001.png", "epoch_0002.png"]
    assert "folds / Hopf along 0:0.8:12" in (out / "report.html").read_text()
    assert SeriesAnalysis.from_dir(out).options["input_path"]["n_folds"] == 2
    assert "epoch 1: fold at input 0.5328" in capsys.readouterr().out
    assert main(["analyze", str(tanh_run), "--out", str(out), "--input-path", "0,1:1,1:9",
                 "-q"]) == 2
    assert "--input-path" in capsys.readouterr().err


def test_cli_analyze_inputs_file_writes_each_condition(tanh_run, tmp_path, capsys):
    inputs = tmp_path / "inputs.json"
    inputs.write_text('{"off": [0], "on": [0.7]}')
    out = tmp_path / "o"
    code = main(["analyze", str(tanh_run), "--out", str(out), "--inputs", str(inputs),
                 "--n-initial", "32", "--no-ghosts", "-q"])
    assert code == 0
    single = tmp_path / "single"
    assert main(["analyze", str(tanh_run), "--out", str(single), "--input", "0.7",
                 "--n-initial", "32", "--no-ghosts", "--no-report", "-q"]) == 0
    on = out / "conditions" / "on"
    for epoch in ("epoch_0000", "epoch_0001", "epoch_0002"):
        a = np.load(on / "epochs" / f"{epoch}.npz")
        b = np.load(single / "epochs" / f"{epoch}.npz")
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    assert (on / "events.csv").read_text() == (single / "events.csv").read_text()
    # at u = 0 the pitchfork of w = 1 is crossed between epochs 0 and 1; at u = 0.7 nothing
    rows = list(csv.DictReader(io.StringIO((out / "events.csv").read_text())))
    assert rows and {r["condition"] for r in rows} <= {"off", "on"}
    assert [r["kind"] for r in rows if r["epoch_after"] == "1" and r["condition"] == "off"] \
        == ["pitchfork"]
    page = (out / "report.html").read_text()
    assert 'href="conditions/off/report.html"' in page and 'href="conditions/on/report.html"' \
        in page
    assert (out / "conditions" / "off" / "report.html").is_file()
    assert (on / "portraits" / "epoch_0002.png").is_file()
    back = ConditionsAnalysis.from_dir(out)
    assert back.names == ["off", "on"]
    inputs.write_text('{"off": [0], "on": [0.7, 1]}')
    assert main(["analyze", str(tanh_run), "--out", str(out), "--inputs", str(inputs),
                 "-q"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and f"{inputs}: condition 'on' has 2 value(s)" in lines[0]
    assert "give each condition 1 number(s)" in lines[0]
    assert main(["find", str(tanh_run / "model_epoch1.pt"), "--inputs", str(inputs), "-q"]) == 2
    assert "names several input conditions" in capsys.readouterr().err
    assert main(["analyze", str(tanh_run), "--out", str(out), "-q"]) == 2  # not mixed into it
    assert "holds an analysis at several input conditions" in capsys.readouterr().err
    inputs.write_text('{"off": [0]}')
    assert main(["analyze", str(tanh_run), "--out", str(single), "--inputs", str(inputs),
                 "-q"]) == 2
    assert "holds an analysis at one input" in capsys.readouterr().err


def test_out_given_in_run_options_is_locked(tmp_path):
    """analyze_series and analyze_conditions take OUT inside run=: the lock must see it there."""
    import os

    from analysis.outdir import LOCK_NAME, locks_out
    from analysis.run_options import RunOptions

    held = []

    @locks_out
    def write(*, run=None):
        out = run["out"] if isinstance(run, dict) else run.out
        held.append((out / LOCK_NAME).read_text().strip())

    write(run={"out": tmp_path / "a"})
    write(run=RunOptions(out=tmp_path / "b"))
    assert held == [str(os.getpid())] * 2
    assert (tmp_path / "b" / LOCK_NAME).read_text() == ""      # released after the call
