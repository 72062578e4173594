"""The ghost paper's training runs, as the authors' scripts do them and in their file layout.

Tasks (SCIENCE.md §2; dt = 5 ms, one full batch every epoch, ``nn.MSELoss()`` over all trials
and steps, one input channel):

``"dcdt"`` delayed cue discrimination
    cue ±1 for 2 steps, a 10-step delay, a 10-step response window (T = 22); target 0 for the
    first 12 steps, then the cue's sign; the 2 trial types tiled 500 times (B = 1000); tanh
    output, no noise; plain SGD, lr 1e-3; accuracy: outputs binarized to {−1, 0, +1} at ±0.33,
    compared element-wise with the targets.
``"dmts"`` delayed match-to-sample
    cue 1 (±1) for 6 steps, a 16-step delay, cue 2 (±1) for 6 steps, a 10-step response window
    (T = 38); target 1 in the response window when the cues match, else 0; the 4 trial types
    tiled 500 times (B = 2000); sigmoid output, noise σ = 0.01 inside the dynamics; Adam,
    lr 1e-4; accuracy: outputs binarized at 0.5, compared element-wise.

The model is :class:`~checkpoints.paper_model.PaperRNN` (N = 100, K = 2 by default), run as
their forward pass: a fresh initial state ``r_0 = tanh(0.3 ξ)``, ``ξ ~ N(0, I)``, on every call;
the output at step t read from ``r_t`` before that step's update.

Layout written (:func:`train_paper_run`), exactly theirs::

    OUT/models/model_epoch{e}.pt   plain float32 state dict after e + 1 updates (every epoch)
    OUT/final.npz                  loss_history, grad_history, accuracy_history (float64)
    OUT/model_final.pt             the last state dict

``loss_history[e]`` is the loss computed before update e, so it belongs to
``model_epoch{e-1}.pt`` (read it with ``log_offset=-1``); ``grad_history[e] = ‖∂L/∂S_l‖_F +
‖∂L/∂S_r‖_F`` (full rank: ``‖∂L/∂W_rec‖_F``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from .paper_model import PaperRNN

__all__ = ["PaperTask", "PAPER_TASKS", "PaperRun", "paper_trials", "run_trials",
           "train_paper_run"]


@dataclass(frozen=True)
class PaperTask:
    """One of the authors' tasks with their training settings.

    Attributes
    ----------
    name : str
    periods : tuple of int
        Steps of each phase (cue, delay, response) or (cue 1, delay, cue 2, response).
    repeats : int
        How often the trial types are tiled into the batch (500).
    output : {"tanh", "sigmoid"}
    sigma : float
        Noise inside the dynamics.
    optimizer : {"sgd", "adam"}
    lr : float
    epochs : int
        The paper's number of epochs.
    """

    name: str
    periods: Tuple[int, ...]
    repeats: int
    output: str
    sigma: float
    optimizer: str
    lr: float
    epochs: int

    def __post_init__(self) -> None:
        if self.name not in ("dcdt", "dmts"):
            raise ValueError(f"PaperTask.name={self.name!r} is invalid; pass 'dcdt' or 'dmts'")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"PaperTask.repeats={self.repeats!r} is invalid; pass a positive "
                             "integer")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"PaperTask.optimizer={self.optimizer!r} is invalid; pass 'sgd' "
                             "or 'adam'")

    @property
    def n_steps(self) -> int:
        return int(sum(self.periods))


PAPER_TASKS: Dict[str, PaperTask] = {
    "dcdt": PaperTask("dcdt", (2, 10, 10), 500, "tanh", 0.0, "sgd", 1e-3, 100_000),
    "dmts": PaperTask("dmts", (6, 16, 6, 10), 500, "sigmoid", 0.01, "adam", 1e-4, 20_000),
}
_ALIASES = {"cue_discrimination": "dcdt", "match_to_sample": "dmts"}


def _task(task: Union[str, PaperTask]) -> PaperTask:
    if isinstance(task, PaperTask):
        return task
    name = _ALIASES.get(str(task), str(task))
    if name not in PAPER_TASKS:
        raise ValueError(f"task={task!r} is not one of the paper's runs; pass 'dcdt' "
                         "(cue_discrimination) or 'dmts' (match_to_sample)")
    return PAPER_TASKS[name]


def paper_trials(task: Union[str, PaperTask], dtype: torch.dtype = torch.float32
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The full batch of a task: inputs ``(B, T, 1)`` and targets ``(B, T, 1)``.

    Trial types in order (DCDT: cue +1, −1; DMTS: (+, +), (+, −), (−, +), (−, −)), the whole
    list tiled ``repeats`` times.
    """
    spec = _task(task)
    if spec.name == "dcdt":
        cue, delay, response = spec.periods
        types = []
        for sign in (1.0, -1.0):
            u = torch.zeros(spec.n_steps)
            u[:cue] = sign
            y = torch.zeros(spec.n_steps)
            y[cue + delay:] = sign
            types.append((u, y))
    else:
        cue, delay, cue2, response = spec.periods
        types = []
        for first in (1.0, -1.0):
            for second in (1.0, -1.0):
                u = torch.zeros(spec.n_steps)
                u[:cue] = first
                u[cue + delay: cue + delay + cue2] = second
                y = torch.zeros(spec.n_steps)
                y[cue + delay + cue2:] = 1.0 if first == second else 0.0
                types.append((u, y))
    inputs = torch.stack([u for u, _ in types]).repeat(spec.repeats, 1)
    targets = torch.stack([y for _, y in types]).repeat(spec.repeats, 1)
    return inputs[..., None].to(dtype), targets[..., None].to(dtype)


