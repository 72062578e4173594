"""What :func:`fixedpoints.from_module` attaches to a Dynamics for the certificates.

Two optional attributes of a :class:`~fixedpoints.dynamics.Dynamics`, each a callable of the
bound input ``u`` (ndarray (n_inputs,)), carried along by ``with_input`` and ``to``:

* ``low_rank_source(u) -> LowRankForm or None``: the reduced form of a leaky tanh network
  (:mod:`fixedpoints.lowrank`), from a model's ``low_rank_form(u)`` method (INTERFACES.md) or,
  for a one-layer torch ``nn.RNN(tanh)``, from the SVD of ``W_hh`` when its numerical rank is
  at most 3;
* ``enclosure_source(u) -> Enclosure or None`` (:mod:`fixedpoints.enclosures`), from
  ``low_rank_form`` (factors), a model's ``rate_form(u)`` (dense ``W``), or the weights of a
  one-layer torch ``RNN``/``GRU``/``LSTM``;
* ``plrnn_source(u) -> PLRNNForm`` (:mod:`fixedpoints.plrnn`), from a model's ``plrnn_form(u)``
  (exact fixed points and cycles region by region).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from .enclosures import GRUEnclosure, LSTMEnclosure, RateEnclosure, _drive
from .lowrank import MAX_RANK, LowRankForm
from .plrnn import PLRNNForm

__all__ = ["attach_sources"]


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _model_input(u: np.ndarray, n_inputs: int, module: nn.Module):
    """The input as a float64 tensor on the module's device (None without inputs)."""
    if n_inputs == 0:
        return None
    param = next(module.parameters(), None)
    device = param.device if param is not None else None
    return torch.as_tensor(np.asarray(u, dtype=float), dtype=torch.float64, device=device)


def _torch_sources(dyn, module: nn.Module) -> None:
    if getattr(module, "num_layers", 1) != 1 or getattr(module, "proj_size", 0):
        return
    cell = isinstance(module, (nn.RNNCell, nn.GRUCell, nn.LSTMCell))
    names = (("weight_ih", "weight_hh", "bias_ih", "bias_hh") if cell
             else ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    w_ih, w_hh, b_ih, b_hh = (None if getattr(module, k, None) is None
                              else _np(getattr(module, k)) for k in names)
    if w_hh is None:
        return
    n = w_hh.shape[1]
    if isinstance(module, (nn.GRU, nn.GRUCell)):
        dyn.enclosure_source = lambda u: GRUEnclosure(w_ih, w_hh, b_ih, b_hh, u)
        return
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        dyn.enclosure_source = lambda u: LSTMEnclosure(w_ih, w_hh, b_ih, b_hh, u)
        return
    relu = module.nonlinearity == "relu"

    def drive(u):
        total = _drive(w_ih, u, b_ih, n)
        return total if b_hh is None else total + b_hh

    def enclosure_source(u):
        d = drive(u)
        return RateEnclosure(0.5 * d.lo + 0.5 * d.hi, weight=w_hh, alpha=1.0, time="discrete",
                             nonlinearity="relu" if relu else "tanh", drive=d)

    dyn.enclosure_source = enclosure_source
    if not relu:
        def low_rank_source(u):
            d = drive(u)
            return LowRankForm.from_matrix(w_hh, 0.5 * d.lo + 0.5 * d.hi, MAX_RANK)
        dyn.low_rank_source = low_rank_source


def _module_sources(dyn, clone: nn.Module, time: str) -> None:
    n_inputs = dyn.n_inputs
    alpha = float(getattr(clone, "alpha", 1.0)) if time == "discrete" else 1.0
    method = getattr(clone, "low_rank_form", None)
    if callable(method):
        def low_rank_source(u) -> Optional[LowRankForm]:
            form = method(_model_input(u, n_inputs, clone))
            return None if form is None else LowRankForm.from_dict(form)
        dyn.low_rank_source = low_rank_source
    plrnn_method = getattr(clone, "plrnn_form", None)
    if callable(plrnn_method) and time == "discrete":
        def plrnn_source(u) -> PLRNNForm:
            return PLRNNForm.from_dict(plrnn_method(_model_input(u, n_inputs, clone)))
        dyn.plrnn_source = plrnn_source
    has_rate = callable(getattr(clone, "rate_form", None))

    def enclosure_source(u):
        form = dyn.low_rank_source(u) if hasattr(dyn, "low_rank_source") else None
        if form is not None:
            return RateEnclosure(form.bias, left=form.left, right=form.right, alpha=alpha,
                                 time=time)
        if has_rate:
            rate = clone.rate_form(_model_input(u, n_inputs, clone))
            if rate.get("nonlinearity", "tanh") not in ("tanh", "relu"):
                return None
            return RateEnclosure(_np(rate["bias"]), weight=_np(rate["weight"]),
                                 alpha=float(rate.get("alpha", 1.0)) if time == "discrete"
                                 else 1.0, time=time,
                                 nonlinearity=rate.get("nonlinearity", "tanh"))
        return None

    if hasattr(dyn, "low_rank_source") or has_rate:
        dyn.enclosure_source = enclosure_source


def attach_sources(dyn, module: nn.Module, time: str) -> None:
    """Set ``low_rank_source`` / ``enclosure_source`` on ``dyn`` where ``module`` allows.

    Parameters
    ----------
    dyn : Dynamics
    module : torch.nn.Module
        A torch RNN/GRU (weights read now) or the adapter's private copy of a model with
        ``low_rank_form`` / ``rate_form`` (called at the bound input when needed).
    time : {"discrete", "continuous"}
    """
    if isinstance(module, (nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell, nn.LSTMCell)):
        _torch_sources(dyn, module)
    else:
        _module_sources(dyn, module, time)
