"""Write and execute the example notebooks (``python examples/build_notebooks.py``).

Each notebook is written from the cells below, executed with nbclient in a fresh kernel (the
repository first on ``sys.path``) and saved with its outputs. ``tests/test_notebooks.py``
(``slow``) executes it again and compares the printed lines. ``python examples/build_notebooks.py
NAME ...`` rebuilds only the notebooks named (keys of :data:`NOTEBOOKS`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

TOY = [
    ("md", """# The ghost toy model, with ghostscope

The ghost paper's canonical model (SCIENCE.md §2): `dx/dt = x² + r`, the output switches on when
x crosses θ = 10, and the task asks for it at time T. For r > 0 there is no fixed point but a
**ghost** at x = 0, which the trajectory crawls through for `t* = π/(2√r)` (from 0 to ∞;
`π/√r` across the whole bottleneck). Learning r by gradient descent: `r_opt = π²/(4T²)`, and
above a critical learning rate learning gets stuck.

**What matched the paper here**: the ghost's speed (q = r²/2) and passage time π/√r (detector,
closed form and simulated dwell time agree), r_opt. **What did not**: the learning-rate
threshold of the Euler model measured here is about 0.6·η_c, not the 1.12·η_c quoted in
SCIENCE.md (each Euler step near x = 10 puts a ripple into dL/dr); the stuck/learning contrast
itself holds (0.1·η_c reaches r ≈ r_opt in 1000 steps; 3·η_c is stuck at L/T = 1; 0.3·η_c, not
shown, still bounces across the V-shaped minimum after 1000 steps)."""),
    ("code", """import os
import sys
sys.path.insert(0, os.path.abspath(".."))   # the repository (the notebook lives in examples/)
import numpy as np
import fixedpoints as fp
from fixedpoints import systems
from checkpoints import ghost_model as gm

T = 100.0
r_opt = gm.optimal_r(T)
print(f"r_opt = {r_opt:.6g} (pi^2/(4T^2) = {np.pi**2 / (4 * T**2):.6g})")"""),
    ("md", "## The ghost at r = r_opt, found by ghostscope (its table is the rich display)"),
    ("code", """flow = systems.saddle_node(r=r_opt, n_states=1)
x0 = np.linspace(-0.5, 0.5, 64)[:, None]
ghosts = fp.detect_ghosts(flow, initial_states=x0)
print(f"speed q = {ghosts.speed[0]:.4g} (r^2/2 = {r_opt**2 / 2:.4g})")
print(f"passage time = {ghosts.passage_time[0]:.4g} (pi/sqrt(r) = {np.pi / np.sqrt(r_opt):.4g}),"
      f" dwell time simulated = {ghosts.dwell_time[0]:.4g}")
ghosts"""),
    ("md", "## Learning r: a small learning rate learns, a large one gets stuck"),
    ("code", """model = gm.ToyModel(T=T)
eta_c = gm.critical_learning_rate(T)
print(f"start r = 2 r_opt: L/T = {gm.loss(2 * r_opt, model) / T:.3f}")
for factor in (0.1, 3.0):
    run = gm.gradient_descent(2 * r_opt, factor * eta_c, 1000, model)
    print(f"eta = {factor} eta_c: final r = {run.final_r / r_opt:.2f} r_opt, "
          f"L/T = {run.final_loss / T:.3f}, stuck = {run.stuck}")"""),
    ("md", """## A fold in a map, analyzed as an epoch: the portrait inline

The one-unit map `y ← tanh(2y + b)` past its saddle-node (b = 0.60): one stable fixed point and
the ghost of the pair that vanished. `EpochAnalysis` displays its portrait and both tables."""),
    ("code", """from analysis import analyze_checkpoint
result = analyze_checkpoint(systems.tanh_map(2.0, 0.60))
print(result.counts()["stable"], "stable fixed point,", result.counts()["ghost"], "ghost")
result"""),
]

RANK_ONE = [
    ("md", """# The ghost paper's rank-one runs, with ghostscope: a learning run and a stuck run

The ghost paper's rank-one RNN on delayed activation (SCIENCE.md §2): `x ← (1−α) x + α tanh(m κ + b)`,
`κ = n·x`, α = 0.5, N = 100, output `sigmoid(c(κ − 1))`, target 0 for 20 steps then 1 for 20, plain
SGD on one trial per epoch, seed 40. The dynamics close in one dimension,
`dκ/dt = −κ + n·tanh(mκ + b)`, so every fixed point ghostscope finds in the 100-dimensional
state can be checked against the sign changes of that closed form on a κ grid (the paper's own
count).

