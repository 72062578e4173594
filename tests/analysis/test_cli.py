"""The ghostscope command line: outputs, resumption, selection, exit codes and one-line errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--n-initial", "48", "-q"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Four checkpoints (epochs 0, 3, 6, 9) of a 6-unit flip-flop leaky RNN, with its log."""
    from checkpoints.train import train

    path = tmp_path_factory.mktemp("run") / "ckpts"
    train("flipflop", "leaky_rnn", path, epochs=9, lr=0.02, save_every=3, n_states=6, seed=1)
    return path


@pytest.fixture(scope="module")
def analyzed(run_dir, tmp_path_factory):
    """One full `ghostscope analyze` run (shared by the output tests)."""
    out = tmp_path_factory.mktemp("analysis") / "out"
    code = main(["analyze", str(run_dir), "--out", str(out), *FAST])
    assert code == 0
    return out


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_analyze_writes_every_output(analyzed):
    out = analyzed
    epochs = [0, 3, 6, 9]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == epochs
    assert [p["epoch"] for p in summary["per_epoch"]] == epochs
    assert summary["failed"] == []
    assert {"stable", "saddle", "ghost"} <= set(summary["per_epoch"][0]["counts"])
    for entry in summary["per_epoch"]:  # what each epoch's fixed-point set proves (issue 12)
        fixed = sum(entry["counts"][k] for k in ("stable", "saddle", "unstable"))
        assert entry["search"].startswith("found from") and not entry["complete"]
        assert entry["n_certified"] == fixed and entry["n_stability_certified"] <= fixed
    assert "settings_hash" in summary and summary["settings"]["n_initial"] == 48
    header = (out / "events.csv").read_text().splitlines()[0]
    assert header.startswith("epoch_before,epoch_after,kind")
    for e in epochs:
        stem = out / "epochs" / f"epoch_{e:04d}"
        meta = json.loads(stem.with_suffix(".json").read_text())
        assert meta["epoch"] == e
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as data:
            assert data["fp.x"].shape[1] == 6
        assert (out / "portraits" / f"epoch_{e:04d}.png").stat().st_size > 5000
    from PIL import Image
    with Image.open(out / "portraits.gif") as gif:
        assert gif.n_frames == 4
    with Image.open(out / "timeline.png") as png:
        assert png.width > 500
    html = (out / "report.html").read_text()
    assert html.count("<img data-epoch=") == 4
    assert 'id="epoch-slider"' in html and 'max="3"' in html
    assert "http://" not in html and "https://" not in html  # self-contained
    assert not list(out.rglob("*.tmp*")) and not list(out.rglob(".*.tmp"))


def test_rerun_reuses_epochs_and_portraits_then_force_redoes(run_dir, analyzed, capsys):
    png = analyzed / "portraits" / "epoch_0006.png"
    stamp = png.stat().st_mtime_ns
    written = (analyzed / "summary.json").stat().st_mtime_ns
    code, out, _ = _run(["analyze", run_dir, "--out", analyzed, *FAST], capsys)
    assert code == 0  # nothing changed: the results stand, not one file is written
    assert (analyzed / "summary.json").stat().st_mtime_ns == written
    assert png.stat().st_mtime_ns == stamp
    assert "4 reused" in out
    (analyzed / ".ghostscope-run.json").unlink()  # the ordinary path reuses everything too
    code, out, _ = _run(["analyze", run_dir, "--out", analyzed, *FAST], capsys)
    assert code == 0
    summary = json.loads((analyzed / "summary.json").read_text())
    assert summary["options"]["reused_epochs"] == 4
    assert png.stat().st_mtime_ns == stamp  # same analysis, same projection: not redrawn
    assert "4 reused" in out
    code, _, _ = _run(["analyze", run_dir, "--out", analyzed, "--force", *FAST], capsys)
    assert code == 0
    summary = json.loads((analyzed / "summary.json").read_text())
    assert summary["options"]["reused_epochs"] == 0
    assert png.stat().st_mtime_ns != stamp


