"""Red-team cases (issue 15): hostile and unlucky runs stay contained.

No orphan processes after SIGTERM / SIGKILL of a ``--jobs 2`` run; config sizes never build a
model the weights contradict; memory estimates refuse what cannot fit; result files are data
(nothing is imported from them); no stale summary beside epochs of other settings; over-long
names fail one file; a run removes only dead processes' temporaries and locks its OUT; every
bad usage is one line with the file and the fix, and the right exit status.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from analysis.cli import main
from checkpoints import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--n-initial", "32", "-q"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
           PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _save_leaky(path: Path, seed: int, n_states: int = 12) -> None:
    from checkpoints.models import LeakyRNN

    torch.manual_seed(seed)
    torch.save(LeakyRNN(3, n_states, 3).state_dict(), path)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Four random 12-unit leaky RNN checkpoints (epochs 0, 5, 10, 15), no log, no config."""
    path = tmp_path_factory.mktemp("redteam") / "ckpts"
    path.mkdir()
    for e in (0, 5, 10, 15):
        _save_leaky(path / f"model_epoch{e}.pt", e)
    return path


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ 1. no orphan processes
def _session(sid: int):
    """(pid, state) of every live process in session ``sid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append((int(entry), fields[0]))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_main_process_leaves_no_process_behind(ckpts, tmp_path, signum):
    """`kill -TERM` / `kill -9` of a --jobs 2 run: workers, fork server and resource tracker
    end within 10 s, and a caller reading the pipes is not left hanging."""
    argv = [sys.executable, "-m", "analysis", "analyze", str(ckpts), "--out", str(tmp_path / "o"),
            "--jobs", "2", "--no-report", "--force", "-q", "--n-initial", "4000"]
    process = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for both workers to run
            if len(_session(process.pid)) >= 5 or process.poll() is not None:
                break
            time.sleep(0.1)
        assert process.poll() is None, "the run ended before it could be killed"
        assert len(_session(process.pid)) >= 5  # main, tracker, fork server, two workers
        process.send_signal(signum)
        started = time.monotonic()
        _, err = process.communicate(timeout=30)  # returns: nobody holds the pipes any more
        deadline = started + 10
        while _session(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session(process.pid) == [], f"left running: {_session(process.pid)}"
        if signum == signal.SIGTERM:
            assert process.returncode == 128 + signal.SIGTERM
            assert "interrupted; files written so far are complete" in err.decode()
    finally:
        for pid, _ in _session(process.pid):
            os.kill(pid, signal.SIGKILL)


def _sleep_then_ignore(x):
    time.sleep(x)
    return x


def test_a_pool_left_early_terminates_its_workers():
    """A consumer that stops iterating does not wait for the tasks still running."""
    from analysis.execution import run_tasks

    started = time.monotonic()
    tasks = run_tasks(_sleep_then_ignore, [0.0, 60.0, 60.0, 60.0], jobs=2)
    index, value = next(tasks)
    assert (index, value) == (0, 0.0)
    tasks.close()
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_become_an_interrupt_and_handlers_are_restored(signum):
    from analysis.execution import Interrupted, interrupt_on_signals

    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as info:
        with interrupt_on_signals():
            os.kill(os.getpid(), signum)
            time.sleep(5)
    assert info.value.exit_status == 128 + signum and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signum) == before


# ------------------------------------------------------------------ 2. sizes and memory
def test_config_sizes_never_build_a_model_the_weights_contradict(tmp_path):
    from checkpoints import CheckpointError, load_checkpoint

    _save_leaky(tmp_path / "model_epoch1.pt", 0, n_states=16)
    for n in (20000, 10 ** 7, 10 ** 12):
        (tmp_path / "config.json").write_text(json.dumps(
            {"architecture": "leaky_rnn", "model": {"n_inputs": 3, "n_states": n,
                                                    "n_outputs": 3}}))
        started = time.perf_counter()
        with pytest.raises(CheckpointError, match=f"gives n_states={n} but the weights"):
            load_checkpoint(tmp_path / "model_epoch1.pt")
        assert time.perf_counter() - started < 5  # nothing was allocated


def test_a_config_size_no_weight_has_is_refused():
    from checkpoints import CheckpointError
    from checkpoints.loading import check_config_sizes
    from checkpoints.models import LeakyRNN

    state = LeakyRNN(3, 8, 3).state_dict()
    check_config_sizes({"n_states": 8}, {"n_states": 8, "n_outputs": 3}, state, "m.pt")
    with pytest.raises(CheckpointError, match="n_outputs=100000000, which no weight"):
        check_config_sizes({"n_states": 8}, {"n_states": 8, "n_outputs": 10 ** 8}, state,
                           "m.pt", "config.json")
    with pytest.raises(CheckpointError, match="n_inputs='3'"):
        check_config_sizes({}, {"n_inputs": "3"}, state, "m.pt")


def test_info_lists_a_bad_config_per_file(ckpts, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ckpts, run)
    (run / "config.json").write_text(json.dumps({"architecture": "leaky_rnn",
                                                 "model": {"n_states": 10 ** 7}}))
    code, out, _ = _run(["info", run], capsys)
    assert code == 1  # no file could be loaded
    # the four files share one reason: said once, with the count and the first file
    assert out.count("gives n_states=10000000") == 1
    assert "4 files:" in out and "first: model_epoch0.pt" in out


def test_estimates_grow_with_size_and_refuse_a_5000_unit_gru():
    from analysis.resources import ResourceLimits, TooLarge, check_cost, estimate_cost

    small, big = estimate_cost(128), estimate_cost(5000)
    assert big.bytes / small.bytes > 100 and big.seconds > 60 * small.seconds
    assert big.bytes > 24 * 2 ** 30  # the 5000-unit GRU of the issue: more than 24 GB
    with pytest.raises(TooLarge, match=r"pass --max-states 5000 .*lower --n-initial"):
        check_cost(5000, free=24 * 2 ** 30, source="gru.pt")
    cost = check_cost(5000, free=24 * 2 ** 30, limits=ResourceLimits(max_states=5000))
    assert cost.seconds > 120
    # several jobs share the memory
    need = estimate_cost(1024).bytes
    check_cost(1024, free=int(1.5 * need))
    with pytest.raises(TooLarge, match="1/2 per job"):
        check_cost(1024, free=int(1.5 * need), limits=ResourceLimits(share=0.5))


def test_a_series_measures_free_memory_once(monkeypatch):
    """Later checkpoints are not refused because this run's own workers use memory."""
    import analysis.resources as resources

    monkeypatch.setattr(resources, "available_memory", lambda device=None: 2 ** 20)
    need = int(resources.estimate_cost(512).bytes)
    limits = resources.ResourceLimits(share=0.5, free=3 * need)
    assert resources.check_cost(512, limits=limits).n_states == 512
    with pytest.raises(resources.TooLarge):
        resources.check_cost(512, limits=resources.ResourceLimits(share=0.5))
    with pytest.raises(ValueError, match="free=-1"):
        resources.ResourceLimits(free=-1)


