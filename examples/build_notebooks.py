"""Write and execute the example notebooks (``python examples/build_notebooks.py``).

Each notebook is written from the cells below, executed with nbclient in a fresh kernel (the
repository first on ``sys.path``) and saved with its outputs. ``tests/test_notebooks.py``
(``slow``) executes it again and compares the printed lines. ``python examples/build_notebooks.py
NAME ...`` rebuilds only the notebooks named (keys of :data:`NOTEBOOKS`); ``--markdown``
rewrites only their text cells, keeping the executed code cells (refused if code changed).
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

The ghost paper's rank-one RNN on delayed activation (SCIENCE.md §2):
`x ← (1−α) x + α tanh(m κ + b)`, `κ = n·x`, α = 0.5, N = 100, output `sigmoid(c(κ − 1))`,
target 0 for 20 steps then 1 for 20, plain SGD on one trial per epoch, seed 40.
The dynamics close in one dimension,
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

from analysis import RunOptions, analyze_series
from analysis.cli import DEMO_TRAINING
from analysis.notebook import epoch_html
from analysis.portraits import PortraitOptions
from analysis.report import write_timeline
from analysis.restructuring import describe_restructuring
from checkpoints import load_checkpoint
from checkpoints.train import train

torch.set_num_threads(1)
plt.rcParams["figure.dpi"] = 72
scratch = tempfile.TemporaryDirectory(prefix="ghostscope-rank-one-")  # removed when the kernel ends
runs = Path(scratch.name)
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
    a = analyze_series(runs / name, run=RunOptions(out=runs / f"{name}-analysis"))
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
        print(f"learning, epoch {epoch}: κ* =",
              ", ".join(f"{k:.2f} ({s})" for k, s in zip(found, kinds)))
for epoch, found, kinds in kappas["stuck"]:
    if epoch in (400, 450, 600):
        print(f"stuck, epoch {epoch}: κ* =",
              ", ".join(f"{k:.2f} ({s})" for k, s in zip(found, kinds)))
last = load_checkpoint(runs / "stuck" / "model_epoch600.pt").model.double()
kappa0 = float(last.x0 * last.n.detach().sum())   # every trial starts at x0 = -0.3 (all units)
saddle = [k for k, s in zip(kappas["stuck"][-1][1], kappas["stuck"][-1][2]) if s == "saddle"][0]
side = "below" if kappa0 < saddle else "above"
print(f"stuck, epoch 600: every trial starts at κ0 = n·x0 = {kappa0:.2f}, {side} the saddle at "
      f"{saddle:.2f}")"""),
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
bottleneck along a null direction: `fixedpoints.detect_ghosts`). In one dimension a ghost is a
local minimum of |dκ/dt| with no zero of dκ/dt at it, so the closed form says whether there was
one to be found."""),
    ("code", """for name, a in results.items():
    n_ghosts = [0 if r.ghosts is None else len(r.ghosts.speed) for r in a.results]
    print(f"{name}: ghosts found at {sum(g > 0 for g in n_ghosts)} of {len(n_ghosts)} checkpoints")
bottlenecks = 0
for name in results:
    for epoch, found, _ in kappas[name]:
        model = load_checkpoint(runs / name / f"model_epoch{epoch}.pt").model.double()
        with torch.no_grad():
            speed = model.kappa_velocity(grid).abs().numpy()
        inner = np.flatnonzero((speed[1:-1] < speed[:-2]) & (speed[1:-1] < speed[2:])) + 1
        far = [i for i in inner if np.min(np.abs(float(grid[i]) - found), initial=np.inf) > 0.05]
        bottlenecks += len(far)
print(f"local minima of |dκ/dt| farther than 0.05 from every fixed point, over all "
      f"checkpoints of both runs: {bottlenecks}")"""),
    ("md", """## ghostscope's displays: an epoch just before the drop, and the timeline

`analysis.notebook.epoch_html(result, model)` is the rich display of an `EpochAnalysis`, with the
model for trajectories and the speed heatmap; `write_timeline` is the report's `timeline.png`
(loss, events, the drop, counts by kind and the restructuring rate with its episodes). A
`SeriesAnalysis` displays as the whole report in a frame (`results["learning"]` as a cell's
last line); it is left out here to keep the notebook small."""),
    ("code", """a = results["learning"]
