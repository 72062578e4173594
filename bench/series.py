"""Benchmark: analyzing a series of checkpoints, warm-started or cold, serially and in workers.

Trains a 100-unit rank-2 leaky RNN on delayed cue discrimination (the ghost paper's setup) for
``n - 1`` Adam updates, saving every checkpoint (epochs 0..n-1, one epoch apart: the real
training trajectory), then times

* the whole command ``ghostscope analyze DIR --no-report --jobs 2``, from process start to exit,
  with warm starts (the default: each worker walks a contiguous chunk of epochs, polishing the
  previous checkpoint's fixed points first) and with ``--no-warm-start`` (every checkpoint from
  scratch), and checks that both found the same points at every checkpoint (same counts of
  each kind of fixed point, slow point and ghost; points matched to ``1e-6 · scale``,
  :func:`analysis.epoch.points_differ`). This rank-2 network's candidates are the latent
  speed's minima (``FinderOptions.latent_starts``), which depend on the checkpoint alone, so
  no epoch is warm-started and the two runs do the same work: the warm-start figures of other
  networks come from ``tests/analysis/test_warm_start.py`` (``latent_starts=False``);
* the same warm command on the first quarter of the series, to show that the peak memory (of the
  command and of its largest worker, sampled from ``/proc``) does not grow with the series;
* with ``--api``, also ``analyze_series`` in a process that has already imported everything,
  ``jobs=1`` and ``jobs=2`` (and once with workers spawned as fresh interpreters,
  ``GHOSTSCOPE_START_METHOD=spawn``, the only row that can report the workers' CPU time), and
  ``--jobs 1`` of the command;
* with ``--report``, the whole command with portraits, GIF and report.html, ``--jobs 1`` and 2.

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python bench/series.py [--n 1000] [--api] [--report]

Targets: issue 14 item 1, at least 20 checkpoints per second for 1000 checkpoints with
``--jobs 2`` on two idle cores, the same points as a cold run at every checkpoint, flat memory;
issue 6, ``--jobs 2`` at least 1.7x faster than ``--jobs 1``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_series(directory: Path, n: int) -> Path:
    """``n`` checkpoints (epochs 0..n-1) of a trained 100-unit rank-2 leaky RNN."""
    from checkpoints.train import train

    train("cue_discrimination", "leaky_rnn", directory, epochs=n - 1, lr=0.01, save_every=1,
          n_states=100, rank=2, seed=0, overwrite=True)
    return directory


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished workers."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def run_once(directory: str, n: int, jobs: int) -> dict:
    """One timed ``analyze_series`` in this (fresh) process; prints a JSON line."""
    import torch
    torch.set_num_threads(1)
    from checkpoints import CheckpointSeries

    from analysis import analyze_series

    series = CheckpointSeries.from_dir(directory)[:n]
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    analysis = analyze_series(series, run=dict(jobs=jobs))
    assert not analysis.failed, analysis.failed
    seconds = time.perf_counter() - started
    spawned = os.environ.get("GHOSTSCOPE_START_METHOD") == "spawn" or jobs == 1
    return {"what": f"analyze_series, {n} checkpoints, jobs={jobs}"
                    + (" (spawned workers)" if spawned and jobs > 1 else ""),
            "n": n, "seconds": seconds, "checkpoints_per_s": len(analysis.results) / seconds,
            # forked workers are the fork server's children: their CPU is not ours to count
            "cpu_seconds": _cpu_seconds() - cpu_started if spawned else None,
            **_peak_mib(spawned)}


def _peak_mib(spawned: bool) -> dict:
    to_mib = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / to_mib
    return {"main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / to_mib,
            "largest_worker_mib": children if spawned and children else None}


def _spawn(directory: Path, n: int, jobs: int, spawn_workers: bool = False) -> dict:
    argv = [sys.executable, __file__, "--child", str(directory), "--n", str(n), "--jobs",
            str(jobs)]
    env = dict(os.environ, **({"GHOSTSCOPE_START_METHOD": "spawn"} if spawn_workers else {}))
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree_peaks(root: int, peaks: dict, cpu: dict) -> None:
    """Record the peak RSS (VmHWM, MiB) of ``root`` and of all its descendants in ``peaks``,
    and the CPU seconds (user + system) each has used so far in ``cpu``."""
    children: dict = {}
    ticks: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        cpu[pid] = max(cpu.get(pid, 0.0), ticks.get(pid, 0.0))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = max(peaks.get(pid, 0.0), int(line.split()[1]) / 1024.0)
        except OSError:
            continue


def _command(directory: Path, n: int, jobs: int, report: bool, warm: bool = True,
             out: Optional[str] = None) -> dict:
    """The whole ``ghostscope analyze`` command, from process start to exit.

    On Linux the peak memory of the command and of its largest worker, and the CPU time of
    the command and all its descendants (workers, fork server), are sampled from /proc
    every 0.2 s (so up to 0.2 s of CPU per process is missed; a process that lives shorter
    than that may be missed altogether).
    """
    out = out or tempfile.mkdtemp(prefix="ghostscope-bench-")
    argv = [sys.executable, "-m", "analysis", "analyze", str(directory), "--out", out,
            "--jobs", str(jobs), "--epochs", f"0:{n - 1}", "-q"] + ([] if report else
                                                                  ["--no-report"])
    argv += [] if warm else ["--no-warm-start"]
    started = time.perf_counter()
    peaks: dict = {}
    cpu: dict = {}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=ROOT) as process:
        watch = Path("/proc").is_dir()
        while process.poll() is None:
            if watch:
                _tree_peaks(process.pid, peaks, cpu)
            time.sleep(0.2)
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"ghostscope analyze failed:\n{stderr[-3000:]}")
    main_mib = peaks.pop(process.pid, None)
    what = (f"ghostscope analyze{'' if report else ' --no-report'}, {n}, --jobs {jobs}"
            + ("" if warm else " --no-warm-start"))
    return {"what": what, "n": n, "seconds": seconds, "checkpoints_per_s": n / seconds,
            "cpu_seconds": sum(cpu.values()) if cpu else None, "main_mib": main_mib,
            "largest_worker_mib": max(peaks.values()) if peaks else None, "out": out}


def _median_run(runs: list) -> dict:
    """The run of median wall time, the lower middle one for an even count (with its own
    output directory and memory figures)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def compare_outputs(warm_out: str, cold_out: str, rtol: float = 1e-6) -> dict:
    """Compare every epoch of two ``analyze`` outputs (:func:`analysis.epoch.points_differ`)."""
    from analysis.epoch import EpochAnalysis, points_differ

    stems = sorted(p.stem for p in Path(cold_out, "epochs").glob("epoch_*.json"))
    differ, warm_epochs = [], 0
    for stem in stems:
        a = EpochAnalysis.load(Path(warm_out, "epochs", stem))
        b = EpochAnalysis.load(Path(cold_out, "epochs", stem))
        warm_epochs += "warm_start" in a.info
        why = points_differ(a, b, rtol)
        if why is not None:
            differ.append(why)
    return {"epochs": len(stems), "differ": differ, "warm_epochs": warm_epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="checkpoints (default 1000)")
    parser.add_argument("--dir", help="reuse this checkpoint directory (made if missing)")
    parser.add_argument("--api", action="store_true",
                        help="also time analyze_series in-process and the command's --jobs 1")
    parser.add_argument("--report", action="store_true",
                        help="also time `ghostscope analyze` with the report, --jobs 1 and 2")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of the warm and of the cold command, alternating (medians "
                             "are compared; default 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args.child, args.n, args.jobs)))
        return

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ghostscope-series-"))
    if len(list(directory.glob("model_epoch*.pt"))) < args.n:
        started = time.perf_counter()
        make_series(directory, args.n)
        print(f"made {args.n} checkpoints of a 100-unit rank-2 leaky RNN in "
              f"{time.perf_counter() - started:.1f} s ({directory})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at the start "
          f"(timings are only meaningful on idle cores); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    # warm and cold runs alternate, so that a change of the machine's load hits both alike
    warms, colds = [], []
    for _ in range(args.repeat):
        warms.append(_command(directory, args.n, 2, False))
        colds.append(_command(directory, args.n, 2, False, warm=False))
    warm, cold = _median_run(warms), _median_run(colds)
    quarter = _command(directory, max(2, args.n // 4), 2, False)
    commands = warms + colds + [quarter]
    api = []
    if args.api:
        commands.append(_command(directory, args.n, 1, False))
        api = [_spawn(directory, args.n, 1), _spawn(directory, args.n, 2),
               _spawn(directory, args.n, 2, spawn_workers=True)]
    reports = ([_command(directory, args.n, 1, True), _command(directory, args.n, 2, True)]
               if args.report else [])

    def cell(value, width, fmt):
        return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"

    print(f"{'what':<66}{'wall s':>8}{'ckpt/s':>8}{'CPU s':>8}{'main MiB':>10}"
          f"{'worker MiB':>12}")
    for r in commands + api + reports:
        print(f"{r['what']:<66}{r['seconds']:>8.1f}{r['checkpoints_per_s']:>8.2f}"
              f"{cell(r['cpu_seconds'], 8, '.1f')}{cell(r['main_mib'], 10, '.0f')}"
              f"{cell(r['largest_worker_mib'], 12, '.0f')}")
    same = compare_outputs(warm["out"], cold["out"])
    print(f"warm starts (medians of {args.repeat}): {warm['checkpoints_per_s']:.2f} "
          f"checkpoints/s, cold {cold['checkpoints_per_s']:.2f} "
          f"({cold['seconds'] / warm['seconds']:.2f}x faster warm; target >= 20 checkpoints/s "
          f"on 2 idle cores)")
    if warm["cpu_seconds"] and cold["cpu_seconds"]:
        print(f"CPU of the whole command per checkpoint: {warm['cpu_seconds'] / warm['n']:.3f} s "
              f"warm, {cold['cpu_seconds'] / cold['n']:.3f} s cold "
              f"({cold['cpu_seconds'] / warm['cpu_seconds']:.2f}x)")
    print(f"same points as the cold run at {same['epochs'] - len(same['differ'])} of "
          f"{same['epochs']} checkpoints ({same['warm_epochs']} warm-started)"
          + "".join(f"\n  differs: {why}" for why in same["differ"][:10]))
    for key, label in (("main_mib", "command"), ("largest_worker_mib", "largest worker")):
        if warm[key] is not None and quarter[key] is not None:
            print(f"peak memory of the {label}, {quarter['n']} -> {warm['n']} checkpoints: "
                  f"{quarter[key]:.0f} -> {warm[key]:.0f} MiB ({warm[key] - quarter[key]:+.0f})")
    if api:
        print(f"speed-up of --jobs 2 over --jobs 1: "
              f"{commands[3]['seconds'] / warm['seconds']:.2f}x for the command, "
              f"{api[0]['seconds'] / api[1]['seconds']:.2f}x for analyze_series "
              f"(target >= 1.7x on 2 idle cores)")
        print(f"CPU per checkpoint: {api[0]['cpu_seconds'] / api[0]['n']:.2f} s serially, "
              f"{api[2]['cpu_seconds'] / api[2]['n']:.2f} s with 2 spawned workers (their "
              f"start-up included)")
    if reports:
        print(f"with the report: {reports[0]['seconds'] / reports[1]['seconds']:.2f}x")
    if same["differ"]:
        raise SystemExit(f"warm and cold runs differ at {len(same['differ'])} checkpoint(s)")


if __name__ == "__main__":
    main()