def test_a_cuda_device_is_limited_by_its_own_memory(monkeypatch):
    import analysis.resources as resources

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * 2 ** 20, 2 ** 34))
    assert resources.available_memory("cuda:0") == 3 * 2 ** 20
    with pytest.raises(resources.TooLarge, match="3 MB of memory is free"):
        resources.check_cost(1024, device="cuda:0")


def test_a_slow_model_is_announced(caplog):
    from analysis.resources import ResourceLimits, check_cost

    with caplog.at_level("WARNING", logger="analysis.resources"):
        check_cost(5000, free=2 ** 50, limits=ResourceLimits(max_states=5000))
    assert any("5000-state model" in r.getMessage() and "min per checkpoint" in r.getMessage()
               for r in caplog.records)


def test_the_command_refuses_what_does_not_fit_and_max_states_allows_it(ckpts, tmp_path,
                                                                         capsys, monkeypatch):
    import analysis.resources as resources

    monkeypatch.setattr(resources, "available_memory", lambda device=None: 2 * 2 ** 20)
    file = ckpts / "model_epoch5.pt"
    code, _, err = _run(["find", file, *FAST], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "model_epoch5.pt" in line and "--max-states 12" in line and "max_states=" not in line
    code, _, err = _run(["analyze", ckpts, "--out", tmp_path / "o", "--no-report", *FAST],
                        capsys)
    assert code == 2 and "--max-states 12" in err
    code, out, _ = _run(["find", file, "--max-states", "12", *FAST], capsys)
    assert code == 0 and "1 point" in out


def test_the_api_records_a_checkpoint_that_does_not_fit(ckpts, monkeypatch):
    import analysis.resources as resources
    from analysis import analyze_series

    monkeypatch.setattr(resources, "available_memory", lambda device=None: 2 * 2 ** 20)
    result = analyze_series(ckpts, n_initial=16, ghosts=False, topology=False)
    assert len(result.results) == 0 and len(result.failed) == 4
    assert all("TooLarge" in f.reason and "max_states" in f.reason for f in result.failed)
    result = analyze_series(ckpts, n_initial=16, ghosts=False, topology=False,
                            run=dict(max_states=12))
    assert len(result.results) == 4


# ------------------------------------------------------------------ 3. result files are data
def _synthetic(out, **options):
    from analysis import analyze_series
    from fixedpoints import systems

    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.46, 0.52])]
    return analyze_series(series, n_initial=32, **options, run=dict(out=out))


