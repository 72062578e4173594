"""Benchmark: per-checkpoint cost of a custom model (only ``step(x, u)``, derivatives from
``torch.func``) against the built-in model of the same size (closed-form derivatives).

The custom model is a user's leaky RNN written as a plain ``nn.Module`` with ``step`` only and
no size attributes, loaded through a model factory (sizes inferred); the built-in one is
:class:`checkpoints.LeakyRNN` holding the same weights. Each row times loading one checkpoint and
``analyze_checkpoint`` on it (fixed points, ghosts, topology), median of ``--repeats`` runs, and
the ratio custom / built-in.

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python bench/custom_models.py [--n 100]

Target (issue 10): the custom model within 3x of the built-in one.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    class UserLeaky(nn.Module):
        def __init__(self, n, m):
            super().__init__()
            self.W_rec = nn.Parameter(torch.zeros(n, n))
            self.W_in = nn.Linear(m, n)
            self.W_out = nn.Linear(n, 1)

        def step(self, x, u):
            return 0.5 * x + 0.5 * torch.tanh(x @ self.W_rec.T + self.W_in(u))

    def build(state_dict):
        n, m = state_dict["W_in.weight"].shape
        model = UserLeaky(n, m)
        model.load_state_dict(state_dict)
        return model
''')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100, help="units (default 100)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-initial", type=int, default=256)
    args = parser.parse_args()

    import torch

    from analysis import analyze_checkpoint
    from checkpoints import LeakyRNN, load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ref = LeakyRNN(1, args.n, 1, gain=1.5)
        path = Path(tmp) / "model_epoch0.pt"
        torch.save(ref.state_dict(), path)
        factory = Path(tmp) / "user_model.py"
        factory.write_text(FACTORY)
        rows = {}
        for label, options in (("built-in LeakyRNN", {}),
                               ("custom step-only", {"model_factory": f"{factory}:build"})):
            times = []
            for _ in range(args.repeats + 1):  # the first run warms up
                started = time.perf_counter()
                ckpt = load_checkpoint(path, **options)
                result = analyze_checkpoint(ckpt.model, n_initial=args.n_initial, seed=0)
                times.append(time.perf_counter() - started)
            rows[label] = (statistics.median(times[1:]), len(result.fixed_points))
        base = rows["built-in LeakyRNN"][0]
        print(f"per-checkpoint cost, N = {args.n}, {args.n_initial} initial states, median of "
              f"{args.repeats}")
        for label, (seconds, points) in rows.items():
            print(f"  {label:<20} {seconds:7.3f} s  ({points} points)  x{seconds / base:.2f}")


if __name__ == "__main__":
    main()
