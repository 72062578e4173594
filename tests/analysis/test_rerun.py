"""Re-runs into a finished OUT redo nothing; a change redoes exactly what it affects (issue 14.6).

Work is counted by wrapping the functions that do it (the per-epoch analysis, continuation,
pass 1's trajectories, the drawing of portraits, timeline and GIF); files left alone keep their
modification time.
"""
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import analysis.api as api
import analysis.portraits as portraits
import analysis.report as report
from analysis.cli import main
from analysis.learning import local_slope
from analysis.reuse import (RUN_RECORD, continuation_record, continuation_start, file_stamp,
                            result_key, run_fingerprint)

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--n-initial", "48", "-q"]
EPOCHS = [0, 3, 6]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Three checkpoints (epochs 0, 3, 6) of a 6-unit flip-flop leaky RNN, with its log."""
    from checkpoints.train import train

    path = tmp_path_factory.mktemp("run") / "ckpts"
    train("flipflop", "leaky_rnn", path, epochs=6, lr=0.02, save_every=3, n_states=6, seed=1)
    return path


@pytest.fixture()
def counted(monkeypatch):
    """Counts of the expensive calls made while the test runs (``calls["render"]``: epochs)."""
    calls: Counter = Counter()
    drawn: list = []

    def wrap(module, name, label, record=None):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[label] += 1
            if record is not None:
                record(*args)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    wrap(api, "analyze_epoch_task", "epoch")
    wrap(api, "_continuation_task", "continuation")
    wrap(portraits, "portrait_trajectories", "trajectories")
    wrap(report, "render_portrait", "render", lambda job: drawn.append(job.ctx.result.epoch))
    wrap(report, "write_html", "html")
    import analysis.plotting as plotting
    wrap(plotting, "plot_timeline", "timeline")
    calls.drawn = drawn  # type: ignore[attr-defined]
    return calls


def _analyze(run_dir, out, *extra):
    assert main(["analyze", str(run_dir), "--out", str(out), *FAST, *extra]) == 0


def _mtimes(out: Path):
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and p.name != ".ghostscope.lock"}


def _summary(out: Path):
    """summary.json less the facts of the run itself (its seconds, what it reused)."""
    data = json.loads((out / "summary.json").read_text())
    options = data.pop("options")
    for fact in ("seconds", "reused_epochs", "continuation"):
        options.pop(fact)
    return data, options


@pytest.fixture(scope="module")
def first_run(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("first") / "out"
    _analyze(run_dir, out)
    return out


@pytest.fixture()
def finished(run_dir, first_run, tmp_path):
    """A copy of a finished OUT (modification times kept) for one test to change, run into
    once more (the record of a run names its OUT: that run reuses everything)."""
    out = tmp_path / "out"
    shutil.copytree(first_run, out)
    _analyze(run_dir, out)
    return out


def test_the_same_command_again_does_nothing(run_dir, finished, counted, capsys):
    out = finished
    before = _mtimes(out)
    capsys.readouterr()  # what the first run said
    _analyze(run_dir, out)
    assert dict(counted) == {}
    assert _mtimes(out) == before  # not one file written again
    said = capsys.readouterr().out
    assert "3 reused from an earlier run (nothing changed" in said
    assert "report: " in said and "last epoch (6)" in said


def test_a_rerun_without_the_record_recomputes_nothing(run_dir, finished, counted):
    """The ordinary path (what an API caller, or any change, takes) reuses everything too."""
    out = finished
    (out / RUN_RECORD).unlink()
    before, summary = _mtimes(out), _summary(out)
    page = (out / "report.html").read_bytes()
    _analyze(run_dir, out)
    assert dict(counted) == {}  # no epoch, continuation, trajectory, portrait, timeline, page
    after = _mtimes(out)
    rewritten = {name for name in after if after[name] != before.get(name)}
    assert rewritten <= {"summary.json", "events.csv", "events.json", "tracks.json", RUN_RECORD}
    assert set(after) == set(before) | {RUN_RECORD}
    assert _summary(out) == summary
    assert (out / "report.html").read_bytes() == page
    data = json.loads((out / "summary.json").read_text())
    assert data["options"]["reused_epochs"] == 3
    assert data["options"]["continuation"]["passes"] == 0
    assert data["options"]["continuation"]["converged"] is True


def test_a_deleted_portrait_is_drawn_again_alone(run_dir, finished, counted):
    (finished / "portraits" / "epoch_0003.png").unlink()
    gif = (finished / "portraits.gif").stat().st_mtime_ns
    _analyze(run_dir, finished)
    assert counted["epoch"] == 0 and counted["trajectories"] == 1 and counted.drawn == [3]
    assert counted["timeline"] == 0
    assert (finished / "portraits" / "epoch_0003.png").is_file()
    assert (finished / "portraits.gif").stat().st_mtime_ns == gif  # the same frames again


def test_a_touched_checkpoint_is_analyzed_again_with_only_what_depends_on_it(run_dir, finished,
                                                                             counted):
    out = finished
    before = _mtimes(out)
    projection = json.loads((out / "projection.json").read_text())
    touched = run_dir / "model_epoch3.pt"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    try:
        _analyze(run_dir, out)
    finally:
        os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert counted["epoch"] == 1  # epoch 3 only
    assert 1 <= counted["continuation"] <= 3  # epoch 3 and its two neighbours at most
    meta = json.loads((out / "epochs" / "epoch_0003.json").read_text())
    assert meta["source_stamp"] == f"{stat.st_size}:{stat.st_mtime_ns + 5_000_000_000}"
    after = _mtimes(out)
    for e in (0, 6):  # the other epochs' analyses are left alone
        assert after[f"epochs/epoch_{e:04d}.json"] == before[f"epochs/epoch_{e:04d}.json"]
    # the projection is fitted again from every epoch (pass 1: three simulations); it came out
    # the same (the model did not change), so only epoch 3's portrait, whose model file
    # changed, is redrawn (simulating its trajectories once more)
    assert counted["trajectories"] == 3 + 1
    assert json.loads((out / "projection.json").read_text())["mean"] == projection["mean"]
    assert counted.drawn == [3]
    for e in (0, 6):
        assert after[f"portraits/epoch_{e:04d}.png"] == before[f"portraits/epoch_{e:04d}.png"]
    # and once more: nothing left to do
    counted.clear()
    counted.drawn.clear()
    _analyze(run_dir, out)
    assert counted["epoch"] == 1 and counted["render"] == 1  # the stamp was put back
    counted.clear()
    _analyze(run_dir, out)
    assert dict(counted) == {}


def test_another_portrait_setting_redraws_without_analyzing_again(run_dir, finished, counted):
    out = finished
    _analyze(run_dir, out, "--projection", "pca")
    assert counted["epoch"] == 0 and counted["continuation"] == 0
    assert counted["trajectories"] == 3 + 3 and sorted(counted.drawn) == EPOCHS
    assert json.loads((out / "projection.json").read_text())["kind"] == "pca"
    assert counted["timeline"] == 0  # the timeline does not depend on the projection


def test_force_redoes_everything(run_dir, finished, counted):
    out = finished
    _analyze(run_dir, out, "--force")
    assert counted["epoch"] == 3 and sorted(counted.drawn) == EPOCHS
    assert counted["timeline"] == 1 and counted["html"] == 1
    # other analysis settings: tests/analysis/test_cli.py::test_other_settings_are_not_reused


def test_an_edited_result_file_is_recomputed_not_trusted(run_dir, finished, counted):
    meta_path = finished / "epochs" / "epoch_0006.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("source_stamp")  # written by an older ghostscope: the file's identity is unknown
    meta_path.write_text(json.dumps(meta))
    _analyze(run_dir, finished)
    assert counted["epoch"] == 1
    assert "source_stamp" in json.loads(meta_path.read_text())


def test_a_rerun_imports_no_torch_and_without_the_record_no_plotting_library(run_dir,
                                                                               finished):
    code = ("import sys; from analysis.cli import main; "
            f"code = main(['analyze', {str(run_dir)!r}, '--out', {str(finished)!r}, "
            "'--n-initial', '48', '-q']); print(code, sorted(m for m in "
            "('torch', 'scipy', 'matplotlib', 'scipy.signal') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run():
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return done.stdout.split("\n")[-2]

    assert run() == "0 []"  # nothing changed: not even torch
    (finished / RUN_RECORD).unlink()
    assert run() == "0 ['scipy', 'torch']"  # the ordinary path: the models' libraries only


# ------------------------------------------------------------------------------ the pieces
def test_local_slope_is_the_savitzky_golay_derivative():
    from scipy.signal import savgol_filter

    rng = np.random.default_rng(0)
    for length in (5, 9, 40, 301):
        z = np.cumsum(rng.standard_normal(length))
        for width in range(3, length, 2):
            np.testing.assert_allclose(local_slope(z, width),
                                       savgol_filter(z, width, 1, deriv=1, mode="interp"),
                                       rtol=0, atol=1e-12 * max(1.0, np.abs(z).max()))
    line = 0.25 * np.arange(12.0) - 3.0  # the slope of a line, everywhere
    np.testing.assert_allclose(local_slope(line, 5), 0.25, atol=1e-14)
    with pytest.raises(ValueError, match="width=4"):
        local_slope(line, 4)


def test_file_stamp_changes_with_size_or_time(tmp_path):
    path = tmp_path / "a.pt"
    assert file_stamp(path) == "" and file_stamp(None) == ""
    path.write_bytes(b"12345")
    first = file_stamp(path)
    assert first.startswith("5:")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1))
    assert file_stamp(path) != first


class _Points:
    def __init__(self, x):
        self.x = np.asarray(x, float)


class _Result:
    def __init__(self, epoch, x, stamp="1:1"):
        self.epoch, self.settings_hash, self.source_stamp = epoch, "h", stamp
        self.fixed_points = _Points(x)


def _finished(tmp_path, results, **report):
    record = continuation_record(results, {"passes": 2, "reanalyzed_epochs": [], "failed": {},
                                           "converged": True, **report})
    (tmp_path / "summary.json").write_text(json.dumps(
        {"settings_hash": "h", "options": {"continuation": record}}))


def test_continuation_starts_next_to_what_changed(tmp_path):
    results = [_Result(e, [[float(e)]]) for e in range(5)]
    _finished(tmp_path, results)
    assert continuation_start(tmp_path, results, "h") == []
    assert continuation_start(tmp_path, results, "other settings") is None
    changed = list(results)
    changed[2] = _Result(2, [[9.0]])  # analyzed again with another answer
    assert continuation_start(tmp_path, changed, "h") == [1, 2, 3]
    changed[2] = _Result(2, [[2.0]], stamp="1:2")  # same answer from a touched file
    assert continuation_start(tmp_path, changed, "h") == [1, 2, 3]
    fewer = results[:2] + results[3:]  # epoch 2 left out: 1 and 3 have a new neighbour
    assert continuation_start(tmp_path, fewer, "h") == [1, 2]
    more = results + [_Result(5, [[5.0]])]
    assert continuation_start(tmp_path, more, "h") == [4, 5]
    assert result_key(results[0]) != result_key(results[1])


def test_continuation_starts_everywhere_without_a_converged_run(tmp_path):
    results = [_Result(e, [[float(e)]]) for e in range(3)]
    assert continuation_start(tmp_path, results, "h") is None  # no summary
    _finished(tmp_path, results, converged=False)
    assert continuation_start(tmp_path, results, "h") is None
    _finished(tmp_path, results, failed={"1": "boom"})
    assert continuation_start(tmp_path, results, "h") is None
    (tmp_path / "summary.json").write_text("{not json")
    assert continuation_start(tmp_path, results, "h") is None


def test_the_fingerprint_sees_options_checkpoints_named_files_and_out(tmp_path):
    directory, out = tmp_path / "ckpts", tmp_path / "out"
    (directory / "sub").mkdir(parents=True)
    out.mkdir()
    (directory / "model_epoch1.pt").write_bytes(b"1")
    (directory / "sub" / "config.json").write_text("{}")
    log = tmp_path / "elsewhere.csv"
    log.write_text("epoch,loss\n")
    factory = tmp_path / "build.py"
    factory.write_text("def build(): pass\n")
    options = {"dir": str(directory), "out": str(out), "n_initial": 48, "log": str(log),
               "model": f"{factory}:build"}
    first = run_fingerprint(options, directory, out)
    assert run_fingerprint(dict(options), directory, out) == first
    assert run_fingerprint({**options, "n_initial": 40}, directory, out) != first

    def changed(path, data=None):
        stat = path.stat()
        if data is not None:
            path.write_bytes(data)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
        return run_fingerprint(options, directory, out) != first

    for path in (directory / "model_epoch1.pt", directory / "sub" / "config.json", log,
                 factory):
        assert changed(path)
        first = run_fingerprint(options, directory, out)
    (out / "conditions" / "a" / "epochs").mkdir(parents=True)
    (out / "conditions" / "a" / "epochs" / "epoch_0001.json").write_text("{}")
    assert run_fingerprint(options, directory, out) != first
    first = run_fingerprint(options, directory, out)
    (out / "report.html").write_text("page")
    assert run_fingerprint(options, directory, out) != first
    first = run_fingerprint(options, directory, out)
    (out / RUN_RECORD).write_text("{}")  # the record and the lock are not part of it
    (out / ".ghostscope.lock").write_text("123")
    (out / ".summary.json.999.tmp").write_text("half")
    assert run_fingerprint(options, directory, out) == first
    (tmp_path / "train_log.csv").write_text("epoch,loss\n")  # beside the directory
    assert run_fingerprint(options, directory, out) != first