def run_trials(model: PaperRNN, inputs: torch.Tensor, sigma: float = 0.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The authors' forward pass: outputs ``(B, T, n_outputs)`` for inputs ``(B, T, n_inputs)``.

    ``r_0 = tanh(0.3 ξ)`` fresh on every call; ``o_t = g(W_out(r_t S_l))`` read before the
    update ``r_{t+1} = (1 − α) r_t + α tanh(W_in(u_t) + r_t M + σ ε_t)``.
    """
    batch, n_time = inputs.shape[0], inputs.shape[1]
    ref = inputs
    r = torch.tanh(0.3 * torch.randn(batch, model.n_states, generator=generator,
                                     dtype=ref.dtype))
    outputs = []
    for t in range(n_time):
        outputs.append(model.readout(r))
        pre = model.W_in(inputs[:, t]) + model._recurrent(r)
        if sigma:
            pre = pre + sigma * torch.randn(pre.shape, generator=generator, dtype=ref.dtype)
        r = (1.0 - model.alpha) * r + model.alpha * torch.tanh(pre)
    return torch.stack(outputs, dim=1)


def _accuracy(spec: PaperTask, outputs: torch.Tensor, targets: torch.Tensor) -> float:
    if spec.name == "dcdt":
        binary = torch.where(outputs > 0.33, 1.0, torch.where(outputs < -0.33, -1.0, 0.0))
    else:
        binary = (outputs > 0.5).to(outputs.dtype)
    return float((binary == targets).to(torch.float64).mean())


@dataclass(frozen=True)
class PaperRun:
    """What :func:`train_paper_run` did.

    Attributes
    ----------
    out_dir : Path or None
    loss_history, grad_history, accuracy_history : ndarray of shape (epochs,)
        As the authors' ``final.npz``: entry e computed before update e.
    model : PaperRNN
        The trained model (float32, as saved).
    """

    out_dir: Optional[Path]
    loss_history: np.ndarray
    grad_history: np.ndarray
    accuracy_history: np.ndarray
    model: PaperRNN


def train_paper_run(task: Union[str, PaperTask], out_dir: Union[str, os.PathLike, None], *,
                    epochs: Optional[int] = None, n_states: int = 100, rank: Optional[int] = 2,
                    seed: int = 0, lr: Optional[float] = None, repeats: Optional[int] = None,
                    save_every: int = 1, overwrite: bool = False) -> PaperRun:
    """Train the authors' model on their task and write their layout.

    Parameters
    ----------
    task : {"dcdt", "dmts"} or PaperTask
        ``"cue_discrimination"`` and ``"match_to_sample"`` are accepted as aliases.
    out_dir : path or None
        The run directory (their ``results_<task>/seed_<k>``); None writes nothing.
    epochs : int, optional
        Updates (default: the paper's 100,000 / 20,000; tests and examples pass a few).
    n_states : int, default 100
    rank : int or None, default 2
        None trains the full-rank model (``W_rec``).
    seed : int, default 0
        Seeds ``torch.manual_seed`` (initialization, initial states, noise).
    lr : float, optional
        The paper's learning rate unless given.
    repeats : int, optional
        Tiling of the trial types (500 in the paper; fewer makes small test runs cheap).
    save_every : int, default 1
        Checkpoint period (the authors save every epoch).
    overwrite : bool, default False
        Allow a non-empty ``out_dir``.

    Returns
    -------
    PaperRun

    Raises
    ------
    ValueError
        Bad settings (the message names the argument).
    FileExistsError
        ``out_dir`` is not empty and ``overwrite`` is False.
    """
    spec = _task(task)
    if repeats is not None:
        spec = PaperTask(spec.name, spec.periods, repeats, spec.output, spec.sigma,
                         spec.optimizer, spec.lr, spec.epochs)
    n_epochs = spec.epochs if epochs is None else epochs
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or n_epochs < 1:
        raise ValueError(f"train_paper_run: epochs={epochs!r} is invalid; pass a positive integer")
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
        raise ValueError(f"train_paper_run: save_every={save_every!r} is invalid; pass a "
                         "positive integer")
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise FileExistsError(f"train_paper_run: out_dir={str(out)!r} is not empty; pass a "
                                  "new directory or overwrite=True")
        (out / "models").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = PaperRNN(1, n_states, 1, rank=rank, output=spec.output)
    inputs, targets = paper_trials(spec)
    if spec.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(),
                                                           lr=spec.lr if lr is None else lr)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr if lr is None else lr)
    criterion = torch.nn.MSELoss()
    losses, grads, accuracies = [], [], []
    recurrent = ["S_l", "S_r"] if rank is not None else ["W_rec"]
    for epoch in range(n_epochs):
        optimizer.zero_grad()
        outputs = run_trials(model, inputs, spec.sigma)
        loss = criterion(outputs, targets)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(sum(float(getattr(model, n).grad.norm()) for n in recurrent))
        accuracies.append(_accuracy(spec, outputs.detach(), targets))
        optimizer.step()
        if out is not None and (epoch % save_every == 0 or epoch == n_epochs - 1):
            torch.save(_plain_state(model), out / "models" / f"model_epoch{epoch}.pt")
    history = {"loss_history": np.asarray(losses, dtype=np.float64),
               "grad_history": np.asarray(grads, dtype=np.float64),
               "accuracy_history": np.asarray(accuracies, dtype=np.float64)}
    if out is not None:
        np.savez(out / "final.npz", **history)  # type: ignore[arg-type]
        torch.save(_plain_state(model), out / "model_final.pt")
    return PaperRun(out, history["loss_history"], history["grad_history"],
                    history["accuracy_history"], model)


def _plain_state(model: PaperRNN) -> Dict[str, torch.Tensor]:
    """The state dict as the authors save it: float32 tensors detached and cloned."""
    return {k: v.detach().to(torch.float32).clone() for k, v in model.state_dict().items()}
