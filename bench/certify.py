"""Benchmark of the certificates (issue 12). Prints figures; asserts nothing.

* Krawczyk certificates + stability verdicts on the 128-unit flip-flop GRU of
  bench/fixedpoints.py, against the finder's own time (target: at most 25%);
* the exhaustive low-rank search on multistable rank-1 and rank-2 leaky networks of 64 to
  1024 units.

Usage: python bench/certify.py [--repeats 3] [--n-initial 1024]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import fixedpoints as fp  # noqa: E402
from fixedpoints.certify import certify_points  # noqa: E402
from fixedpoints.lowrank import LowRankForm, solve_reduced  # noqa: E402


def _bench_fixedpoints():
    """bench/fixedpoints.py as a module (its flip-flop GRU and cache)."""
    spec = importlib.util.spec_from_file_location("bench_fixedpoints",
                                                  ROOT / "bench" / "fixedpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median(values) -> float:
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-initial", type=int, default=1024)
    args = parser.parse_args()
    dyn, sampling = _bench_fixedpoints().build("gru128", "cpu")
    x0 = fp.sample_initial_states(dyn, args.n_initial, seed=0, **sampling)
    finder, certs, result, cert = [], [], None, None
    for _ in range(args.repeats):
        t = time.perf_counter()
        result = fp.find_fixed_points(dyn, x0, certify=False)
        finder.append(time.perf_counter() - t)
        fixed = result.kind != "slow"
        t = time.perf_counter()
        cert = certify_points(dyn, result.x[fixed], scale=result.scale,
                              n_unstable=result.n_unstable[fixed])
        certs.append(time.perf_counter() - t)
    f, c = statistics.median(finder), statistics.median(certs)
    n_fixed = int((result.kind != "slow").sum())
    radius = cert["certified_radius"]
    print(f"gru128: finder {f:.2f} s (median of {args.repeats}, {args.n_initial} starts), "
          f"certificates {c:.3f} s = {100 * c / f:.1f}% of the finder; "
          f"{int(np.isfinite(radius).sum())}/{n_fixed} fixed points certified, "
          f"{int(cert['stability_certified'].sum())} stability verdicts certified; "
          f"radius median {_median(radius):.2e}, error bound median "
          f"{_median(cert['error_bound']):.2e}")
    rng = np.random.default_rng(0)
    for rank in (1, 2):
        for n in (64, 256, 1024):
            times, counts, boxes = [], [], []
            for _ in range(5):
                # R L ≈ 2.5 I plus noise: multistable (up to 3 roots per latent direction)
                left = rng.normal(size=(n, rank))
                right = 2.5 * left.T / n + rng.normal(size=(rank, n)) * 0.5 / n
                bias = 0.1 * rng.normal(size=n)
                form = LowRankForm(left, right, bias)
                t = time.perf_counter()
                sol = solve_reduced(form)
                times.append(time.perf_counter() - t)
                counts.append(len(sol.kappa))
                boxes.append(sol.info["boxes"])
            print(f"exhaustive rank {rank}, n={n}: median {statistics.median(times) * 1e3:.1f} ms"
                  f" (max {max(times) * 1e3:.1f}), roots {counts}, boxes median "
                  f"{statistics.median(boxes):.0f}")


if __name__ == "__main__":
    main()