**Shortened** as `ghostscope demo` does (`analysis.cli.DEMO_TRAINING`): output confidence
c = 7 instead of 10, so that the plateau at lr 0.01 ends near epoch 1,000 instead of 10,000 (the
paper's lr 0.003 run drops near epoch 33,650); checkpoints every 50 epochs. The stuck run is the
same network at lr 0.03 (SCIENCE.md's stuck example is lr 0.02 at c = 10; lr ≥ 3.16e-2 is where
9/10 seeds get stuck). Training runs through `checkpoints.train.train`, analysis through
`analysis.analyze_series`: nothing here is a trainer or a finder of its own.

The conclusions (what matched the paper and what did not) are at the end, after the numbers."""),
    ("code", """import os
import sys
sys.path.insert(0, os.path.abspath(".."))   # the repository (the notebook lives in examples/)
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, Image, display

from analysis import analyze_series
from analysis.cli import DEMO_TRAINING
from analysis.notebook import epoch_html
from analysis.report import write_timeline
from analysis.restructuring import describe_restructuring
from checkpoints import load_checkpoint
from checkpoints.train import train

torch.set_num_threads(1)
plt.rcParams["figure.dpi"] = 72
runs = Path(tempfile.mkdtemp(prefix="ghostscope-rank-one-"))
cfg = dict(DEMO_TRAINING)
common = dict(optimizer=cfg["optimizer"], seed=cfg["seed"], n_states=cfg["n_states"],
              confidence=cfg["confidence"], save_every=cfg["save_every"])
learning = train(cfg["task"], cfg["architecture"], runs / "learning", epochs=cfg["epochs"],
                 lr=cfg["lr"], **common)
stuck = train(cfg["task"], cfg["architecture"], runs / "stuck", epochs=600, lr=0.03, **common)
for name, run in (("learning, lr 0.01", learning), ("stuck, lr 0.03", stuck)):
    print(f"{name}: loss {run.losses[0]:.3f} -> {run.final_loss:.3f}, "
          f"gradient norm at the end {run.grad_norms[-1]:.3g}")"""),
    ("md", """## The analysis of each run: the drop, the restructuring and its signed lead

`analyze_series` on each checkpoint directory (the loss is read from `train_log.csv`); the lines
below are `analysis.restructuring.describe_restructuring`, what `ghostscope analyze` prints."""),
    ("code", """results = {}
for name in ("learning", "stuck"):
    a = analyze_series(runs / name, out=runs / f"{name}-analysis")
    results[name] = a
    print(f"--- {name} run: {len(a.results)} checkpoints, events:",
          ", ".join(f"{e.kind} {e.epoch_before}-{e.epoch_after}" for e in a.events))
    for line in describe_restructuring(a.restructuring(), a.drop):
        print(line)
    last = a.results[-1]
    print(f"last epoch ({last.epoch}): {last.counts()['stable']} stable, "
          f"{last.counts()['saddle']} saddle")"""),
    ("md", """## Fixed points in κ, checked against the closed form

For each checkpoint: ghostscope's fixed points mapped to κ = n·x, and the zeros of
`dκ/dt = −κ + n·tanh(mκ + b)` found from its sign changes on a grid of step 0.005 (refined by
bisection). Then the fixed points drawn against the epoch, over the loss."""),
    ("code", """grid = torch.linspace(-8.0, 8.0, 3201, dtype=torch.float64)


def closed_form_zeros(model):
    with torch.no_grad():
        v = model.kappa_velocity(grid).numpy()
    zeros = []
    for i in np.flatnonzero(np.sign(v[:-1]) != np.sign(v[1:])):
        lo, hi = float(grid[i]), float(grid[i + 1])
        for _ in range(40):   # bisection
            mid = 0.5 * (lo + hi)
            with torch.no_grad():
                vm = float(model.kappa_velocity(torch.tensor([mid], dtype=torch.float64)))
            same = np.sign(vm) == np.sign(v[i])
            lo, hi = (mid, hi) if same else (lo, mid)
        zeros.append(0.5 * (lo + hi))
    return np.array(zeros)


kappas = {}
for name, a in results.items():
    worst, rows = 0.0, []
    for r in a.results:
        model = load_checkpoint(runs / name / f"model_epoch{r.epoch}.pt").model.double()
        n = model.n.detach().numpy()
        found = np.sort(r.fixed_points.x @ n)
        exact = closed_form_zeros(model)
        assert len(found) == len(exact), (name, r.epoch, found, exact)
        worst = max(worst, float(np.max(np.abs(found - exact))))
        rows.append((r.epoch, found, list(r.fixed_points.kind[np.argsort(r.fixed_points.x @ n)])))
    kappas[name] = rows
    print(f"{name}: the same number of fixed points as the closed form at all {len(rows)} "
          f"checkpoints; largest |κ difference| {worst:.1e}")
for epoch, found, kinds in kappas["learning"]:
    if epoch in (900, 950, 1000, 1050, 1100):
        print(f"learning, epoch {epoch}: κ* =", ", ".join(f"{k:.2f} ({s})" for k, s in zip(found, kinds)))
for epoch, found, kinds in kappas["stuck"]:
    if epoch in (400, 450, 600):
        print(f"stuck, epoch {epoch}: κ* =", ", ".join(f"{k:.2f} ({s})" for k, s in zip(found, kinds)))"""),
    ("code", """fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex="col")