def test_an_edited_epoch_file_imports_nothing(tmp_path, caplog):
    from analysis.decoding import ResultFileError
    from analysis.epoch import EpochAnalysis

    if "this" in sys.modules:
        pytest.skip("`this` is already imported in this process")
    out = tmp_path / "o"
    _synthetic(out)
    path = out / "epochs" / "epoch_0001.json"
    meta = json.loads(path.read_text())
    assert "ghosts" in meta
    meta["ghosts"]["__class__"] = "this:Ghosts"
    path.write_text(json.dumps(meta))
    with pytest.raises(ResultFileError, match="epoch_0001.json.*'this:Ghosts'"):
        EpochAnalysis.load(out / "epochs" / "epoch_0001")
    meta["ghosts"]["__class__"] = "fixedpoints.ghosts:Ghosts"
    meta["fixed_points"]["status"] = {"enum": "FinderStatus", "name": "CONVERGED",
                                      "module": "this"}
    path.write_text(json.dumps(meta))
    with pytest.raises(ResultFileError, match="names the enum"):
        EpochAnalysis.load(out / "epochs" / "epoch_0001")
    with caplog.at_level("WARNING", logger="analysis.api"):
        again = _synthetic(out)  # resuming recomputes that epoch instead
    assert "this" not in sys.modules
    assert [r.epoch for r in again.results] == [0, 1, 2]
    assert again.options["reused_epochs"] == 2
    assert any("could not reuse" in r.getMessage() for r in caplog.records)


def test_an_unknown_enum_member_is_a_file_problem():
    from analysis.decoding import ResultFileError, enum_member
    from fixedpoints.results import FinderStatus

    good = {"enum": "FinderStatus", "name": "BUDGET", "module": "fixedpoints.results"}
    assert enum_member(good) is FinderStatus.BUDGET
    with pytest.raises(ResultFileError, match="no member '__class__'"):
        enum_member({**good, "name": "__class__"}, "f.json")


# ------------------------------------------------------------------ 4. stale summaries
def test_a_run_with_other_settings_retires_the_old_summary_first(tmp_path):
    from analysis import analyze_series
    from fixedpoints import systems

    out = tmp_path / "o"
    _synthetic(out)
    assert (out / "summary.json").is_file()
    series = [(0, systems.tanh_map(2.0, 0.40)), (1, "not a model")]
    with pytest.raises(CheckpointError, match="not a model"):
        analyze_series(series, n_initial=48, run=dict(out=out, strict=True))  # stops after epoch 0
    assert not (out / "summary.json").exists() and not (out / "events.csv").exists()
    from analysis import SeriesAnalysis
    with pytest.raises(FileNotFoundError, match="stopped before the end; re-run"):
        SeriesAnalysis.from_dir(out)
    saved = json.loads((out / "epochs" / "epoch_0000.json").read_text())
    assert saved["settings_hash"] != json.loads(
        (out / "epochs" / "epoch_0002.json").read_text())["settings_hash"]


