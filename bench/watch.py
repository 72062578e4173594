"""Benchmark: how much ``analysis.watch`` slows a training loop down.

Trains the same GRU (``--hidden`` units, one input, a cumulative-sum target) for ``--epochs``
epochs of ``--batches`` Adam steps, twice in one process: without the watcher, then with
``watch(model, every=--every, out=TMP)`` (a snapshot queued at every ``every``-th epoch and
analyzed, with report.html refreshed, in the background process). Prints the median epoch time
of each run, their ratio, the whole-run ratio, and how long the background analysis needed
after the last epoch (``close()``, not part of training).

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python bench/watch.py [--epochs 30] [--every 5]

Target (issue 16): training at most 10% slower with the watcher (median epoch time). The
background analysis runs on another core: on a machine with one free core it competes with
training for it.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train(epochs: int, batches: int, hidden: int, watcher_args=None):
    import torch
    from torch import nn

    from analysis import watch

    torch.manual_seed(0)
    rnn, readout = nn.GRU(1, hidden, batch_first=True), nn.Linear(hidden, 1)
    model = nn.ModuleDict({"rnn": rnn, "readout": readout})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(batches, 64, 50, 1)
    y = 0.1 * torch.cumsum(x, 2)
    w = None if watcher_args is None else watch(model, rnn="rnn", **watcher_args)
    times = []
    start = time.perf_counter()
    for epoch in range(epochs):
        t = time.perf_counter()
        for b in range(batches):
            loss = nn.functional.mse_loss(readout(rnn(x[b])[0]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if w is not None:
            w.step(epoch, loss=loss.item())
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    drain = 0.0
    if w is not None:
        t = time.perf_counter()
        w.close()
        drain = time.perf_counter() - t
        if w.errors:
            raise RuntimeError(f"the background analysis failed: {w.errors[0]}")
    return times, total, drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=32)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    base, base_total, _ = train(args.epochs, args.batches, args.hidden)
    with tempfile.TemporaryDirectory(prefix="ghostscope-bench-watch-") as tmp:
        watched, total, drain = train(args.epochs, args.batches, args.hidden,
                                      dict(every=args.every, out=Path(tmp), n_initial=64))
        n = len(list((Path(tmp) / "epochs").glob("epoch_*.npz")))
    mb, mw = statistics.median(base), statistics.median(watched)
    print(f"GRU {args.hidden} units, {args.epochs} epochs x {args.batches} steps, "
          f"watch every {args.every} ({n} epochs analyzed)")
    print(f"median epoch: {mb * 1e3:.1f} ms without, {mw * 1e3:.1f} ms with the watcher "
          f"(ratio {mw / mb:.3f}; target <= 1.10)")
    print(f"whole run:    {base_total:.2f} s without, {total:.2f} s with "
          f"(ratio {total / base_total:.3f})")
    print(f"background analysis after the last epoch: {drain:.2f} s")


if __name__ == "__main__":
    main()
