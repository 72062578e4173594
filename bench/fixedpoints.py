"""Benchmark of the fixed-point finder (issue 2). Prints figures; asserts nothing.

Systems:
  * a 3-bit flip-flop GRU with 128 units, trained here (cached in bench/cache/),
  * a 3-bit flip-flop LSTM with 128 units (state [h, c], 256 dimensions), with its closed-form
    curvature (``lstm128``) and with the curvature from autograd (``lstm128ag``, same run),
  * random leaky firing-rate RNNs (gain 1.2) with 256, 1024 and 2048 units,
  * the 256- and 1024-unit RNNs again after ``torch.set_num_threads(2)`` (the rows marked
    ``thr 2``): that call breaks torch's batched LU through MKL for matrices above ~150
    (pytorch issues 142815, 141358), so these rows watch that no solve in the library uses it.

For each: wall time (median of --repeats), peak memory (tracemalloc is blind to torch, so
the resident-set high-water mark of a fresh child process is reported), CPU seconds, counts
per kind, q quantiles, status, and time per initial state for 256/1024/4096 initial states.

``--baseline REV`` runs every row a second time on the package as it was at git revision REV
(exported with ``git archive`` to a temporary folder; the benchmark systems are built from this
tree's code against the old package), printing before/after rows and the ratios of CPU time
from one run, with the load average (``os.getloadavg``) at the start and the end: on a shared
machine, compare the ratios, not the absolute figures.

Usage: python bench/fixedpoints.py [--device cuda] [--repeats 3] [--quick] [--options JSON]
       python bench/fixedpoints.py --systems lstm128,leaky256,leaky1024,leaky2048 \
           --repeats 3 --baseline e02c818
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
#: A child of ``--baseline`` imports the old package from this folder instead of this tree.
BASELINE_ENV = "GHOSTSCOPE_BENCH_BASELINE"
sys.path.insert(0, os.environ.get(BASELINE_ENV) or str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import fixedpoints as fp  # noqa: E402

CACHE = ROOT / "bench" / "cache"


def flipflop_batch(batch: int, steps: int, bits: int, p: float, gen: torch.Generator):
    """3-bit flip-flop trials: ±1 pulses (every bit pulsed at t=0); target = last pulse sign."""
    pulses = (torch.rand(batch, steps, bits, generator=gen) < p).float()
    pulses[:, 0] = 1.0
    signs = torch.where(torch.rand(batch, steps, bits, generator=gen) < 0.5, -1.0, 1.0)
    inputs = pulses * signs
    targets = torch.zeros_like(inputs)
    last = torch.zeros(batch, bits)
    for t in range(steps):
        last = torch.where(pulses[:, t] > 0, signs[:, t], last)
        targets[:, t] = last
    return inputs, targets


class FlipFlopNet(torch.nn.Module):
    def __init__(self, hidden=128, bits=3, cell="gru"):
        super().__init__()
        kind = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
        self.rnn = kind(bits, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, bits)

    def forward(self, u):
        h, _ = self.rnn(u)
        return self.out(h)


def trained_net(hidden=128, bits=3, epochs=1500, seed=0, cell="gru") -> torch.nn.Module:
    path = CACHE / f"flipflop_{cell}{hidden}_seed{seed}.pt"
    model = FlipFlopNet(hidden, bits, cell)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    torch.manual_seed(seed)
    model = FlipFlopNet(hidden, bits, cell)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    started = time.perf_counter()
    for epoch in range(epochs):
        u, y = flipflop_batch(64, 60, bits, 0.1, gen)
        loss = torch.mean((model(u) - y) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 250 == 0:
            print(f"  training flip-flop {cell}: epoch {epoch} loss {loss.item():.4f}", flush=True)
    print(f"  trained in {time.perf_counter() - started:.0f} s, final loss {loss.item():.5f}")
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def leaky_rnn(n: int, gain: float = 1.2, seed: int = 0) -> fp.Dynamics:
    """r <- (1-α) r + α tanh(W r + b), W ~ N(0, gain²/n), α = 0.5 (closed-form Jacobian and
    curvature): :func:`fixedpoints.systems.random_rate_network` of this tree, built on the
    imported package's classes (the old package's under ``--baseline``)."""
    build_fn = getattr(fp.systems, "random_rate_network", None)
    if build_fn is None:  # an older package: this tree's systems.py against its Dynamics
        spec = importlib.util.spec_from_file_location(
            "fixedpoints._bench_systems", ROOT / "fixedpoints" / "systems.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        build_fn = module.random_rate_network
    return build_fn(n, gain=gain, seed=seed)


def build(system: str, device: str):
    if system in ("gru128", "lstm128", "lstm128ag"):
        model = trained_net(cell="gru" if system == "gru128" else "lstm")
        dyn = fp.from_module(model.rnn, device=device)
        if system == "lstm128ag":  # the same LSTM with its curvature from autograd
            dyn = dyn._replace(curvature_fn=None)
        gen = torch.Generator().manual_seed(1)
        u, _ = flipflop_batch(64, 60, 3, 0.1, gen)
        return dyn, dict(inputs=u.double().numpy(), noise=0.05)
    n = int(system.replace("leaky", ""))
    return leaky_rnn(n).to(device=device), dict(n_steps=60, noise=0.05)


def run_one(system: str, n_init: int, device: str, repeats: int, threads: int = 0,
            options: str = "{}") -> dict:
    if threads:
        torch.set_num_threads(threads)
    dyn, sampling = build(system, device)
    x0 = fp.sample_initial_states(dyn, n_init, seed=0, **sampling)
    times, cpu, result = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        result = fp.find_fixed_points(dyn, x0, **json.loads(options))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    q = result.speed
    return {
        "system": system, "n_initial": n_init, "median_s": statistics.median(times),
        "cpu_s": statistics.median(cpu),
        "per_state_ms": 1e3 * statistics.median(times) / n_init,
        "counts": result.counts(), "index_counts": result.index_counts(),
        "slow_regions": len(result.slow_regions),
        "q_quantiles": [float(v) for v in np.quantile(q, [0, 0.5, 1])] if len(q) else [],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "status": result.status.name, "candidates": result.info.get("candidates"),
        "over_budget": result.info.get("over_budget", 0),
        "polished": result.info.get("polished", 0),
        "matrix_free": result.info.get("matrix_free_polished", 0),
        "threads": threads,
    }


def derivatives(repeats: int, batch: int = 32) -> None:
    """Median ms of the closed-form Jacobian and curvature against autograd, same states."""
    torch.manual_seed(0)
    systems = {"lstm128": trained_net(cell="lstm").rnn,
               "gru2x64": torch.nn.GRU(3, 64, num_layers=2),
               "lstm2x64": torch.nn.LSTM(3, 64, num_layers=2)}
    print(f"derivatives at {batch} states: median ms (closed form / autograd = ratio)")
    for name, module in systems.items():
        dyn = fp.from_module(module)
        plain = dyn._replace(jacobian_fn=None, curvature_fn=None)
        x = 0.5 * torch.randn(batch, dyn.n_states, dtype=torch.float64)
        w = torch.randn(batch, dyn.n_states, dtype=torch.float64)
        row = []
        calls = (("jacobian", (dyn.jacobian, plain.jacobian), (x,)),
                 ("curvature", (dyn.curvature, plain.curvature), (x, w)))
        for what, fns, args in calls:
            ms = []
            for fn in fns:
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    fn(*args)
                    times.append(time.perf_counter() - t)
                ms.append(1e3 * statistics.median(times))
            row.append(f"{what} {ms[0]:.1f} / {ms[1]:.1f} = {ms[1] / ms[0]:.1f}x")
        print(f"  {name:<9} " + ",  ".join(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1024 initial states only")
    parser.add_argument("--derivatives", action="store_true",
                        help="only time the closed-form derivatives against autograd")
    parser.add_argument("--systems", default="",
                        help="comma-separated systems to run (default: all)")
    parser.add_argument("--child", nargs=4, metavar=("SYSTEM", "N_INIT", "REPEATS", "THREADS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds per child before it is killed and reported as hung")
    parser.add_argument("--options", default="{}",
                        help='finder options for every row, as JSON (e.g. \'{"krylov": true}\'; '
                             'the baseline revision must know them)')
    parser.add_argument("--baseline", default="",
                        help="also run every row on the package at this git revision "
                             "(before/after rows and CPU ratios from one run)")
    args = parser.parse_args()
    if args.child:
        system, n_init, repeats = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(run_one(system, n_init, args.device, repeats, int(args.child[3]),
                                 args.options)))
        return
    if args.derivatives:
        derivatives(max(args.repeats, 5))
        return
    sizes = [1024] if args.quick else [256, 1024, 4096]
    # threads 0: torch's default; 2: after an explicit torch.set_num_threads(2)
    plan = ([("gru128", n, 0) for n in sizes] + [("leaky256", n, 0) for n in sizes]
            + [("leaky1024", 1024, 0), ("leaky256", 1024, 2), ("leaky1024", 1024, 2)]
            + [("leaky2048", 1024, 0)]
            + [("lstm128", 1024, 0), ("lstm128ag", 1024, 0)])
    if args.systems:
        plan = [row for row in plan if row[0] in args.systems.split(",")]
    # train/cache once, outside the timed children: only the nets the rows use
    if any(row[0] == "gru128" for row in plan):
        trained_net()
    if any(row[0].startswith("lstm128") for row in plan):
        trained_net(cell="lstm")
    versions = [("after", "")]
    scratch = None
    if args.baseline:
        scratch = tempfile.TemporaryDirectory(prefix="bench_baseline_")
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline,
                                  "fixedpoints"], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(scratch.name, filter="data")
        versions = [("before", scratch.name), ("after", "")]
    print(f"device={args.device} threads={torch.get_num_threads()} repeats={args.repeats} "
          f"options={args.options} baseline={args.baseline or '-'} "
          f"load average {os.getloadavg()[0]:.1f} (1 min)")
    header = (f"{'system':<10} {'thr':>3} {'n_init':>6} {'code':>6} {'median s':>9} "
              f"{'cpu s':>6} {'ms/state':>9} {'peak MB':>8} "
              f"{'cands':>6}  counts / index counts / q [min, median, max]")
    print(header)
    print("-" * len(header))
    for system, n_init, threads in plan:
        repeats = 1 if system in ("leaky1024", "leaky2048") else args.repeats
        thr = str(threads) if threads else "-"
        cpu = {}
        for label, path in versions:
            env = dict(os.environ)
            env.pop(BASELINE_ENV, None)
            if path:
                env[BASELINE_ENV] = path
            lead = f"{system:<10} {thr:>3} {n_init:>6} {label:>6}"
            try:
                out = subprocess.run([sys.executable, __file__, "--device", args.device,
                                      "--options", args.options, "--child", system,
                                      str(n_init), str(repeats), str(threads)],
                                     capture_output=True, text=True, timeout=args.timeout,
                                     env=env)
            except subprocess.TimeoutExpired:  # subprocess.run has killed the child
                print(f"{lead} HUNG: killed after {args.timeout:.0f} s")
                continue
            if out.returncode != 0:
                last = (out.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{lead} FAILED: {last[:120]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            cpu[label] = r["cpu_s"]
            counts = {k: v for k, v in r["counts"].items() if v}
            qs = ", ".join(f"{v:.1e}" for v in r["q_quantiles"])
            print(f"{lead} {r['median_s']:>9.2f} {r['cpu_s']:>6.1f} "
                  f"{r['per_state_ms']:>9.3f} "
                  f"{r['peak_rss_mb']:>8.0f} {r['candidates']:>6}  {counts} "
                  f"{r['index_counts']} [{qs}] regions={r['slow_regions']} {r['status']} "
                  f"over_budget={r.get('over_budget', 0)} polished={r.get('polished', 0)}"
                  f"+{r.get('matrix_free', 0)} matrix-free",
                  flush=True)
        if len(cpu) == 2:
            print(f"{'':<21} cpu before/after = {cpu['before'] / max(cpu['after'], 1e-9):.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end")
    if scratch is not None:
        scratch.cleanup()

if __name__ == "__main__":
    main()
