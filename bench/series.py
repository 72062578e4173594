"""Benchmark: analyzing a series of checkpoints, serially and in worker processes.

Trains a 100-unit rank-2 leaky RNN on delayed cue discrimination (the ghost paper's setup) for 99
Adam updates, saving all 100 checkpoints (epochs 0..99), then times

* the whole command, ``ghostscope analyze DIR --no-report --jobs 1`` and ``--jobs 2``, from
  process start to exit (what a user waits for; the command starts its workers' imports
  alongside its own);
* ``analyze_series`` in a process that has already imported everything, with ``jobs=1`` and
  ``jobs=2`` (the workers' start-up is inside the timing), and once more with workers spawned
  as fresh interpreters (``GHOSTSCOPE_START_METHOD=spawn``): only spawned workers are children
  of the timed process, so only that row can report the workers' CPU time and peak memory;
* 25 checkpoints with ``jobs=2``, to show that memory does not grow with the series;
* with ``--report``, the whole command with portraits, GIF and report.html, ``--jobs 1`` and 2.

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python bench/series.py [--n 100] [--report]

Targets (issue 6): all 100 in under 60 s with ``--jobs 2``; ``--jobs 2`` at least 1.7x faster
than ``--jobs 1`` on two idle cores.
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


def _command(directory: Path, n: int, jobs: int, report: bool) -> dict:
    """The whole ``ghostscope analyze`` command, from process start to exit."""
    out = tempfile.mkdtemp(prefix="ghostscope-bench-")
    argv = [sys.executable, "-m", "analysis", "analyze", str(directory), "--out", out,
            "--jobs", str(jobs), "--epochs", f"0:{n - 1}", "-q"] + ([] if report else
                                                                  ["--no-report"])
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ghostscope analyze failed:\n{done.stderr[-3000:]}")
    return {"what": f"ghostscope analyze{'' if report else ' --no-report'}, {n}, --jobs {jobs}",
            "n": n, "seconds": seconds, "checkpoints_per_s": n / seconds, "cpu_seconds": None,
            "main_mib": None, "largest_worker_mib": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="checkpoints (default 100)")
    parser.add_argument("--dir", help="reuse this checkpoint directory (made if missing)")
    parser.add_argument("--report", action="store_true",
                        help="also time `ghostscope analyze` with the report, --jobs 1 and 2")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args.child, args.n, args.jobs)))
        return

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ghostscope-series-"))
    if not list(directory.glob("model_epoch*.pt")):
        started = time.perf_counter()
        make_series(directory, args.n)
        print(f"made {args.n} checkpoints of a 100-unit rank-2 leaky RNN in "
              f"{time.perf_counter() - started:.1f} s ({directory})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at the start "
          f"(timings are only meaningful on idle cores); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    commands = [_command(directory, args.n, 1, False), _command(directory, args.n, 2, False)]
    api = [_spawn(directory, args.n, 1), _spawn(directory, args.n, 2),
           _spawn(directory, args.n, 2, spawn_workers=True),
           _spawn(directory, max(2, args.n // 4), 2)]
    reports = ([_command(directory, args.n, 1, True), _command(directory, args.n, 2, True)]
               if args.report else [])

    def cell(value, width, fmt):
        return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"

    print(f"{'what':<58}{'wall s':>8}{'ckpt/s':>8}{'CPU s':>8}{'main MiB':>10}"
          f"{'worker MiB':>12}")
    for r in commands + api + reports:
        print(f"{r['what']:<58}{r['seconds']:>8.1f}{r['checkpoints_per_s']:>8.2f}"
              f"{cell(r['cpu_seconds'], 8, '.1f')}{cell(r['main_mib'], 10, '.0f')}"
              f"{cell(r['largest_worker_mib'], 12, '.0f')}")
    command_ratio = commands[0]["seconds"] / commands[1]["seconds"]
    print(f"speed-up of --jobs 2 over --jobs 1: {command_ratio:.2f}x for the command, "
          f"{api[0]['seconds'] / api[1]['seconds']:.2f}x for analyze_series "
          f"(target >= 1.7x on 2 idle cores)")
    if reports:
        print(f"with the report: {reports[0]['seconds'] / reports[1]['seconds']:.2f}x")
    print(f"CPU per checkpoint: {api[0]['cpu_seconds'] / api[0]['n']:.2f} s serially, "
          f"{api[2]['cpu_seconds'] / api[2]['n']:.2f} s with 2 spawned workers (their start-up "
          f"included)")
    print(f"{args.n} checkpoints with --jobs 2: {commands[1]['seconds']:.1f} s for the command "
          f"(target < 60 s)")
    grow = api[1]["main_mib"] - api[3]["main_mib"]
    print(f"peak memory, {api[3]['n']} -> {api[1]['n']} checkpoints: main process "
          f"{api[3]['main_mib']:.0f} -> {api[1]['main_mib']:.0f} MiB ({grow:+.0f} MiB)")


if __name__ == "__main__":
    main()