display(HTML(epoch_html(a.result_at(950), runs / "learning" / "model_epoch950.pt",
                        options=PortraitOptions(dpi=60))))
display(Image(filename=str(write_timeline(a, runs / "timeline.png"))))"""),
    ("code", """stuck_timeline = write_timeline(results["stuck"], runs / "timeline_stuck.png")
display(Image(filename=str(stuck_timeline)))"""),
    ("md", """## What matched the paper and what did not

**Matched.**
- *A plateau, then an abrupt drop* (lr 0.01): steepest at epoch 978 (onset 968, the loss fell
  60%), as `ghostscope demo` reports for the same run.
- *Restructuring before the drop*: one episode, "epochs 850–1100, 5 attractor_moved", with a
  signed "lead to the drop +78 epochs (between +78 and +128: before the drop)".
- *Learning gets stuck at a larger learning rate* (lr 0.03) the way SCIENCE.md's lr 0.02 run
  does: the loss first falls (42% at epoch 329), then one step makes the flow bistable
  ("saddle_node 400-450": stable κ ≈ −3.03, saddle −1.33, stable +4.39;
  SCIENCE.md: −3.9, −1.0, +5.0) with every trial starting at κ0 = −1.69, below the saddle,
  on the wrong side: it settles at −3.03, the output never turns on, the loss stays at 1.000 and
  the gradient at 8e-8 (exactly zero in the paper's a → ∞ limit): the no-learning zone. On
  the way (the figure), the loss bounced up and down after its first fall, as on the toy
  model's V-shaped minimum, until one step jumped across.
- *ghostscope's fixed points are the closed form's*: the same count as the sign changes of
  dκ/dt on a κ grid at every checkpoint of both runs, at the same κ to 1e-14.

**Did not match.**
- *No ghost*: ghostscope found none at any checkpoint of either run, and the closed form agrees
  (no local minimum of |dκ/dt| away from a fixed point). The paper says ghost points precede
  abrupt learning; SCIENCE.md's own re-run (c = 10, lr 0.003) saw a ghost near κ ≈ −1.5 appear
  only as the drop completed. Here (c = 7) the drop is the one stable point sliding through the
  readout threshold κ = 1 (0.40 at epoch 950, 1.08 at epoch 1000): a moving attractor, not a
  ghost, so there is no ghost strength to report for this run. (The rank-2 match-to-sample run
  in `ghost_rank_two_runs.ipynb` does show a ghost before its drop.)
- *Time scales*: the drop comes after ~1,000 epochs, not 33,650, because the confidence is 7
  and the learning rate 0.01 (the demo's shortening); the 1/lr scaling of the plateau and the
  seed statistics (10/10 learn at lr ≤ 1e-2, 9/10 stuck at lr ≥ 3.16e-2) were not measured."""),
]

RANK_TWO = [
    ("md", """# The ghost paper's rank-2 runs, with ghostscope: cue discrimination, match-to-sample

The authors' leaky firing-rate RNN of rank K = 2 (SCIENCE.md §2, written as their scripts compute
it: row vectors, `r ← (1−α) r + α tanh(W_in u + r S_l S_r)`, output `g(W_out(r S_l))`), trained
on their delayed cue discrimination (DCDT) and delayed match-to-sample (DMTS) tasks by
`checkpoints.train_paper_run`, in their file layout
(`results_<task>/seed_0/models/model_epoch{e}.pt`, `final.npz`), and analyzed from the run
root by `analysis.analyze_series` at the delay-period input u = 0.

The latent is **κ = r S_l** (2 numbers), and its flow closes exactly in the plane:
`dκ/dt = −κ + tanh(W_in u + b + κ S_r) S_l`, so the fixed points are where both nullclines of that
2-D field cross. Every fixed point ghostscope finds in the 100-dimensional state is drawn at its κ
on that field (and checked against it below).

**Shortened**, so that each run trains in about a minute on one core: both tasks use
**Adam** (DCDT: lr 3e-3 instead of the paper's plain SGD at lr 1e-3; DMTS: lr 1e-3 instead of
1e-4), the trial types tiled **5 times instead of 500** (batches of 10 and 20 trials: the tiling
only repeats the same trials with other random initial states), **700 and 600 epochs instead of
100,000 and 20,000**, checkpoints every 20 epochs (the authors save every epoch). N = 100, K = 2
and everything else as the paper's.

The conclusions (what matched the paper and what did not) are at the end, after the numbers."""),
    ("code", """import os
import sys
sys.path.insert(0, os.path.abspath(".."))   # the repository (the notebook lives in examples/)
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, display

from analysis import RunOptions, analyze_series
from analysis.notebook import epoch_html
from analysis.portraits import PortraitOptions
from analysis.restructuring import describe_restructuring
from checkpoints import load_checkpoint
from checkpoints.paper_runs import PAPER_TASKS, PaperTask, train_paper_run

torch.set_num_threads(1)
plt.rcParams["figure.dpi"] = 72
scratch = tempfile.TemporaryDirectory(prefix="ghostscope-rank-two-")  # removed when the kernel ends
root = Path(scratch.name)
SHORT = {"dcdt": dict(optimizer="adam", lr=3e-3, epochs=700),
         "dmts": dict(optimizer="adam", lr=1e-3, epochs=600)}


def short_run(name):
    paper = PAPER_TASKS[name]
    spec = PaperTask(name, paper.periods, 5, paper.output, paper.sigma, SHORT[name]["optimizer"],
                     SHORT[name]["lr"], paper.epochs)
    run = train_paper_run(spec, root / f"results_{name}" / "seed_0",
                          epochs=SHORT[name]["epochs"], seed=0, save_every=20)
    loss = run.loss_history
    print(f"{name}: loss {loss[0]:.4f} at the start, {np.median(loss[50:150]):.4f} on the "
          f"plateau (median of epochs 50-150), {loss[-1]:.4f} at the end; accuracy "
          f"{run.accuracy_history[0]:.3f} -> {run.accuracy_history[-1]:.3f}")
    return run


def latent_velocity(model, kappa, u=0.0):
    \"\"\"dκ/dt = −κ + tanh(W_in u + b + κ S_r) S_l for κ of shape (..., 2).\"\"\"
    with torch.no_grad():
        k = torch.as_tensor(kappa, dtype=torch.float64)
        pre = (model.W_in.weight[:, 0].double() * u + model.W_in.bias.double()
               + k @ model.S_r.double())
        return (-k + torch.tanh(pre) @ model.S_l.double()).numpy()


def analyze(name):
    a = analyze_series(root / f"results_{name}" / "seed_0", input=(0.0,),
                       run=RunOptions(out=root / f"{name}-analysis"))
    log = Path(a.loss.source).relative_to(root)
    print(f"--- {name}: {len(a.results)} checkpoints analyzed; loss from {log}")
    for line in describe_restructuring(a.restructuring(), a.drop):
        print(line)
    previous = None
    for r in a.results:   # the fixed points and ghosts at u = 0, printed where they change
        c = r.counts()
        now = (c["stable"], c["saddle"], c["unstable"], c["ghost"])
        if now != previous:
            print(f"  from epoch {r.epoch:>3} (loss {r.loss:.4f}): {c['stable']} stable, "
                  f"{c['saddle']} saddle, {c['unstable']} unstable, {c['ghost']} ghost(s)")
            previous = now
    for e in a.events:
        if e.kind != "attractor_moved":
            strength = ""
            if e.kind == "ghost_appeared" and e.detail.get("strength") is not None:
                strength = (f" (strength {e.detail['strength']:.3g}, "
                            f"{e.detail.get('strength_class')})")
            print(f"  event {e.kind} between epochs {e.epoch_before} and {e.epoch_after}, lead "
                  f"to the drop {e.lead_time:+g}{strength}")
    return a


def check_and_draw(name, a, epochs):
    worst = 0.0
    for r in a.results:
        model = load_checkpoint(root / f"results_{name}" / "seed_0" / "models"
                                / f"model_epoch{r.epoch}.pt").model
        fixed = r.fixed_points.kind != "slow"   # slow points are not zeros of the field
        kappa = r.fixed_points.x[fixed] @ model.S_l.detach().double().numpy()
        if len(kappa):
            worst = max(worst, float(np.abs(latent_velocity(model, kappa)).max()))
    print(f"{name}: largest |dκ/dt| of the 2-D field at ghostscope's fixed points, over all "
          f"checkpoints: {worst:.1e}")
    fig, axes = plt.subplots(1, len(epochs), figsize=(3.0 * len(epochs), 3.0), dpi=50)
    for ax, epoch in zip(axes, epochs):
        r = a.result_at(epoch)
        model = load_checkpoint(root / f"results_{name}" / "seed_0" / "models"
                                / f"model_epoch{epoch}.pt").model
        S_l = model.S_l.detach().double().numpy()
        box = np.abs(S_l).sum(axis=0)   # |κ_j| <= Σ_i |S_l[i, j]|: all of the flow
        points = r.fixed_points.x @ S_l
        if r.ghosts is not None and len(r.ghosts.speed):
            points = np.vstack([points, r.ghosts.x @ S_l])
        box = np.minimum(box, np.maximum(3.0, 1.5 * np.abs(points).max(axis=0)))   # zoom in
        k1, k2 = np.meshgrid(np.linspace(-box[0], box[0], 61), np.linspace(-box[1], box[1], 61))
        v = latent_velocity(model, np.stack([k1, k2], axis=-1))
        speed = np.log10(np.hypot(v[..., 0], v[..., 1]) + 1e-12)
        ax.pcolormesh(k1, k2, speed, cmap="Greys_r", shading="auto", vmin=-3, vmax=0.5,
                      rasterized=True)
        ax.streamplot(k1, k2, v[..., 0], v[..., 1], color="tab:cyan", density=0.7,
                      linewidth=0.6, arrowsize=0.6)
        ax.contour(k1, k2, v[..., 0], levels=[0], colors="tab:green", linewidths=0.8)
        ax.contour(k1, k2, v[..., 1], levels=[0], colors="tab:purple", linewidths=0.8)
        kappa = r.fixed_points.x @ S_l
        for (x, y), kind in zip(kappa, r.fixed_points.kind):
            if kind == "slow":
                continue
            ax.plot(x, y, "o", ms=7, color="tab:blue" if kind == "stable" else "tab:orange",
                    mfc="tab:blue" if kind == "stable" else "none", mew=2)
        if r.ghosts is not None and len(r.ghosts.speed):
            g = r.ghosts.x @ S_l
            ax.plot(g[:, 0], g[:, 1], "x", ms=8, color="tab:red", mew=2)
        loss = "" if r.loss != r.loss else f", loss {r.loss:.3f}"   # none for the last file
        ax.set_title(f"{name} epoch {epoch}{loss}", fontsize=9)
        ax.set_xlabel("κ1")
    axes[0].set_ylabel("κ2")
    fig.suptitle("latent flow at u = 0: log10 speed (grey), nullclines (green, purple), "
                 "stable (filled) / saddle (open) fixed points, ghosts (x)", fontsize=9)
    fig.tight_layout()
    plt.show()


def around_the_drop(a):
    \"\"\"The first checkpoint, the two that bracket the structural event (not a plain move)
    nearest the drop, and the last.\"\"\"
    events = [e for e in a.events if e.kind != "attractor_moved"]
    nearest = min(events, key=lambda e: abs(e.lead_time))
    return [a.epochs[0], nearest.epoch_before, nearest.epoch_after, a.epochs[-1]]"""),
    ("md", "## Delayed cue discrimination (DCDT)"),
    ("code", """dcdt_run = short_run("dcdt")
dcdt = analyze("dcdt")"""),
    ("code", """check_and_draw("dcdt", dcdt, around_the_drop(dcdt))"""),
    ("md", "## Delayed match-to-sample (DMTS)"),
    ("code", """dmts_run = short_run("dmts")
dmts = analyze("dmts")"""),
    ("code", """check_and_draw("dmts", dmts, around_the_drop(dmts))"""),
    ("md", """## One epoch as ghostscope displays it

The rich display of the DCDT analysis right after the drop (`analysis.notebook.epoch_html` with
the checkpoint: trajectories and the speed heatmap in ghostscope's own projection, then the tables
of fixed points and ghosts)."""),
    ("code", """epoch = around_the_drop(dcdt)[2]   # just after the structural event
display(HTML(epoch_html(dcdt.result_at(epoch),
                        root / "results_dcdt" / "seed_0" / "models" / f"model_epoch{epoch}.pt",
                        settings=dcdt.settings, options=PortraitOptions(dpi=50))))"""),
    ("md", """## What matched the paper and what did not

**Matched.**
- *A plateau, then an abrupt drop*, in both tasks. DCDT: the loss sits at 0.4548 (the plateau
  median) until the drop "steepest at epoch 452 (onset 447, the loss fell 51%)"; accuracy
  0.541 → 0.977. DMTS: "steepest at epoch 292 (onset 278, the loss fell 24%)"; accuracy
  0.701 → 0.947.
- *Phase space restructures before the drop.* DCDT: "event pitchfork between epochs 420 and
  440, lead to the drop +12": the one stable point of the plateau (at the origin of the latent
  plane) splits into two stable points and a saddle between them, the two memories of the cue's
  sign, just before the loss falls. DMTS: "event ghost_appeared between epochs 220 and 240, lead
  to the drop +52 (strength 9.98, weak)": a ghost appears in the latent plane before the drop
  and stays, as the paper says ghosts precede abrupt learning; then the stable point of the
  delay loses its stability as the loss drops ("event stability_change between epochs 280 and
  300, lead to the drop -8").
- *The fixed points are the paper's*: at every checkpoint ghostscope's fixed points (found in the
  100-dimensional state) satisfy the authors' 2-D reduced equation to 1e-15, on the crossings
  of the nullclines drawn above.

**Did not match, or could not be compared.**
- *Not the paper's training*: Adam, batches of 10 and 20 trials and 700 / 600 epochs instead of
  their SGD / Adam at lr 1e-3 / 1e-4, batches of 1,000 / 2,000 and 100,000 / 20,000 epochs, so
  the epochs of the drop are not theirs; SCIENCE.md records no per-epoch numbers of their rank-2
  runs to compare with.
- *DCDT has no ghost before its drop*: what precedes it is a pitchfork (a bifurcation that
  creates the bistable memory). Two weak ghosts appear in the latent plane only after the drop
  ("event ghost_appeared between epochs 600 and 620, lead to the drop -168 (strength 4.68,
  weak)", the other of strength 4.41) and stay to the last checkpoint ("from epoch 620 (loss
  0.0608): 2 stable, 1 saddle, 0 unstable, 2 ghost(s)"). Until the transient rule was fixed
  these two events were dropped as ghosts "seen at the last checkpoint only": the rule took the
  last epoch with an event (620) for the series' end (699).
- *DMTS's last epochs are noisy* (Adam at lr 1e-3 on 20 trials: the loss jumps back to 0.0998 at
  epoch 320), and at u = 0 the stable point flips between stable and saddle three times after
  the drop; the paper's longer, gentler run would not show that."""),
]

