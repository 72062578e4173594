"""The ghost paper's delayed cue discrimination run, written in the authors' own layout and
analyzed from its root as their files would be.

    python examples/ghost_paper_run.py --epochs 300 --out results_dcdt

writes ``results_dcdt/seed_0/models/model_epoch{e}.pt`` (every epoch), ``final.npz`` and
``model_final.pt`` with :func:`checkpoints.train_paper_run` (their model, task, SGD at lr 1e-3,
fresh random initial states; the paper trains 100,000 epochs), then runs
``analysis.analyze_series`` on ``results_dcdt/seed_0``: the checkpoint folder ``models/`` is
found below the root, the model is recognized as the paper's row-vector rank-2 RNN from its
weights, and ``final.npz`` is aligned with ``log_offset=-1``. It prints what the reader saw and
the fixed points of every 10th epoch. ``--epochs`` and ``--every`` trade time for detail.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--task", choices=("dcdt", "dmts"), default="dcdt")
    parser.add_argument("--out", default="results_dcdt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=10, help="analyze every K-th checkpoint")
    args = parser.parse_args()

    from analysis import analyze_series
    from checkpoints import CheckpointSeries, train_paper_run

    run = Path(args.out) / f"seed_{args.seed}"
    if not (run / "final.npz").is_file():
        result = train_paper_run(args.task, run, epochs=args.epochs, seed=args.seed)
        print(f"trained {args.task} for {args.epochs} epochs: loss "
              f"{result.loss_history[0]:.4f} -> {result.loss_history[-1]:.4f}")
    series = CheckpointSeries.from_run(run)
    first = series[0]
    print(f"run {run}: {series.run.reason}; {len(series)} checkpoints")
    print(f"model: {first.architecture}, convention {first.convention} ({first.convention_reason})")
    keep = series.subset(series.entries[::args.every])
    analysis = analyze_series(keep, n_initial=128, ghosts=False)
    print(f"loss log: {analysis.loss.source} ({analysis.loss.note})")
    for r in analysis.results:
        kinds = sorted(str(k) for k in r.fixed_points.kind)
        print(f"  epoch {r.epoch:>5}: loss {r.loss:.4f}, {len(kinds)} points {kinds}")


if __name__ == "__main__":
    main()
