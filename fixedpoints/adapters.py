"""Turn torch models into :class:`~fixedpoints.dynamics.Dynamics` without touching them.

Supported:

* ``torch.nn.RNN`` (tanh or relu), ``GRU`` and ``LSTM`` with any number of layers, and their
  ``Cell`` versions. The state is every layer's hidden state concatenated, ``[h_0, ..., h_{L-1}]``;
  for an LSTM the cell states follow, ``[h_0, ..., h_{L-1}, c_0, ..., c_{L-1}]``. One step feeds
  the input to layer 0 and each layer's new ``h`` to the next layer (dropout is off, as in eval).
* Any ``nn.Module`` with ``step(x, u)`` (a map, discrete time) or ``velocity(x, u)`` (a vector
  field, continuous time) on batch-first 2-D tensors. Its sizes are read from ``n_states`` (or
  ``hidden_size``) and ``n_inputs`` (or ``input_size``). If it has both, ``time=`` picks one; the
  default is the module's own ``time`` attribute, else discrete. A ``jacobian(x, u)`` method, if
  present, is used as the closed-form Jacobian of ``step``/``velocity``.

The user's model is never mutated: parameters are copied (detached, in the requested dtype and
device), the copy runs in eval mode, and ``requires_grad``, ``.grad`` and ``training`` of the
original are left as they were.
"""
from __future__ import annotations

import copy
import logging
from typing import Dict, List, Optional

import torch
from torch import nn

from .dynamics import ContinuousDynamics, DiscreteDynamics, Dynamics

__all__ = ["from_module"]

log = logging.getLogger(__name__)

_RECURRENT = (nn.RNN, nn.GRU, nn.LSTM)
_CELLS = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)


def _check_finite(module: nn.Module) -> None:
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            n_bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"parameter {name!r} of {type(module).__name__} has {n_bad} "
                             f"non-finite value(s) (NaN/inf); the dynamics are undefined. Use a "
                             f"checkpoint from before training diverged")


def _weights(module: nn.Module, names: List[str], dtype, device) -> Dict[str, torch.Tensor]:
    return {n: getattr(module, n).detach().to(device=device, dtype=dtype).clone()
            for n in names if getattr(module, n, None) is not None}


def _layer_weights(module: nn.Module, dtype, device) -> List[Dict[str, torch.Tensor]]:
    """Per-layer weights ``w_ih, w_hh, b_ih, b_hh`` (biases may be absent)."""
    if isinstance(module, _CELLS):
        w = _weights(module, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"], dtype, device)
        return [{"w_ih": w["weight_ih"], "w_hh": w["weight_hh"],
                 "b_ih": w.get("bias_ih"), "b_hh": w.get("bias_hh")}]
    if getattr(module, "bidirectional", False):
        raise ValueError(f"{type(module).__name__} is bidirectional: a bidirectional RNN has no "
                         f"forward-in-time dynamics; analyze a unidirectional model")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"LSTM with proj_size={module.proj_size} is not supported; train without "
                         f"projections or wrap the model in a module with step(x, u)")
    layers = []
    for layer in range(module.num_layers):
        w = _weights(module, [f"weight_ih_l{layer}", f"weight_hh_l{layer}",
                              f"bias_ih_l{layer}", f"bias_hh_l{layer}"], dtype, device)
        layers.append({"w_ih": w[f"weight_ih_l{layer}"], "w_hh": w[f"weight_hh_l{layer}"],
                       "b_ih": w.get(f"bias_ih_l{layer}"), "b_hh": w.get(f"bias_hh_l{layer}")})
    return layers


def _affine(x, w, b):
    out = x @ w.T
    return out if b is None else out + b


def _torch_rnn_step(module: nn.Module, dtype, device):
    """Build ``step(x, u)`` for a torch recurrent module. Returns (step, n_states, n_inputs)."""
    layers = _layer_weights(module, dtype, device)
    hidden = module.hidden_size
    n_layers = len(layers)
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        kind = "lstm"
    elif isinstance(module, (nn.GRU, nn.GRUCell)):
        kind = "gru"
    else:
        kind = "rnn_relu" if module.nonlinearity == "relu" else "rnn_tanh"
    n_states = hidden * n_layers * (2 if kind == "lstm" else 1)

    def step(x, u):
        hs = [x[:, l * hidden:(l + 1) * hidden] for l in range(n_layers)]
        cs = ([x[:, (n_layers + l) * hidden:(n_layers + l + 1) * hidden] for l in range(n_layers)]
              if kind == "lstm" else None)
        inp = u
        new_h, new_c = [], []
        for l, w in enumerate(layers):
            gi = _affine(inp, w["w_ih"], w["b_ih"])
            gh = _affine(hs[l], w["w_hh"], w["b_hh"])
            if kind == "gru":
                i_r, i_z, i_n = gi.chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                cand = torch.tanh(i_n + r * h_n)
                h = (1 - z) * cand + z * hs[l]
            elif kind == "lstm":
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * cs[l] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_c.append(c)
            elif kind == "rnn_relu":
                h = torch.relu(gi + gh)
            else:
                h = torch.tanh(gi + gh)
            new_h.append(h)
            inp = h
        return torch.cat(new_h + new_c, dim=1)

    return step, n_states, module.input_size, kind


