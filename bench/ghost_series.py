"""Benchmark and check: ghost detection along a training series, this tree against a baseline.

Analyzes checkpoints of a series (``analyze_series``, ``jobs=1``) and records, for each epoch,
the exact inputs the pipeline gives :func:`fixedpoints.detect_ghosts` (the system, the finder's
result, the initial states, the options). Then runs ``detect_ghosts`` of this tree and of a
baseline commit (its ``fixedpoints/ghosts.py`` and ``ghost_certificates.py``, loaded beside
this tree's) on the same inputs, alternating which goes first, and reports

* the median seconds per checkpoint of each and their ratio (one process, same inputs);
* every epoch where the two disagree: :func:`analysis.epoch.points_differ` (same counts and
  kinds of ghosts, points within ``1e-6 · scale``), and any ghost field (dwell time, strength,
  passage time, contrast, exclusion radius, κ ...) that differs by more than ``--rtol``
  relative; the rejection counters are compared too (reported, not an error).

Usage::

    OMP_NUM_THREADS=1 python bench/ghost_series.py --dir /tmp/warm/s1000 \
        --epochs 0:50,280:330,950:1000 [--baseline bf91449] [--breakdown] [--profile]

``--breakdown`` adds the seconds per checkpoint of each stage (Newton search, latent seeds,
reduced form, certificates, dwell simulation) of both. ``--dir`` is read only; without it a
1000-checkpoint series is trained into a temporary directory (``bench/series.py``'s
``make_series``). Exits 1 when any epoch disagrees.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Ghost fields compared between the two runs (relative tolerance ``--rtol``).
FIELDS = ("speed", "velocity_norm", "alignment", "curvature", "width", "passage_time",
          "dwell_time", "fixed_point_distance", "isolation", "contrast", "relaxation_time",
          "strength", "exclusion_radius", "kappa", "kappa_distance", "transverse_eigvals")


#: Stages of detect_ghosts timed with ``--breakdown`` (functions of fixedpoints.ghosts).
STAGES = ("_newton_search", "_low_rank_seeds", "_reduced_form", "certify_ghosts",
          "_simulate_dwell", "_spectra")


def time_stages(module, seconds: dict) -> None:
    """Wrap the :data:`STAGES` of ``module`` so that their seconds add up in ``seconds`` (a
    baseline without a stage, such as ``_spectra`` before it was split off, counts it as
    other)."""
    for name in STAGES:
        inner = getattr(module, name, None)
        if inner is None:
            continue

        def timed(*args, _inner=inner, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                seconds[_name] = seconds.get(_name, 0.0) + time.perf_counter() - started

        setattr(module, name, timed)


def load_baseline(commit: str):
    """The baseline's ``detect_ghosts`` (its ghosts.py and ghost_certificates.py, imported as
    ``fixedpoints._baseline_ghosts`` beside this tree's modules)."""
    where = Path(tempfile.mkdtemp(prefix="ghost-baseline-"))
    names = {}
    for stem in ("ghost_certificates", "ghosts"):
        text = subprocess.run(["git", "show", f"{commit}:fixedpoints/{stem}.py"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
        text = text.replace("from .ghost_certificates import",
                            "from ._baseline_ghost_certificates import")
        path = where / f"_baseline_{stem}.py"
        path.write_text(text)
        name = f"fixedpoints._baseline_{stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        names[stem] = module
    return names["ghosts"].detect_ghosts


def capture(directory: str, ranges):
    """(epoch analysis without ghosts, detect_ghosts inputs) for each epoch of ``ranges``."""
    import analysis.epoch as epoch_mod
    from analysis import analyze_series
    from checkpoints import CheckpointSeries

    series = CheckpointSeries.from_dir(directory)
    calls = []
    original = epoch_mod._detect_ghosts

    def record(dynamics, fixed_points, initial_states, settings):
        states = epoch_mod._away_from_fixed_points(initial_states, fixed_points)
        calls.append((dynamics, fixed_points, states, settings.ghosts))
        return None

    epoch_mod._detect_ghosts = record
    try:
        out = []
        for a, b in ranges:
            first = len(calls)
            result = analyze_series(series[a:b], run=dict(jobs=1, progress=False))
            epochs = sorted(result.results, key=lambda e: e.epoch)
            assert len(epochs) == len(calls) - first, (len(epochs), len(calls) - first)
            out.extend(zip(epochs, calls[first:]))
    finally:
        epoch_mod._detect_ghosts = original
    return out


#: Largest relative difference seen in each ghost field (over the epochs compared).
WORST: dict = {}


def compare(epoch, a, b, rtol: float):
    """Differences between two ghost results of one epoch, as a list of strings (the largest
    relative difference of each field is kept in :data:`WORST`)."""
    from analysis.epoch import points_differ

    why = points_differ(replace(epoch, ghosts=a), replace(epoch, ghosts=b))
    if why is not None:
        return [why]
    out = []
    if len(a):  # match b's rows to a's (nearest point), then compare fields
        d = np.linalg.norm(a.x[:, None] - b.x[None], axis=2)
        match = d.argmin(1)
        for name in FIELDS:
            va = np.asarray(getattr(a, name))
            vb = np.asarray(getattr(b, name))[match]
            if va.shape != vb.shape:
                out.append(f"epoch {epoch.epoch}: {name} shapes {va.shape} != {vb.shape}")
                continue
            if name == "transverse_eigvals":
                va, vb = np.sort_complex(va), np.sort_complex(vb)
            both_nan = np.isnan(va) & np.isnan(vb) if va.dtype.kind != "c" else \
                np.isnan(va.real) & np.isnan(vb.real)
            size = np.maximum(np.abs(va), np.abs(vb)).max(initial=0.0) + 1e-300
            if name == "kappa_distance":  # a state-space distance: relative to the scale
                size = max(epoch.scale, 1e-300)
            gap = np.where(both_nan, 0.0, np.abs(va - vb))
            bad = ~(gap <= rtol * size)
            WORST[name] = max(WORST.get(name, 0.0), float(np.nanmax(gap, initial=0.0) / size))
            if bad.any():
                out.append(f"epoch {epoch.epoch}: {name} differs by "
                           f"{np.nanmax(np.abs(va - vb)):.3g} (values {np.nanmax(np.abs(va)):.3g})")
    ra, rb = a.info.get("rejected", {}), b.info.get("rejected", {})
    if ra != rb:
        out.append(f"epoch {epoch.epoch}: (info) rejections {ra} != {rb}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="checkpoint directory (read only); trained if omitted")
    parser.add_argument("--epochs", default="0:50,280:330,950:1000",
                        help="comma-separated ranges a:b of checkpoint indices")
    parser.add_argument("--baseline", default="bf91449", help="commit to compare against")
    parser.add_argument("--rtol", type=float, default=1e-8,
                        help="relative tolerance of the ghost fields (default 1e-8)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each, per epoch")
    parser.add_argument("--breakdown", action="store_true",
                        help="also report the seconds per checkpoint of each stage")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile this tree's detect_ghosts over the epochs")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    from fixedpoints.ghosts import detect_ghosts

    directory = args.dir
    if directory is None:
        sys.path.insert(0, str(ROOT / "bench"))
        from series import make_series
        directory = str(make_series(Path(tempfile.mkdtemp(prefix="ghost-series-")), 1000))
    ranges = [tuple(int(v) for v in part.split(":")) for part in args.epochs.split(",")]
    baseline = load_baseline(args.baseline)
    started = time.perf_counter()
    cases = capture(directory, ranges)
    print(f"captured {len(cases)} epochs in {time.perf_counter() - started:.1f} s", flush=True)
    if args.profile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        for _, (dyn, fp, states, opts) in cases:
            detect_ghosts(dyn, fixed_points=fp, initial_states=states, options=opts)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        return
    stages: dict = {"baseline": {}, "new": {}}
    if args.breakdown:
        import fixedpoints.ghosts as ghosts_mod
        time_stages(sys.modules["fixedpoints._baseline_ghosts"], stages["baseline"])
        time_stages(ghosts_mod, stages["new"])
    times: dict = {"baseline": [], "new": []}
    problems, notes = [], []
    for k, (epoch, (dyn, fp, states, opts)) in enumerate(cases):
        runs = {}
        order = ("baseline", "new") if k % 2 == 0 else ("new", "baseline")
        for _ in range(args.repeat):
            for who in order:
                fn = baseline if who == "baseline" else detect_ghosts
                # the baseline has its own GhostOptions class: give it the fields
                given = asdict(opts) if who == "baseline" else opts
                t0 = time.perf_counter()
                runs[who] = fn(dyn, fixed_points=fp, initial_states=states, options=given)
                times[who].append(time.perf_counter() - t0)
        for line in compare(epoch, runs["baseline"], runs["new"], args.rtol):
            (notes if "(info)" in line else problems).append(line)
    base, new = statistics.median(times["baseline"]), statistics.median(times["new"])
    print(f"detect_ghosts per checkpoint (median of {len(times['new'])}): baseline "
          f"{args.baseline} {base * 1e3:.1f} ms, this tree {new * 1e3:.1f} ms, ratio "
          f"{base / new:.2f}x; totals {sum(times['baseline']):.2f} s / {sum(times['new']):.2f} s;"
          f" load {os.getloadavg()[0]:.2f}")
    for who, spent in stages.items():
        if spent:
            total = sum(times[who])
            print(f"{who}: " + ", ".join(f"{k} {v / len(times[who]) * 1e3:.1f}"
                                         for k, v in spent.items())
                  + f", other {(total - sum(spent.values())) / len(times[who]) * 1e3:.1f}"
                  " ms per checkpoint (mean)")
    print("largest relative difference by field:",
          ", ".join(f"{k} {v:.1e}" for k, v in sorted(WORST.items())))
    for line in notes:
        print("note:", line)
    for line in problems:
        print("DIFFERS:", line)
    print(f"{len(cases)} epochs compared, {len(problems)} difference(s)")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