def test_from_dir_refuses_epochs_of_mixed_settings(tmp_path, caplog):
    from analysis import SeriesAnalysis, analyze_checkpoint
    from fixedpoints import systems

    out = tmp_path / "o"
    _synthetic(out)
    assert len(SeriesAnalysis.from_dir(out)) == 3
    other = analyze_checkpoint(systems.tanh_map(2.0, 0.46), epoch=1, n_initial=48)
    other.save(out / "epochs" / "epoch_0001")  # a later run with other settings, stopped
    with pytest.raises(ValueError, match=r"epochs \[1\] were analyzed with other settings"):
        SeriesAnalysis.from_dir(out)
    with caplog.at_level("WARNING", logger="analysis.api"):
        mixed = SeriesAnalysis.from_dir(out, mixed="warn")
    assert len(mixed) == 3 and any("other settings" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ 5. names, temporaries, lock
def test_an_over_long_epoch_fails_that_file_only(ckpts, tmp_path):
    import shutil

    from analysis import analyze_series

    run = tmp_path / "run"
    shutil.copytree(ckpts, run)
    _save_leaky(run / f"model_epoch{'9' * 240}.pt", 7)
    out = tmp_path / "o"
    result = analyze_series(run, n_initial=16, run=dict(out=out))
    assert [r.epoch for r in result.results] == [0, 5, 10, 15]
    (failed,) = result.failed
    assert "240 digits" in failed.reason and "rename" in failed.reason
    assert json.loads((out / "summary.json").read_text())["n_epochs"] == 4


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    return int(done.stdout)


def test_only_temporaries_of_dead_processes_are_removed(tmp_path):
    from analysis.outdir import remove_stale_temporaries

    (tmp_path / "epochs").mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        keep = [tmp_path / "epochs" / f"epoch_0001.npz.tmp{live.pid}",
                tmp_path / f".report.html.{live.pid}.tmp", tmp_path / "epochs" / "epoch_0001.json"]
        drop = [tmp_path / "epochs" / f"epoch_0002.npz.tmp{dead}",
                tmp_path / f".summary.json.{dead}.tmp"]
        for path in keep + drop:
            path.write_text("x")
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(removed) == sorted(drop)
        assert all(p.exists() for p in keep)
    finally:
        live.kill()
        live.wait()


def test_a_second_run_on_a_locked_out_is_refused(ckpts, tmp_path, capsys):
    out = tmp_path / "o"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time; from analysis.outdir import OutLock\n"
                                f"with OutLock({str(out)!r}):\n"
                                "    print('held', flush=True); time.sleep(60)")],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = _run(["analyze", ckpts, "--out", out, "--no-report", *FAST], capsys)
        assert code == 1
        line = _one_error_line(err)
        assert f"process {holder.pid}" in line and "another --out" in line
    finally:
        holder.kill()
        holder.wait()
    code, _, err = _run(["analyze", ckpts, "--out", out, "--no-report", *FAST], capsys)
    assert code == 0, err  # the lock ended with its process


# ------------------------------------------------------------------ 6. one line, right status
@pytest.mark.parametrize("argv, status, needles", [
    (["analyze", "{run}", "--out", "{tmp}/o", "--jobs", "1000"], 2, ["--jobs", "1000", "-1"]),
    (["analyze", "{run}", "--out", "{tmp}/o", "--seed", "-1"], 2, ["--seed -1", ">= 0"]),
    (["find", "{run}/model_epoch0.pt", "--seed", "-1"], 2, ["--seed -1"]),
    (["analyze", "{run}", "--out", "{tmp}/o", "--log", "{tmp}/none.csv"], 2,
     ["none.csv", "--log"]),
    (["analyze", "{run}", "--out", "{tmp}/o", "--log-column", "loss"], 2,
     ["--log-column", "--log"]),
    (["find", "{run}/model_epoch0.pt", "--input", "1,2"], 2,
     ["model_epoch0.pt", "takes 3 input", "--input"]),
])
def test_bad_usage_is_one_line_and_exit_2(ckpts, tmp_path, capsys, argv, status, needles):
    argv = [a.format(run=ckpts, tmp=tmp_path) for a in argv]
    code, _, err = _run(argv + ["-q"], capsys)
    assert code == status
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "ValueError" not in line
    for needle in needles:
        assert needle in line, line