FF_SETUP = """import os
import sys
sys.path.insert(0, os.path.abspath(".."))   # the repository (the notebook lives in examples/)
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, display

import fixedpoints as fp
from analysis import analyze_checkpoint
from analysis.notebook import epoch_html
from analysis.portraits import PortraitOptions
from checkpoints.tasks import FlipFlop
from checkpoints.train import train

torch.set_num_threads(1)
plt.rcParams["figure.dpi"] = 72
task = {"name": "flipflop", "n_bits": 3}
run = train(task, "leaky_rnn", None, epochs=300, lr=0.01, seed=0, n_states=32, batch_size=32)
model = run.model
print(f"3-bit flip-flop, leaky RNN of 32 units, Adam lr 0.01, 300 epochs of 32 trials: loss "
      f"{run.losses[0]:.3f} -> {run.final_loss:.4f}, accuracy {run.accuracies[-1]:.3f}")
inputs, _, _ = FlipFlop(n_bits=3).sample(64, torch.Generator().manual_seed(1))
drive = inputs.numpy()   # task trials: where the initial states of both finders come from"""

FF_GHOSTSCOPE = """started = time.perf_counter()
result = analyze_checkpoint(model, input=(0.0, 0.0, 0.0), drive=drive)
gs_seconds = time.perf_counter() - started
gs = result.fixed_points
print("ghostscope:", len(gs.kind), "fixed points, by index", gs.index_counts())
print("signature:", result.signature)
print(f"largest q among them: {gs.speed.max():.1e}")
print(f"ghostscope took {gs_seconds:.1f} s", file=sys.stderr)
display(HTML(epoch_html(result, model, options=PortraitOptions(dpi=60))))"""

