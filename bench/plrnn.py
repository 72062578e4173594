"""Benchmark of the exact PLRNN search and of limit-cycle refinement. Prints figures; asserts
nothing.

* exhaustive fixed points: all 2^N ReLU patterns, N = 8 … 16 (median of 3 runs);
* exhaustive 2- and 3-cycles: all 2^(N k) pattern sequences with N k ≤ 16;
* the SCYFI-style heuristic at N = 64 and 256 (contracting, one fixed point);
* Newton refinement of the Hopf normal form's cycle embedded in 100 dimensions.

Run from the repository root: ``python -m bench.plrnn``
"""
import statistics
import time

import numpy as np
import torch

from fixedpoints import ContinuousDynamics
from fixedpoints.cycles import refine_flow_cycle
from fixedpoints.plrnn import PLRNNForm, plrnn_cycles, plrnn_fixed_points
from fixedpoints.systems import random_orthogonal


def form(n, seed=0, gain=2.0, a=(0.3, 0.9)):
    rng = np.random.default_rng(seed)
    return PLRNNForm(A=rng.uniform(*a, n), W=rng.normal(0, gain / np.sqrt(n), (n, n)),
                     drive=rng.normal(0, 1, n))


def timed(fn, repeats=3):
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main():
    print("exhaustive fixed points (all 2^N patterns)")
    for n in (8, 10, 12, 14, 16):
        res, sec = timed(lambda n=n: plrnn_fixed_points(form(n)))
        print(f"  N={n:>3}: {2 ** n:>6} patterns, {len(res)} fixed point(s), complete="
              f"{res.complete}, {sec:.3f} s, {2 ** n / sec:,.0f} patterns/s")
    print("exhaustive k-cycles (all 2^(N k) sequences)")
    for n, k in ((4, 2), (8, 2), (5, 3)):
        f = form(n, 1, a=(-0.9, 0.5))
        res, sec = timed(lambda f=f, k=k: plrnn_cycles(f, k))
        print(f"  N={n}, k={k}: {2 ** (n * k):>6} sequences, {len(res)} cycle(s), "
              f"{sec:.3f} s")
    print("heuristic (SCYFI-style) search")
    for n in (64, 256):
        f = form(n, 2, gain=0.5, a=(0.2, 0.5))
        res, sec = timed(lambda f=f: plrnn_fixed_points(f), repeats=1)
        print(f"  N={n}: {len(res)} fixed point(s), {res.info['patterns_solved']} patterns "
              f"solved, {sec:.3f} s")
    Q = torch.as_tensor(random_orthogonal(100, 0))

    def field(x, u):
        y = x @ Q
        a, b = y[:, :1], y[:, 1:2]
        r2 = a * a + b * b
        return torch.cat([0.5 * a - 2 * b - a * r2, 2 * a + 0.5 * b - b * r2, -y[:, 2:]],
                         1) @ Q.T
    dyn = ContinuousDynamics(field, 100, dt=0.02)
    guess = np.zeros(100)
    guess[:2] = [0.75, 0.05]
    cyc, sec = timed(lambda: refine_flow_cycle(dyn, guess @ Q.numpy().T, 3.0), repeats=1)
    print(f"Hopf cycle in 100-D by shooting (autodiff Jacobians): period {cyc.period:.8f} "
          f"(2π/ω = {np.pi:.8f}), {sec:.2f} s")


if __name__ == "__main__":
    main()
