"""Does the temporal-consistency penalty (TCR) speed up learning in a strongly coupled RNN?

Trains a leaky firing-rate RNN with a large recurrent gain (≈ 1.8: chaotic at initialization) on
the 3-bit flip-flop, with and without the penalty ``λ · mean ‖h_t − h_{t−1}‖²``, over several
seeds. Each run's checkpoint series is analyzed with ``analysis.analyze_series``; the script
prints, per run, the epoch of the abrupt loss drop (plateau, then a fall below half of it), the
first restructuring event (attractors born, merged, destabilized, rerouted; plain attractor
drift excluded) with its signed lead time, and the number of attractors at the end, followed by
a per-condition summary.

    python examples/tcr_flipflop.py --seeds 5 --jobs 2 --out tcr_runs

Every number is measured; whether TCR helps is what the table says, not an assumption.
Runs already trained (and analyses already done) in ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

STRUCTURAL = ("saddle_node", "pitchfork", "stability_change", "birth", "death",
              "ghost_appeared", "ghost_vanished", "connection_change", "attractor_count")
#: Bifurcations proper (a lone birth or death can also be a point the search missed).
BIFURCATIONS = ("saddle_node", "pitchfork", "stability_change")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...)")
    p.add_argument("--epochs", type=int, default=600)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--gain", type=float, default=1.8, help="recurrent gain at initialization")
    p.add_argument("--tcr", type=float, default=0.1, help="penalty weight λ of the TCR runs")
    p.add_argument("--n-states", type=int, default=100)
    p.add_argument("--save-every", type=int, default=20)
    p.add_argument("--min-plateau", type=float, default=50,
                   help="drop detection: shortest plateau (epochs)")
    p.add_argument("--window", type=float, default=100,
                   help="drop detection: longest fall below half the plateau (epochs)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default="tcr_flipflop_runs")
    return p.parse_args(argv)


def run_one(args, seed: int, tcr: float, drive):
    from analysis import RunOptions, analyze_series
    from checkpoints.train import train

    run = Path(args.out) / f"seed{seed}_tcr{tcr:g}"
    if not (run / "config.json").is_file() or "result" not in json.loads(
            (run / "config.json").read_text()):
        train({"name": "flipflop", "n_bits": 3}, "leaky_rnn", run, epochs=args.epochs,
              lr=args.lr, seed=seed, n_states=args.n_states, batch_size=32,
              save_every=args.save_every, tcr_lambda=tcr, overwrite=True,
              model_kwargs={"gain": args.gain})
    result = analyze_series(run, input=(0.0, 0.0, 0.0), drive=drive,
                            drop={"min_plateau": args.min_plateau, "window": args.window},
                            run=RunOptions(jobs=args.jobs, out=run / "analysis"))
    first = result.first_event(*STRUCTURAL)
    bifurcation = result.first_event(*BIFURCATIONS)
    eight = [r.epoch for r in result.results if r.fixed_points.counts()["stable"] == 8]
    return {
        "seed": seed, "tcr": tcr, "drop_epoch": result.drop_epoch,
        "first_event": None if first is None else first.kind,
        "first_event_epoch": None if first is None else first.epoch,
        "lead_time": None if first is None else first.lead_time,
        "first_bifurcation": None if bifurcation is None else bifurcation.kind,
        "first_bifurcation_epoch": None if bifurcation is None else bifurcation.epoch,
        "bifurcation_lead_time": None if bifurcation is None else bifurcation.lead_time,
        "eight_attractors_epoch": eight[0] if eight else None,
        "final_loss": float(result.loss.loss[-1]) if result.loss is not None else None,
        "final_attractors": result.results[-1].signature.n_attractors,
        "failed": len(result.failed),
    }


def fmt(value, spec="g"):
    return "-" if value is None else format(value, spec)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from checkpoints.tasks import FlipFlop

    inputs, _, _ = FlipFlop(n_bits=3).sample(16, torch.Generator().manual_seed(1234))
    drive = inputs.numpy()
    rows = []
    started = time.perf_counter()
    for seed in range(args.seeds):
        for tcr in (0.0, args.tcr):
            row = run_one(args, seed, tcr, drive)
            rows.append(row)
            print(f"seed {seed} λ={tcr:<5g} drop at {fmt(row['drop_epoch']):>6}  first event "
                  f"{fmt(row['first_event'], 's'):>16} at {fmt(row['first_event_epoch']):>6} "
                  f"(lead {fmt(row['lead_time'], '+g')}); first bifurcation "
                  f"{fmt(row['first_bifurcation'], 's')} at {fmt(row['first_bifurcation_epoch'])} "
                  f"(lead {fmt(row['bifurcation_lead_time'], '+g')}); 8 attractors at "
                  f"{fmt(row['eight_attractors_epoch'])}; final loss "
                  f"{fmt(row['final_loss'], '.4f')}, attractors {row['final_attractors']}",
                  flush=True)
    print(f"\n{len(rows)} runs in {time.perf_counter() - started:.0f} s")
    for tcr in (0.0, args.tcr):
        sub = [r for r in rows if r["tcr"] == tcr]
        drops = [r["drop_epoch"] for r in sub if r["drop_epoch"] is not None]
        firsts = [r["first_event_epoch"] for r in sub if r["first_event_epoch"] is not None]
        bifs = [r["first_bifurcation_epoch"] for r in sub
                if r["first_bifurcation_epoch"] is not None]

        def mean(v):
            return f"{statistics.mean(v):.0f} ± {statistics.pstdev(v):.0f}" if v else "-"

        print(f"λ={tcr:g}: drop found in {len(drops)}/{len(sub)} runs, epochs to the drop "
              f"{mean(drops)}; first restructuring event at epoch {mean(firsts)}; first "
              f"bifurcation at epoch {mean(bifs)}; final loss "
              f"{statistics.mean(r['final_loss'] for r in sub):.4f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