def _size(module: nn.Module, names, what: str) -> Optional[int]:
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, int):
            return value
    return None


def from_module(module: nn.Module, input=None, time: Optional[str] = None,
                dtype: torch.dtype = torch.float64, device=None) -> Dynamics:
    """Wrap a torch model as a :class:`Dynamics` with a constant input bound.

    Parameters
    ----------
    module : torch.nn.Module
        ``nn.RNN``/``GRU``/``LSTM`` (any number of layers), their ``Cell`` versions, or a module
        with ``step(x, u)`` and/or ``velocity(x, u)`` on batch-first tensors.
    input : array_like of shape (n_inputs,), optional
        Constant input; zeros by default.
    time : {"discrete", "continuous"}, optional
        Which dynamics to use when the module defines both ``step`` and ``velocity``.
    dtype : torch.dtype, default torch.float64
    device : str or torch.device, optional
        Where to evaluate (default: CPU).

    Returns
    -------
    Dynamics

    Raises
    ------
    ValueError
        For unsupported modules, non-finite weights, a wrong ``time`` or a wrong input size.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}; for a "
                         f"plain function use DiscreteDynamics(fn, n_states) or "
                         f"ContinuousDynamics(fn, n_states)")
    if time not in (None, "discrete", "continuous"):
        raise ValueError(f"time={time!r} is invalid; pass 'discrete', 'continuous' or None")
    device = torch.device(device) if device is not None else torch.device("cpu")
    _check_finite(module)
    name = type(module).__name__

    if isinstance(module, _RECURRENT + _CELLS):
        if time == "continuous":
            raise ValueError(f"{name} is a discrete-time map; pass time='discrete' (or None)")
        step, n_states, n_inputs, kind = _torch_rnn_step(module, dtype, device)
        return DiscreteDynamics(step, n_states, n_inputs=n_inputs, input=input, dtype=dtype,
                                device=device, name=f"{name}({kind})")

    has_step = callable(getattr(module, "step", None))
    has_velocity = callable(getattr(module, "velocity", None))
    if not (has_step or has_velocity):
        raise ValueError(f"{name} has no dynamics: define step(x, u) (discrete time) or "
                         f"velocity(x, u) (continuous time) on batch-first tensors, or pass a "
                         f"torch nn.RNN/GRU/LSTM")
    if time is None:
        own = getattr(module, "time", None)
        if has_step and has_velocity:
            time = own if own in ("discrete", "continuous") else "discrete"
        else:
            time = "discrete" if has_step else "continuous"
    if time == "discrete" and not has_step:
        raise ValueError(f"{name} defines velocity(x, u) only; pass time='continuous' or add "
                         f"step(x, u)")
    if time == "continuous" and not has_velocity:
        raise ValueError(f"{name} defines step(x, u) only; pass time='discrete' or add "
                         f"velocity(x, u)")
    n_states = _size(module, ("n_states", "hidden_size"), "states")
    if n_states is None:
        raise ValueError(f"{name} does not say its state size: give it an integer attribute "
                         f"n_states (or hidden_size)")
    n_inputs = _size(module, ("n_inputs", "input_size"), "inputs") or 0

    try:
        clone = copy.deepcopy(module)
    except Exception as exc:
        raise ValueError(f"{name} could not be copied ({exc}); ghostscope copies models so it "
                         f"never changes yours. Make the module deep-copyable") from exc
    clone = clone.to(device=device, dtype=dtype).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
        p.grad = None
    fn = clone.step if time == "discrete" else clone.velocity
    jac = getattr(clone, "jacobian", None)
    cls = DiscreteDynamics if time == "discrete" else ContinuousDynamics
    dyn = cls(fn, n_states, n_inputs=n_inputs, input=input, dtype=dtype, device=device,
              jacobian_fn=jac if callable(jac) else None, name=name)
    dyn.module = clone
    return dyn
