"""Benchmark: re-running ``ghostscope analyze`` over a finished OUT (issue 14, item 6).

Trains a 100-unit rank-2 leaky RNN on delayed cue discrimination for 99 Adam updates (100
checkpoints, as ``bench/series.py``), then, for the first 3 and for all 100 checkpoints, times
the whole command with the report, from process start to exit:

* the first run, into an empty OUT;
* the re-run, the same command over the finished OUT: nothing changed, so the command finds
  its own fingerprint in OUT (``analysis.reuse``) and prints the results without importing
  torch;
* the ordinary re-run, the same with that record removed first (what any change, or an API
  caller, goes through): every epoch, the continuation, the projection and every picture are
  reused by their keys, so what is left is the start-up with torch, reading the epochs and
  writing ``summary.json``.

Each is repeated (``--repeats``, fresh OUT each time) and the medians are printed with their
ratio, in wall time and in CPU time of the command (user + system: steadier than wall time on
a shared machine); the load average before and after is printed too.

Usage::

    python bench/rerun.py [--n 3 100] [--repeats 3] [--jobs 1]

Targets: a re-run takes under 0.3x the first run's time for 3 checkpoints, under 0.1x for 100.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_command(directory: Path, out: Path, n: int, jobs: int) -> Dict[str, float]:
    """One timed ``ghostscope analyze`` (report on) over the first ``n`` checkpoints."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, "-m", "analysis", "analyze", str(directory), "--out", str(out),
            "--epochs", f"0:{n - 1}", "--jobs", str(jobs), "-q"]
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return {"wall": seconds, "cpu": _children_cpu() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[3, 100],
                        help="series lengths to time (default 3 and 100)")
    parser.add_argument("--repeats", type=int, default=3, help="first runs (each with a re-run)")
    parser.add_argument("--reruns", type=int, default=3, help="re-runs after each first run")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    from series import make_series  # bench/series.py: the same trained run

    from analysis.reuse import RUN_RECORD

    work = Path(tempfile.mkdtemp(prefix="ghostscope-rerun-"))
    try:
        directory = make_series(work / "ckpts", max(args.n))
        print(f"load average before: {_load()} ({os.cpu_count()} cores); jobs={args.jobs}")
        rows = []
        for n in args.n:
            first: List[Dict[str, float]] = []
            again: List[Dict[str, float]] = []
            ordinary: List[Dict[str, float]] = []
            for k in range(args.repeats):
                out = work / f"out_{n}_{k}"
                first.append(run_command(directory, out, n, args.jobs))
                for _ in range(args.reruns):
                    again.append(run_command(directory, out, n, args.jobs))
                    (out / RUN_RECORD).unlink()
                    ordinary.append(run_command(directory, out, n, args.jobs))
                shutil.rmtree(out)
            row: Dict[str, float] = {"n": n}
            for what in ("wall", "cpu"):
                a = statistics.median(r[what] for r in first)
                for name, runs in (("rerun", again), ("ordinary", ordinary)):
                    b = statistics.median(r[what] for r in runs)
                    row.update({f"{name}_{what}": b, f"{name}_ratio_{what}": b / a})
                row[f"first_{what}"] = a
            rows.append(row)
            print(f"{n:4d} checkpoints: first run {row['first_wall']:7.2f} s "
                  f"(cpu {row['first_cpu']:6.2f} s) [median of {len(first)}]", flush=True)
            for name, label in (("rerun", "re-run"), ("ordinary", "ordinary re-run")):
                print(f"     {label:>16}: {row[name + '_wall']:6.2f} s (cpu "
                      f"{row[name + '_cpu']:5.2f} s): {row[name + '_ratio_wall']:.3f}x wall, "
                      f"{row[name + '_ratio_cpu']:.3f}x cpu [median of {len(again)}]",
                      flush=True)
        print(f"load average after: {_load()}")
        targets = {3: 0.3, 100: 0.1}
        for row in rows:
            target = targets.get(row["n"])
            if target is not None:
                ok = "met" if row["rerun_ratio_wall"] < target else "NOT met"
                print(f"target for {row['n']} checkpoints: re-run < {target}x first run: {ok} "
                      f"(wall {row['rerun_ratio_wall']:.3f}x, cpu {row['rerun_ratio_cpu']:.3f}x;"
                      f" ordinary re-run {row['ordinary_ratio_wall']:.3f}x wall)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
