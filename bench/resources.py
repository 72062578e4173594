"""Per-checkpoint cost: measured peak memory and time against analysis.resources' estimate.

Each case runs in a fresh child process (the resident-set high-water mark is what is reported,
since tracemalloc does not see torch's allocations): one random model of each size, analyzed
with the default settings (``--n-initial`` as given). Prints one line per case; asserts nothing.

Usage: python bench/resources.py [--sizes 32,64,128,256] [--arch leaky_rnn,gru] [--n-initial 128]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time, os
sys.path.insert(0, {root!r})
import torch
from checkpoints import build_model
from analysis import analyze_checkpoint
from analysis.resources import estimate_cost, state_count
arch, n, n_initial = {arch!r}, {n}, {n_initial}
torch.manual_seed(0)
if arch in ("gru", "lstm", "rnn_tanh"):
    model = build_model(arch, n_inputs=3, hidden_size=n, n_outputs=3, cell=arch)
else:
    model = build_model(arch, n_inputs=3, n_states=n, n_outputs=3)
model = model.double()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started = time.perf_counter()
result = analyze_checkpoint(model, n_initial=n_initial)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
from analysis.epoch import make_settings
est = estimate_cost(state_count(model), make_settings(None, n_initial=n_initial))
print(json.dumps(dict(arch=arch, n=n, seconds=seconds, extra_bytes=peak - base,
                      est_bytes=est.bytes, est_seconds=est.seconds,
                      points=len(result.fixed_points))))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32,64,128,256")
    parser.add_argument("--arch", default="leaky_rnn,gru")
    parser.add_argument("--n-initial", type=int, default=128)
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    print(f"{'arch':<10}{'n':>6}{'seconds':>10}{'est s':>10}{'peak MB':>10}{'est MB':>10}")
    for arch in args.arch.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            code = CHILD.format(root=str(ROOT), arch=arch, n=n, n_initial=args.n_initial)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env=env)
            if done.returncode != 0:
                print(f"{arch:<10}{n:>6}  failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{arch:<10}{n:>6}{r['seconds']:>10.2f}{r['est_seconds']:>10.2f}"
                  f"{r['extra_bytes'] / 2**20:>10.0f}{r['est_bytes'] / 2**20:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
