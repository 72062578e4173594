"""Benchmark: events per interval and their agreement over the finder's seeds.

The events of a run must not depend on the finder's random starts. This trains two runs once
(into ``--work``, reused when present):

* ``demo``: the ``ghostscope demo`` run (rank-one RNN, delayed activation, a plateau and an
  abrupt drop; :data:`analysis.cli.DEMO_TRAINING`);
* ``flipflop``: a 32-unit leaky RNN trained on the 3-bit flip-flop with Adam (400 epochs, a
  checkpoint every 20: the former demo);

analyzes each with ``EpochSettings.seed`` = 0, 1, 2 (``--seeds``), and prints, per run:

* events per interval (mean over the seeds), and the count of each kind;
* **seed agreement**: events are keyed by (kind, epoch_before, epoch_after); for each ordered
  pair of seeds (s, t), the fraction of s's events that t reports too (multiset intersection),
  averaged over the pairs; and the strict form, ``3 |E0 ∩ E1 ∩ E2| / (|E0| + |E1| + |E2|)``.
  An empty event list agrees with an empty one (1.0).

Usage::

    OMP_NUM_THREADS=1 python bench/events.py [--work DIR] [--runs demo flipflop] [--jobs 2]

Run it from an older checkout (``PYTHONPATH`` set to it) on the same ``--work`` directory to get
the "before" figures. Target (issue 19): agreement ≥ 0.95 on both runs.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import collections
import itertools
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/fixedpoints.py would shadow the package: drop this folder from the path; the checkout
# comes from PYTHONPATH (to measure an older one) or else from the folder above
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(HERE.parent))

FLIPFLOP = dict(task="flipflop", architecture="leaky_rnn", n_states=32, epochs=400, lr=0.01,
                optimizer="adam", save_every=20, seed=0)
DEMO = dict(task="delayed_activation", architecture="rank_one_rnn", n_states=100, epochs=1500,
            lr=0.01, optimizer="sgd", save_every=50, seed=40, confidence=7.0)
RUNS = {"demo": DEMO, "flipflop": FLIPFLOP}


def train_run(name: str, work: Path) -> Path:
    from checkpoints.train import train

    out = work / name
    if (out / "train_log.csv").is_file():
        return out
    cfg = dict(RUNS[name])
    task, arch = cfg.pop("task"), cfg.pop("architecture")
    train(task, arch, out, overwrite=True, **cfg)
    return out


def agreement(keys):
    """(pairwise mean, strict all-seeds) agreement of multisets of event keys."""
    counters = [collections.Counter(k) for k in keys]
    pairs = []
    for a, b in itertools.permutations(range(len(counters)), 2):
        total = sum(counters[a].values())
        pairs.append(1.0 if total == 0 else sum((counters[a] & counters[b]).values()) / total)
    common = counters[0]
    for c in counters[1:]:
        common = common & c
    total = sum(sum(c.values()) for c in counters)
    strict = 1.0 if total == 0 else len(counters) * sum(common.values()) / total
    return sum(pairs) / len(pairs), strict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/ghostscope_bench_events")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    from analysis import analyze_series

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.runs:
        run = train_run(name, work)
        keys, per_interval, kinds, seconds = [], [], collections.Counter(), []
        for seed in args.seeds:
            started = time.perf_counter()
            result = analyze_series(run, seed=seed, run=dict(jobs=args.jobs))
            seconds.append(time.perf_counter() - started)
            k = [(e.kind, e.epoch_before, e.epoch_after) for e in result.events]
            keys.append(k)
            kinds.update(e.kind for e in result.events)
            per_interval.append(len(k) / max(len(result.results) - 1, 1))
        pairwise, strict = agreement(keys)
        row = {"label": args.label, "run": name, "seeds": args.seeds,
               "events_per_interval": round(sum(per_interval) / len(per_interval), 3),
               "events_per_seed": [len(k) for k in keys],
               "kinds_over_seeds": dict(sorted(kinds.items())),
               "agreement_pairwise": round(pairwise, 4), "agreement_strict": round(strict, 4),
               "seconds_per_analysis": round(sorted(seconds)[len(seconds) // 2], 1)}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