FF_FPF = """def fpf_style(dynamics, states, *, noise=0.5, lr=0.01, max_iters=5000, tol_q=1e-12,
              tol_dq=1e-20, tol_unique=1e-3, outlier_distance_scale=10.0, seed=0):
    \"\"\"FixedPointFinder's recipe (Golub & Sussillo 2018), re-implemented in a few lines.

    Initial states from the network's trajectories plus Gaussian noise; Adam on
    q(x) = ½‖F(x) − x‖² for all of them at once until every q < tol_q or no q changes by more
    than tol_dq (at most max_iters steps); duplicates within tol_unique dropped (the slower one
    kept); points farther from the initial states' centroid than outlier_distance_scale times
    the initial states' mean distance to it dropped; stability from the eigenvalues of ∂F/∂x.
    \"\"\"
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.as_tensor(states, dtype=torch.float64)
    x = (x0 + noise * torch.randn(x0.shape, generator=gen, dtype=torch.float64)).requires_grad_()
    u = dynamics.input.expand(len(x0), -1)
    opt = torch.optim.Adam([x], lr=lr)
    previous, iterations = None, 0
    while iterations < max_iters:
        iterations += 1
        q = 0.5 * ((dynamics.fn(x, u) - x) ** 2).sum(dim=1)
        opt.zero_grad()
        q.sum().backward()
        opt.step()
        qd = q.detach()
        if bool((qd < tol_q).all()) or (previous is not None
                                        and bool(((previous - qd).abs() < tol_dq).all())):
            break
        previous = qd
    x = x.detach()
    with torch.no_grad():
        q = 0.5 * ((dynamics.fn(x, u) - x) ** 2).sum(dim=1).numpy()
    keep = fp.deduplicate(x.numpy(), q, tol_unique)
    x, q = x.numpy()[keep], q[keep]
    centroid = x0.numpy().mean(axis=0)
    scale = np.linalg.norm(x0.numpy() - centroid, axis=1).mean()
    inside = np.linalg.norm(x - centroid, axis=1) <= outlier_distance_scale * scale
    x, q = x[inside], q[inside]
    u1 = dynamics.input
    index = []
    for point in torch.as_tensor(x):
        jac = torch.autograd.functional.jacobian(lambda s: dynamics.fn(s[None], u1[None])[0], point)
        index.append(int((np.abs(np.linalg.eigvals(jac.numpy())) > 1.0).sum()))
    return x, q, np.array(index), iterations


dynamics = fp.from_module(model, input=(0.0, 0.0, 0.0))
states = fp.sample_initial_states(dynamics, 1024, inputs=drive, seed=0)
started = time.perf_counter()
fpf_x, fpf_q, fpf_index, iterations = fpf_style(dynamics, states)
fpf_seconds = time.perf_counter() - started
fixed = fpf_q < 1e-12
print(f"FixedPointFinder-style: {iterations} Adam steps, {len(fpf_q)} unique points, "
      f"{int(fixed.sum())} with q < 1e-12")
counts = {int(k): int(v) for k, v in zip(*np.unique(fpf_index[fixed], return_counts=True))}
print("  of those, by index:", counts)
print(f"  the rest: q from {fpf_q[~fixed].min():.1e} to {fpf_q[~fixed].max():.1e}"
      if (~fixed).any() else "  no slow points left over")
print(f"FixedPointFinder-style took {fpf_seconds:.1f} s, {fpf_seconds / gs_seconds:.0f} times "
      f"ghostscope's", file=sys.stderr)"""