def test_other_settings_are_not_reused(run_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert _run(["analyze", run_dir, "--out", out, "--no-report", *FAST], capsys)[0] == 0
    stale = [out / "epochs" / ".epoch_0003.npz.4242.tmp", out / ".summary.json.4242.tmp"]
    for path in stale:  # what a killed run leaves behind
        path.write_bytes(b"half")
    code, _, _ = _run(["analyze", run_dir, "--out", out, "--no-report", "--n-initial", "40",
                       "-q"], capsys)
    assert not any(path.exists() for path in stale)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["reused_epochs"] == 0
    assert summary["settings"]["n_initial"] == 40
    assert not (out / "report.html").exists()


def test_every_and_epoch_range_select_checkpoints(run_dir, tmp_path, capsys):
    out = tmp_path / "every"
    assert _run(["analyze", run_dir, "--out", out, "--every", "2", "--no-report", *FAST],
                capsys)[0] == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == [0, 6, 9]
    out = tmp_path / "range"
    assert _run(["analyze", run_dir, "--out", out, "--epochs", "3:6", "--no-report", *FAST],
                capsys)[0] == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == [3, 6]


def test_input_and_drive_reach_the_settings(run_dir, tmp_path, capsys):
    drive = tmp_path / "drive.npy"
    np.save(drive, np.zeros((20, 3)))
    out = tmp_path / "o"
    code, _, err = _run(["analyze", run_dir, "--out", out, "--input", "0.5, 0, -0.5", "--drive",
                         drive, "--epochs", "9:", "--no-report", *FAST], capsys)
    assert code == 0, err
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["input"] == [0.5, 0.0, -0.5]
    assert np.asarray(settings["drive"]).shape == (20, 3)


@pytest.mark.parametrize("argv, needle", [
    (["analyze", "{run}"], "--out"),                                    # missing --out
    (["analyze", "{run}", "--out", "{tmp}/o", "--model", "m.py:f", "--arch", "gru"],
     "not allowed with"),
    (["analyze", "{tmp}/nowhere", "--out", "{tmp}/o"], "nowhere: no such directory"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--input", "a,b"], "not a list of numbers"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--epochs", "6:3"], "end comes before"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--epochs", "50:60"], "no checkpoint in that"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--jobs", "0"], "--jobs"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--drive", "{tmp}/none.npy"], "none.npy: no such"),
    (["find", "{run}"], "is a directory"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--arch", "transformer"], "not a built-in"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--model", "{tmp}/none.py:build"], "--model"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--input", "1,2"], "takes 3 input"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--drive", "{tmp}/drive2.npy"],
     "2 input channel(s) but the model"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--inputs", "{tmp}/two.json"],
     "holds 2 input vectors"),
    (["frobnicate"], "invalid choice"),
    (["analyze", "{run}", "--out", "{tmp}/o", "--min-ghost-strength", "-1"],
     "--min-ghost-strength"),
])
def test_bad_usage_exits_2_with_one_line(run_dir, tmp_path, capsys, argv, needle):
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in argv]
    np.save(tmp_path / "drive2.npy", np.zeros((10, 2)))
    (tmp_path / "two.json").write_text("[[0, 0, 0], [1, 1, 1]]")
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert needle in err
    if argv[0] != "frobnicate" and "--out" in argv:
        lines = [line for line in err.splitlines() if "error:" in line]
        assert len(lines) == 1 and "Traceback" not in err