for col, (name, run) in enumerate((("learning", learning), ("stuck", stuck))):
    ax = axes[0, col]
    ax.plot(np.arange(len(run.losses)), run.losses, color="k", lw=1)
    if results[name].drop_epoch is not None:
        ax.axvline(results[name].drop_epoch, color="tab:red", ls="--", lw=1, label="drop")
        ax.legend(loc="lower left")
    ax.set_ylabel("loss")
    ax.set_title(f"{name} run")
    ax = axes[1, col]
    for epoch, found, kinds in kappas[name]:
        for k, s in zip(found, kinds):
            ax.plot(epoch, k, "o", ms=4, color="tab:blue" if s == "stable" else "tab:orange",
                    mfc="tab:blue" if s == "stable" else "none")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")   # the readout threshold κ = 1
    ax.set_xlabel("epoch")
    ax.set_ylabel("fixed points κ* (filled: stable, open: saddle)")
fig.tight_layout()
plt.show()"""),
    ("md", """## Ghosts

ghostscope searched every checkpoint for ghosts (speed minima with no fixed point nearby, a
bottleneck along a null direction: `fixedpoints.detect_ghosts`). The slowest point of the κ
flow away from its fixed points tells whether a bottleneck was there to be found."""),
    ("code", """for name, a in results.items():
    n_ghosts = [0 if r.ghosts is None else len(r.ghosts.speed) for r in a.results]
    print(f"{name}: ghosts found at {sum(g > 0 for g in n_ghosts)} of {len(n_ghosts)} checkpoints")
slowest = []
for epoch, found, kinds in kappas["learning"]:
    model = load_checkpoint(runs / "learning" / f"model_epoch{epoch}.pt").model.double()
    with torch.no_grad():
        speed = model.kappa_velocity(grid).abs().numpy()
    far = np.min(np.abs(grid.numpy()[:, None] - found[None, :]), axis=1) > 0.5
    slowest.append((float(speed[far].min()), epoch))
low, at = min(slowest)
print(f"learning run: the slowest κ flow more than 0.5 from a fixed point is |dκ/dt| = {low:.3f} "
      f"(epoch {at}): no bottleneck")"""),
    ("md", """## ghostscope's displays: an epoch just before the drop, and the timeline

`analysis.notebook.epoch_html(result, model)` is the rich display of an `EpochAnalysis`, with the
model for trajectories and the speed heatmap; `write_timeline` is the report's `timeline.png`
(loss, events, the drop, counts by kind and the restructuring rate with its episodes). A
`SeriesAnalysis` displays as the whole report in a frame (`results["learning"]` as a cell's
last line); it is left out here to keep the notebook small."""),
    ("code", """a = results["learning"]
display(HTML(epoch_html(a.result_at(950), runs / "learning" / "model_epoch950.pt")))
display(Image(filename=str(write_timeline(a, runs / "timeline.png"))))"""),
    ("code", """display(Image(filename=str(write_timeline(results["stuck"], runs / "timeline_stuck.png"))))"""),
]

#: name -> cells of each notebook written by this script (``examples/{name}.ipynb``).
NOTEBOOKS = {"ghost_toy_model": TOY, "ghost_rank_one_runs": RANK_ONE}


def build(name: str, cells, timeout: int = 1200) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md"
                else nbformat.v4.new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    names = sys.argv[1:] or list(NOTEBOOKS)
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        sys.exit(f"build_notebooks.py: unknown notebook(s) {unknown}; pass some of "
                 f"{list(NOTEBOOKS)} (none: all)")
    for name in names:
        print(build(name, NOTEBOOKS[name]), file=sys.stderr)