def test_a_bad_log_column_of_a_given_log_exits_2(ckpts, tmp_path, capsys):
    log = tmp_path / "train_log.csv"
    log.write_text("epoch,loss\n0,1.0\n5,0.5\n10,0.2\n15,0.1\n")
    code, _, err = _run(["analyze", ckpts, "--out", tmp_path / "o", "--log", log,
                         "--log-column", "nope", *FAST], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "train_log.csv" in line and "'nope'" in line and "--log-column" in line
    assert "log_column=" not in line


def test_a_bad_optional_log_is_a_warning(ckpts, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ckpts, run)
    (run / "train_log.csv").write_text("this is not,a log\n\x00\x01garbage\n")
    code, out, err = _run(["analyze", run, "--out", tmp_path / "o", "--no-report",
                           "--n-initial", "32"], capsys)
    assert code == 0, err
    assert "train_log.csv" in err and "without a loss curve" in err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["n_epochs"] == 4


@pytest.mark.parametrize("code_, fix", [(errno.ENOSPC, "free space"),
                                        (errno.EROFS, "make the directory writable")])
def test_a_full_or_read_only_disk_names_the_file_and_leaves_no_temporary(
        ckpts, tmp_path, capsys, monkeypatch, code_, fix):
    real = os.replace

    def failing(src, dst):
        if str(dst).endswith(".npz"):
            raise OSError(code_, os.strerror(code_))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    out = tmp_path / "o"
    code, _, err = _run(["analyze", ckpts, "--out", out, "--no-report", *FAST], capsys)
    assert code == 1
    line = _one_error_line(err)
    assert "epoch_0000.npz" in line and fix in line and "OSError" not in line
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_broken_pipe_ends_quietly(ckpts):
    process = subprocess.Popen([sys.executable, "-m", "analysis", "info", str(ckpts), "--json"],
                               cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # `| head` that has read enough
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert process.returncode == 141
    assert "BrokenPipeError" not in err and "Traceback" not in err


def test_a_library_keyword_is_shown_as_its_flag(ckpts, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ckpts, run)
    _save_leaky(run / "other_epoch5.pt", 3)  # a second family of files
    code, _, err = _run(["analyze", run, "--out", tmp_path / "o", *FAST], capsys)
    line = _one_error_line(err)
    assert code in (1, 2) and "--pattern" in line and "pattern=" not in line


def test_dangling_links_and_unreadable_files_are_named(ckpts, tmp_path, capsys, monkeypatch):
    import builtins
    import shutil

    import checkpoints.formats as formats

    run = tmp_path / "run"
    shutil.copytree(ckpts, run)
    os.symlink(tmp_path / "gone.pt", run / "model_epoch20.pt")
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if str(file).endswith("model_epoch5.pt"):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(formats, "open", guarded, raising=False)
    code, out, _ = _run(["info", run], capsys)
    assert code == 0
    problems = [line for line in out.splitlines() if line.startswith("  /")]
    assert any("model_epoch20.pt" in p and "symbolic link" in p and "gone.pt" in p
               for p in problems), out
    assert any("model_epoch5.pt" in p and "Permission denied" in p and "chmod" in p
               and "corrupt" not in p for p in problems), out


def test_trust_pickle_is_said_on_stderr(ckpts, capsys):
    code, _, err = _run(["find", ckpts / "model_epoch0.pt", "--trust-pickle", *FAST], capsys)
    assert code == 0
    assert "--trust-pickle" in err and "run code" in err


def test_overflow_is_one_line(ckpts, capsys, monkeypatch):
    import analysis

    def overflow(*args, **kwargs):
        raise OverflowError("(34, 'Numerical result out of range')")

    monkeypatch.setattr(analysis, "analyze_checkpoint", overflow)
    code, _, err = _run(["find", ckpts / "model_epoch0.pt", *FAST], capsys)
    assert code == 1
    line = _one_error_line(err)
    assert "model_epoch0.pt" in line and "overflowed" in line
    assert not line.split("error:", 1)[1].strip().startswith("OverflowError")


def test_states_of_1e300_do_not_end_in_a_bare_overflow(tmp_path, capsys):
    """A model whose states run to 1e300 and beyond (an unstable PLRNN)."""
    from checkpoints import build_model

    model = build_model("plrnn", n_inputs=1, n_states=4, n_outputs=1).double()
    state = model.state_dict()
    state["A"] = torch.full((4,), 1e300, dtype=torch.float64)
    torch.save(state, tmp_path / "plrnn_epoch1.pt")
    code, _, err = _run(["find", tmp_path / "plrnn_epoch1.pt", *FAST], capsys)
    assert "Traceback" not in err and "OverflowError" not in err
    assert code == 1
    line = _one_error_line(err)
    assert "plrnn_epoch1.pt" in line and "diverge" in line and "ValueError" not in line