def test_a_bad_checkpoint_is_listed_and_the_rest_analyzed(run_dir, tmp_path, capsys):
    import shutil
    bad_dir = tmp_path / "ckpts"
    shutil.copytree(run_dir, bad_dir)
    (bad_dir / "model_epoch6.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "o"
    code, text, err = _run(["analyze", bad_dir, "--out", out, "--no-report", "--n-initial",
                            "48"], capsys)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == [0, 3, 9]
    (failed,) = summary["failed"]
    assert failed["epoch"] == 6 and failed["source"].endswith("model_epoch6.pt")
    assert "1 failed (listed in summary.json)" in text
    assert "model_epoch6.pt" in err  # named on stderr too
    assert not (out / "epochs" / "epoch_0006.json").exists()
    code, _, err = _run(["analyze", bad_dir, "--out", tmp_path / "s", "--strict", "--no-report",
                         *FAST], capsys)
    assert code == 1
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert "model_epoch6.pt" in line and "run with -v" in line


def test_all_bad_fails_with_one_line_and_verbose_shows_the_traceback(tmp_path, capsys):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for e in range(5):
        (bad_dir / f"model_epoch{e}.pt").write_bytes(b"garbage")
    code, _, err = _run(["analyze", bad_dir, "--out", tmp_path / "o", "-q"], capsys)
    assert code == 1
    assert len(err.strip().splitlines()) == 1  # the same problem everywhere: said once
    assert "model_epoch0.pt" in err and "fix:" in err and "Traceback" not in err
    code, _, err = _run(["analyze", bad_dir, "--out", tmp_path / "o", "--strict", "-v"], capsys)
    assert code == 1 and "Traceback" in err


def test_quiet_and_not_a_tty_print_no_progress(run_dir, tmp_path, capsys):
    code, out, err = _run(["analyze", run_dir, "--out", tmp_path / "o", "--epochs", "9:",
                           "--no-report", *FAST], capsys)
    assert code == 0
    assert err == ""  # no bar (not a terminal), no log lines (-q)
    assert "analyzed 1 epoch" in out


def test_find_prints_points_and_json(run_dir, tmp_path, capsys):
    file = run_dir / "model_epoch9.pt"
    code, out, _ = _run(["find", file, "--n-initial", "48", "-q"], capsys)
    assert code == 0
    assert "epoch 9, 6 states, discrete time" in out and "stable" in out
    assert "fixed points certified" in out and "certified r" in out  # issue 12
    code, out, _ = _run(["find", file, "--n-initial", "48", "-q", "--json", "--out",
                         tmp_path / "f"], capsys)
    assert code == 0
    payload = json.loads(out)
    assert payload["epoch"] == 9 and len(payload["points"]) == sum(payload["counts"].values())
    assert payload["search"].startswith("found from") and payload["n_certified"] >= 1
    assert all("certified_radius" in p for p in payload["points"])
    assert (tmp_path / "f" / "epoch_0009.json").exists()
    assert (tmp_path / "f" / "epoch_0009.png").stat().st_size > 5000


def test_info_shows_files_model_log_and_problems(run_dir, tmp_path, capsys):
    code, out, _ = _run(["info", run_dir], capsys)
    assert code == 0
    assert "4 checkpoint(s), epochs 0..9" in out
    assert "leaky_rnn" in out and "6 states" in out and "3 inputs" in out
    assert "train_log.csv" in out and "problems (every file loaded): none" in out
    import shutil
    bad_dir = tmp_path / "ckpts"
    shutil.copytree(run_dir, bad_dir)
    (bad_dir / "model_epoch3.pt").write_bytes(b"\x00" * 10)
    code, out, _ = _run(["info", bad_dir, "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert len(info["problems"]) == 1 and "model_epoch3.pt" in info["problems"][0]
    assert info["model"]["architecture"] == "leaky_rnn"


def test_train_writes_a_series(tmp_path, capsys):
    out = tmp_path / "t"
    code, text, _ = _run(["train", "flipflop", "--out", out, "--epochs", "4", "--n-states", "5",
                          "--save-every", "2", "-q"], capsys)
    assert code == 0
    assert sorted(p.name for p in out.glob("model_epoch*.pt")) == [
        "model_epoch0.pt", "model_epoch2.pt", "model_epoch4.pt"]
    assert (out / "train_log.csv").exists() and "trained leaky_rnn on flipflop" in text
    code, _, err = _run(["train", "flipflop", "--out", out, "--epochs", "4", "-q"], capsys)
    assert code == 2 and "not empty" in err  # refuses to overwrite without --overwrite
    code, _, err = _run(["train", "nosuchtask", "--out", tmp_path / "u", "-q"], capsys)
    assert code == 2 and "unknown task" in err


def test_demo_wiring_with_a_tiny_run(tmp_path, capsys, monkeypatch):
    """The demo's steps (train -> analyze -> report) with a few epochs; the real one is slow."""
    import analysis.cli as cli
    monkeypatch.setattr(cli, "DEMO_TRAINING", dict(cli.DEMO_TRAINING, n_states=6, epochs=4,
                                                   save_every=2))
    monkeypatch.setattr(cli, "_DEMO_SETTINGS", {"n_initial": 48})
    code, out, _ = _run(["demo", "--out", tmp_path / "d", "--jobs", "1", "-q"], capsys)
    assert code == 0
    report = tmp_path / "d" / "analysis" / "report.html"
    assert f"report: {report}" in out
    assert report.exists() and (tmp_path / "d" / "checkpoints" / "model_epoch4.pt").exists()
    code, _, err = _run(["demo", "--out", tmp_path / "d", "-q"], capsys)
    assert code == 2 and "not empty" in err


def test_jobs_2_matches_jobs_1(run_dir, tmp_path, capsys):
    for jobs, report in (("1", ["--no-report"]), ("2", [])):  # portraits drawn by workers too
        assert _run(["analyze", run_dir, "--out", tmp_path / jobs, "--jobs", jobs, *report,
                     *FAST], capsys)[0] == 0
    assert len(list((tmp_path / "2" / "portraits").glob("*.png"))) == 4
    one, two = (json.loads((tmp_path / j / "summary.json").read_text()) for j in ("1", "2"))
    assert [p["counts"] for p in one["per_epoch"]] == [p["counts"] for p in two["per_epoch"]]
    for e in (0, 9):
        a = np.load(tmp_path / "1" / "epochs" / f"epoch_{e:04d}.npz")["fp.x"]
        b = np.load(tmp_path / "2" / "epochs" / f"epoch_{e:04d}.npz")["fp.x"]
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_scheduler_runs_on_a_dask_cluster(run_dir, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        code, out, err = _run(["analyze", run_dir, "--out", tmp_path / "o", "--scheduler",
                               cluster.scheduler_address, "--epochs", "3:9", *FAST], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["epochs"] == [3, 6, 9]
    assert len(list((tmp_path / "o" / "portraits").glob("*.png"))) == 3  # drawn on Dask too


def test_device_cuda_without_a_gpu_is_bad_usage(run_dir, tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; see test_device_cuda_runs_on_the_gpu")
    code, _, err = _run(["analyze", run_dir, "--out", tmp_path / "o", "--device", "cuda"],
                        capsys)
    assert code == 2 and "no CUDA GPU" in err


@pytest.mark.gpu
def test_device_cuda_runs_on_the_gpu(run_dir, tmp_path, capsys):
    import torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch")
    code, _, err = _run(["analyze", run_dir, "--out", tmp_path / "gpu", "--device", "cuda",
                         "--epochs", "6:9", *FAST], capsys)
    assert code == 0, err
    code, _, _ = _run(["analyze", run_dir, "--out", tmp_path / "cpu", "--epochs", "6:9",
                       "--no-report", *FAST], capsys)
    gpu, cpu = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("gpu", "cpu"))
    assert [p["counts"] for p in gpu["per_epoch"]] == [p["counts"] for p in cpu["per_epoch"]]


def test_python_dash_m_and_help():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "analysis", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("analyze", "demo", "find", "info", "train"):
        assert command in done.stdout
    done = subprocess.run([sys.executable, "-m", "analysis", "analyze"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "DIR" in done.stderr


def test_an_interrupted_run_leaves_complete_files_and_resumes(run_dir, tmp_path):
    """Kill the process mid-run: what is on disk is whole, and a re-run finishes the job."""
    out = tmp_path / "o"
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    argv = [sys.executable, "-m", "analysis", "analyze", str(run_dir), "--out", str(out),
            "--n-initial", "48", "--no-report", "-q"]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # an epoch is done when its .json (written after its .npz) is there
    while time.monotonic() < deadline and not list((out / "epochs").glob("*.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done = sorted((out / "epochs").glob("*.json"))
    for meta in done:
        json.loads(meta.read_text())  # every file there parses
        with np.load(meta.with_suffix(".npz"), allow_pickle=False) as data:
            assert "fp.x" in data.files
    env_run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert env_run.returncode == 0, env_run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == [0, 3, 6, 9]
    assert summary["options"]["reused_epochs"] >= len(done) >= 1
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


@pytest.mark.slow
def test_demo_end_to_end_under_two_minutes(tmp_path, capsys):
    started = time.perf_counter()
    code, out, _ = _run(["demo", "--out", tmp_path / "demo", "-q"], capsys)
    seconds = time.perf_counter() - started
    assert code == 0
    summary = json.loads((tmp_path / "demo" / "analysis" / "summary.json").read_text())
    # the story: a plateau, an abrupt drop, a restructuring episode with its signed lead
    assert summary["drop"] is not None and 800 <= summary["drop"]["epoch"] <= 1200
    first = summary["restructuring"]["first_episode"]
    assert first is not None and first["lead"] is not None
    assert first["epoch_start"] <= summary["drop"]["epoch"] <= first["epoch_end"] + 100
    assert "restructuring episode 1" in out and "lead to the drop" in out
    assert seconds < 120, f"the demo took {seconds:.0f} s"


def test_cli_imports_no_private_name_from_another_module():
    """The command line goes through public functions only (its own helpers may be private)."""
    import ast

    import analysis.cli

    tree = ast.parse(Path(analysis.cli.__file__).read_text())
    private = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            parts = (node.module or "").split(".")
            private += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            private += [node.module for p in parts if p.startswith("_")]
        elif isinstance(node, ast.Import):
            private += [a.name for a in node.names
                        if any(p.startswith("_") for p in a.name.split("."))]
    assert private == []


def test_min_ghost_strength_flag_reaches_the_detector(run_dir, capsys):
    from analysis.cli import _settings_options, build_parser
    args = build_parser().parse_args(["find", str(run_dir / "model_epoch9.pt"),
                                      "--min-ghost-strength", "5"])
    assert _settings_options(args)["ghosts"] == {"min_strength": 5.0}
    code, out, _ = _run(["find", run_dir / "model_epoch9.pt", "--n-initial", "48", "-q",
                         "--min-ghost-strength", "1e12", "--json"], capsys)
    assert code == 0 and json.loads(out)["epoch"] == 9