FF_MATCH = """distance = np.linalg.norm(gs.x[:, None, :] - fpf_x[None, fixed, :], axis=2)
nearest = distance.min(axis=1)
matched = nearest < 1e-3
by_index = {}
for i, ok in zip(gs.n_unstable, matched):
    got, total = by_index.get(int(i), (0, 0))
    by_index[int(i)] = (got + int(ok), total + 1)
print("ghostscope's points also found by the FixedPointFinder-style search (within 1e-3), "
      "by index:", {i: f"{g}/{t}" for i, (g, t) in sorted(by_index.items())})
extra = int((distance.min(axis=0) >= 1e-3).sum())
print(f"points with q < 1e-12 found only by the FixedPointFinder-style search: {extra}")"""

FF_TCR = """from analysis import RunOptions, analyze_series
import tempfile
from pathlib import Path

scratch = tempfile.TemporaryDirectory(prefix="ghostscope-tcr-")  # removed when the kernel ends
runs = Path(scratch.name)
STRUCTURAL = ("saddle_node", "pitchfork", "stability_change", "birth", "death",
              "ghost_appeared", "ghost_vanished", "connection_change", "attractor_count")
tcr = {}
for lam in (0.0, 0.1):
    out = runs / f"tcr{lam:g}"
    run = train(task, "leaky_rnn", out, epochs=400, lr=0.01, seed=0, n_states=32, batch_size=32,
                save_every=25, tcr_lambda=lam, model_kwargs={"gain": 1.8})
    a = analyze_series(out, input=(0.0, 0.0, 0.0), drive=drive,
                   run=RunOptions(out=out / "analysis"))
    first = a.first_event(*STRUCTURAL)
    eight = [r.epoch for r in a.results if r.counts()["stable"] == 8]
    below = np.flatnonzero(run.losses < 0.1)
    tcr[lam] = (run, a)
    print(f"λ = {lam:g}: loss below 0.1 from epoch {below[0] if len(below) else '-'}; drop "
          f"{'none found' if a.drop is None else f'at epoch {a.drop_epoch:g}'}; first "
          f"restructuring event {'-' if first is None else f'{first.kind} at {first.epoch:g}'}; "
          f"8 stable points from epoch {eight[0] if eight else '-'}; final loss "
          f"{run.final_loss:.4f}, final signature {a.results[-1].signature}")"""

