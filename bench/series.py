"""Benchmark: analyzing a series of checkpoints, serially and in worker processes.

Trains a 100-unit rank-2 leaky RNN on delayed cue discrimination (the ghost paper's setup) for 99
Adam updates, saving all 100 checkpoints (epochs 0..99), then times ``analyze_series`` on them
with ``--jobs 1`` and ``--jobs 2`` (each in a fresh process, so peak memory is that run's own)
and reports checkpoints per second, the speed-up, and the peak resident memory of the main
process and of the largest worker. To show that memory does not grow with the series, it also
runs 25 checkpoints with the same settings. ``--report`` adds the full ``ghostscope analyze``
(portraits, GIF, report.html) with ``--jobs 2``.

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python bench/series.py [--n 100] [--report]

Targets (issue 6): all 100 in under 60 s with ``--jobs 2``; ``--jobs 2`` at least 1.7x faster
than ``--jobs 1`` on two idle cores.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_series(directory: Path, n: int) -> Path:
    """``n`` checkpoints (epochs 0..n-1) of a trained 100-unit rank-2 leaky RNN."""
    from checkpoints.train import train

    train("cue_discrimination", "leaky_rnn", directory, epochs=n - 1, lr=0.01, save_every=1,
          n_states=100, rank=2, seed=0, overwrite=True)
    return directory


def _peak_mib() -> dict:
    to_mib = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0
    return {"main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / to_mib,
            "largest_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / to_mib}


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished workers."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def run_once(directory: str, n: int, jobs: int, report: bool) -> dict:
    """One timed run in this (fresh) process; prints a JSON line."""
    import torch
    torch.set_num_threads(1)
    from checkpoints import CheckpointSeries

    from analysis import analyze_series

    series = CheckpointSeries.from_dir(directory)
    series = series[:n]
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if report:
        from analysis.cli import main
        out = tempfile.mkdtemp(prefix="ghostscope-bench-")
        epochs = f"0:{series.entries[-1].epoch}"
        code = main(["analyze", directory, "--out", out, "--jobs", str(jobs), "--epochs", epochs,
                     "-q"])
        assert code == 0
        analyzed = n
    else:
        analysis = analyze_series(series, jobs=jobs)
        analyzed = len(analysis.results)
        assert not analysis.failed, analysis.failed
    seconds = time.perf_counter() - started
    return {"n": n, "jobs": jobs, "report": report, "analyzed": analyzed, "seconds": seconds,
            "cpu_seconds": _cpu_seconds() - cpu_started,
            "checkpoints_per_s": analyzed / seconds, **_peak_mib()}


def _spawn(directory: Path, n: int, jobs: int, report: bool = False) -> dict:
    argv = [sys.executable, __file__, "--child", str(directory), "--n", str(n), "--jobs",
            str(jobs)] + (["--report"] if report else [])
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"bench run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="checkpoints (default 100)")
    parser.add_argument("--dir", help="reuse this checkpoint directory (made if missing)")
    parser.add_argument("--report", action="store_true",
                        help="also time the full `ghostscope analyze` with the report")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args.child, args.n, args.jobs, args.report)))
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
    rows = [_spawn(directory, args.n, 1), _spawn(directory, args.n, 2),
            _spawn(directory, max(2, args.n // 4), 2)]
    if args.report:
        rows.append(_spawn(directory, args.n, 2, report=True))
    print(f"{'what':<40}{'wall s':>8}{'ckpt/s':>8}{'CPU s':>8}{'main MiB':>10}"
          f"{'worker MiB':>12}")
    for r in rows:
        what = (f"{r['n']} checkpoints, --jobs {r['jobs']}"
                + (", with report" if r["report"] else ""))
        print(f"{what:<40}{r['seconds']:>8.1f}{r['checkpoints_per_s']:>8.2f}"
              f"{r['cpu_seconds']:>8.1f}{r['main_mib']:>10.0f}{r['largest_worker_mib']:>12.0f}")
    print(f"CPU per checkpoint: {rows[0]['cpu_seconds'] / rows[0]['n']:.2f} s (--jobs 1), "
          f"{rows[1]['cpu_seconds'] / rows[1]['n']:.2f} s (--jobs 2, incl. worker start-up)")
    speedup = rows[0]["seconds"] / rows[1]["seconds"]
    print(f"speed-up of --jobs 2 over --jobs 1: {speedup:.2f}x (target >= 1.7x on 2 idle cores)")
    print(f"{args.n} checkpoints with --jobs 2: {rows[1]['seconds']:.1f} s (target < 60 s)")
    grow = rows[1]["main_mib"] - rows[2]["main_mib"]
    print(f"peak memory, {rows[2]['n']} -> {rows[1]['n']} checkpoints: main process "
          f"{rows[2]['main_mib']:.0f} -> {rows[1]['main_mib']:.0f} MiB ({grow:+.0f} MiB)")


if __name__ == "__main__":
    main()
