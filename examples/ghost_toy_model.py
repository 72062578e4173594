"""The ghost toy model's story in three figures (paper 1's canonical model, SCIENCE.md §2).

1. ``flow.png``: the saddle-node normal form dx/dt = x² + r with fixed points (r < 0), at the
   bifurcation (r = 0) and with a ghost (r > 0), and Euler trajectories from x = 0 that crawl
   through the ghost for t* = π/(2√r) before they blow up.
2. ``loss.png``: the delayed-activation loss against r for a confident (a = 1) and an unconfident
   (a = 0.1) output, with the closed form |T − t*(r)|, r_opt and the no-learning zone r ≤ r_opt/4.
3. ``learning_rate.png``: the loss after gradient descent on r against the learning rate, with the
   critical rate η_c = 3π⁴/(32 T⁵) and the measured threshold marked.

Usage: python examples/ghost_toy_model.py [OUT_DIR] [--T 100] [--steps 1000] [--rates 24]
(OUT_DIR defaults to ./ghost_toy_model_out)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from checkpoints import ghost_model as gm


def plot_flow(out: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.linspace(-0.25, 0.25, 401)
    for r, style in ((-0.01, "C0"), (0.0, "C1"), (0.01, "C3")):
        left.plot(x, x ** 2 + r, style, label=f"r = {r:+.2f}")
        if r < 0:
            roots = np.array([-1.0, 1.0]) * np.sqrt(-r)
            left.plot(roots[:1], [0], "o", color=style, label="stable / unstable fixed point")
            left.plot(roots[1:], [0], "o", color=style, mfc="white")
    left.plot([0], [0.01], "*", color="C3", ms=12, label="ghost: slowest point, no fixed point")
    left.axhline(0, color="k", lw=0.5)
    left.set_xlabel("x")
    left.set_ylabel("dx/dt = x² + r")
    left.set_title("saddle-node: fixed points vanish, a ghost remains")
    left.legend(fontsize=8)
    model = gm.ToyModel(T=100.0)
    r_values = gm.optimal_r(100.0) * np.array([0.5, 1.0, 2.0, 8.0])
    traj = gm.simulate(r_values, model, n_steps=3000)
    t = np.arange(traj.shape[1]) * model.dt
    for r, xs in zip(r_values, traj):
        right.plot(t, np.minimum(xs, 12), label=f"r = {r / gm.optimal_r(100):.1f} r_opt, "
                                               f"t* = {gm.closed_form_activation_time(r):.0f}")
    right.axhline(model.threshold, color="k", ls=":", lw=0.8, label="output threshold θ = 10")
    right.axvline(model.T, color="gray", ls="--", lw=0.8, label="target switches on (T)")
    right.set_ylim(-0.5, 12.5)
    right.set_xlabel("t")
    right.set_ylabel("x(t) (Euler, dt = 0.1)")
    right.set_title("trajectories crawl through the ghost, then blow up")
    right.legend(fontsize=7)
    fig.tight_layout()
    path = out / "flow.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_loss(out: Path, T: float) -> Path:
    r_opt = gm.optimal_r(T)
    r = r_opt * np.geomspace(0.05, 4.0, 600)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for a, color in ((1.0, "C0"), (0.1, "C2")):
        ax.plot(r / r_opt, gm.loss(r, gm.ToyModel(T=T, confidence=a)) / T, color=color,
                label=f"Euler loss, confidence a = {a:g}")
    ax.plot(r / r_opt, gm.closed_form_loss(r, T) / T, "k--", lw=0.8,
            label="closed form |T − t*(r)| (a → ∞)")
    ax.axvspan(r[0] / r_opt, 0.25, color="C3", alpha=0.12, label="no-learning zone r ≤ r_opt/4")
    ax.axvline(1.0, color="gray", lw=0.8, ls=":", label="r_opt = π²/(4T²)")
    ax.set_xscale("log")
    ax.set_xlabel("r / r_opt")
    ax.set_ylabel("L / T")
    ax.set_title(f"delayed activation, T = {T:g}: flat zone at high confidence")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_learning_rate(out: Path, T: float, n_steps: int, n_rates: int) -> Path:
    model = gm.ToyModel(T=T)
    r_opt, eta_c = gm.optimal_r(T), gm.critical_learning_rate(T)
    rates = eta_c * np.geomspace(0.05, 5.0, n_rates)
    final = np.array([gm.gradient_descent(2 * r_opt, eta, n_steps, model).final_loss
                      for eta in rates]) / T
    threshold = gm.numerical_critical_learning_rate(model, n_steps=n_steps, lo=0.05, hi=5.0,
                                                    rtol=0.02)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(rates, final, "o-", ms=4, label=f"final L/T after {n_steps} steps from 2 r_opt")
    ax.axvline(eta_c, color="C3", label="η_c = 3π⁴/(32 T⁵)")
    ax.axvline(threshold.eta, color="C1", ls="--",
               label=f"measured threshold ({threshold.ratio:.2f} η_c, a = 1)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("final L / T")
    ax.set_title(f"T = {T:g}: above the threshold learning gets stuck (L/T = 1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "learning_rate.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Draw the ghost toy model's story.")
    parser.add_argument("out", nargs="?", default="ghost_toy_model_out",
                        help="directory for the PNGs (default ./ghost_toy_model_out)")
    parser.add_argument("--T", type=float, default=100.0, help="delay T (a multiple of 0.1)")
    parser.add_argument("--steps", type=int, default=1000, help="gradient steps per run")
    parser.add_argument("--rates", type=int, default=24, help="learning rates to try")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in (plot_flow(out), plot_loss(out, args.T),
                 plot_learning_rate(out, args.T, args.steps, args.rates)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