FF_TCR_PLOT = """fig, ax = plt.subplots(figsize=(7, 3.2))
for lam, (run, _) in tcr.items():
    ax.semilogy(run.losses, label=f"λ = {lam:g}")
ax.set_xlabel("epoch")
ax.set_ylabel("task loss")
ax.set_title("3-bit flip-flop, gain 1.8 at initialization, with and without TCR", fontsize=10)
ax.legend()
plt.show()"""

FLIPFLOP = [
    ("md", """# The 3-bit flip-flop: ghostscope against the standard finder's recipe, and TCR

A leaky firing-rate RNN (`checkpoints.models` `leaky_rnn`, 32 units) trained on the 3-bit
flip-flop (SCIENCE.md §3: a ±1 pulse now and then on each of 3 inputs, the target is the sign of
each bit's last pulse). A trained network holds the 8 memories as **8 stable fixed points**, with
saddles between them; the idealized cube has 8 + 12 + 6 + 1 = 27 points of index 0/1/2/3.

1. **The finders.** ghostscope's `analyze_checkpoint` against the recipe of the field's standard
   finder, Golub & Sussillo's FixedPointFinder (SCIENCE.md §1): Adam on the speed
   q(x) = ½‖F(x) − x‖² from 1,024 states of the network's own trajectories plus Gaussian noise
   (0.5, as its flip-flop example), tol_q 1e-12, tol_dq 1e-20, at most 5,000 iterations, then
   tol_unique 1e-3 and outlier removal, stability from the Jacobian. The package itself is not
   installed here (it needs TensorFlow or its own torch port), so the recipe is re-implemented in
   one function below, from those documented settings.
2. **TCR.** The restructuring paper's temporal consistency regularization (SCIENCE.md §3: the
   penalty λ·mean‖h_t − h_{t−1}‖², `train(..., tcr_lambda=λ)`) on a strongly coupled network
   (recurrent gain 1.8 at initialization), λ = 0 against λ = 0.1, one seed, shortened from
   `examples/tcr_flipflop.py` (which runs several seeds of 100 units for 600 epochs).

Timings go to stderr (they vary); everything printed to stdout is checked when the notebook is
run again. The conclusions are at the end."""),
    ("code", FF_SETUP),
    ("md", "## 1. ghostscope (its rich display: the portrait and the table of points)"),
    ("code", FF_GHOSTSCOPE),
    ("md", "## 1. The FixedPointFinder recipe"),
    ("code", FF_FPF),
    ("md", "## 1. The same points?"),
    ("code", FF_MATCH),
    ("md", "## 2. TCR on a strongly coupled network"),
    ("code", FF_TCR),
    ("code", FF_TCR_PLOT),
    ("md", """## What matched and what did not

**Matched.**
- *8 stable memory states and the saddles between them*: ghostscope finds "27 fixed points, by
  index {0: 8, 1: 12, 2: 6, 3: 1}", the idealized cube's 8 + 12 + 6 + 1 (SCIENCE.md §3), with q
  at most 1.4e-26.
- *The field's standard recipe agrees*: Adam on q from 1,024 noisy trajectory states finds the
  same 27 with q < 1e-12 ("by index: {0: '8/8', 1: '12/12', 2: '6/6', 3: '1/1'}", and "found
  only by the FixedPointFinder-style search: 0").

**Differences.**
- The recipe ran its full 5,000 Adam steps and also returned 36 points that are not fixed
  (q from 2.6e-07 to 1.1e-05: slow points or unfinished descents), which its user has to sort
  out by a q threshold; ghostscope's Newton polish ends at q ≈ 1e-26 and labels what it returns.
- Time (the stderr lines above; seconds vary from run to run and machine to machine): the recipe
  took more than ten times as long as ghostscope in every run of this notebook so far (17 to 28
  times on a loaded 2-core machine).
- *TCR did not help here*: the restructuring paper says the penalty speeds up learning and lets
  strongly coupled networks learn. In this one seed of 32 units at gain 1.8 the network learns
  without it, and λ = 0.1 is slightly slower ("λ = 0.1: loss below 0.1 from epoch 202" against
  "λ = 0: loss below 0.1 from epoch 193"; 8 stable points from epoch 225 against 200). The
  paper's exact TCR formula is not known to us (SCIENCE.md §3), and one seed is no statistic:
  `examples/tcr_flipflop.py --seeds 5` runs the comparison over seeds."""),
]

#: name -> cells of each notebook written by this script (``examples/{name}.ipynb``).
NOTEBOOKS = {"ghost_toy_model": TOY, "ghost_rank_one_runs": RANK_ONE,
             "ghost_rank_two_runs": RANK_TWO, "flipflop_tcr": FLIPFLOP}


def build(name: str, cells, timeout: int = 1200) -> Path:
    """Write ``examples/{name}.ipynb`` from ``cells`` and execute it in a fresh kernel."""
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


def differences(name: str, cells) -> list:
    """How the saved ``examples/{name}.ipynb`` differs from ``cells``: one line per cell whose
    kind or source is not the builder's (empty when it is what ``build`` wrote)."""
    saved = nbformat.read(HERE / f"{name}.ipynb", as_version=4).cells
    out = [f"{name}: {len(saved)} cells saved, {len(cells)} in the builder"] \
        if len(saved) != len(cells) else []
    for k, (cell, (kind, src)) in enumerate(zip(saved, cells)):
        if cell.cell_type != {"md": "markdown", "code": "code"}[kind] or cell.source != src:
            out.append(f"{name}: cell {k} ({kind}) differs")
    return out


def sync_markdown(name: str, cells) -> Path:
    """Rewrite only the markdown cells of a saved notebook (its code and outputs unchanged)."""
    path = HERE / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    if len(nb.cells) != len(cells) or code != [src for kind, src in cells if kind == "code"]:
        raise SystemExit(f"build_notebooks.py: {name}: the code cells changed; rebuild it "
                         f"(python examples/build_notebooks.py {name})")
    for cell, (kind, src) in zip(nb.cells, cells):
        if kind == "md":
            cell.source = src
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    args = sys.argv[1:]
    markdown_only = "--markdown" in args
    names = [a for a in args if a != "--markdown"] or list(NOTEBOOKS)
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        sys.exit(f"build_notebooks.py: unknown notebook(s) {unknown}; pass some of "
                 f"{list(NOTEBOOKS)} (none: all), and --markdown to rewrite only the text")
    for name in names:
        if markdown_only:
            print(sync_markdown(name, NOTEBOOKS[name]), file=sys.stderr)
        else:
            print(build(name, NOTEBOOKS[name]), file=sys.stderr)
