"""Custom models without ceremony: sizes inferred, ``u`` optional.

A user's module needs only ``step(x, u)`` or ``velocity(x, u)`` (or ``step(x)`` /
``velocity(x)`` for a model without input). What the analysis needs besides, the state size
``n_states`` and the input size ``n_inputs``, is read from the module's own attributes
(``n_states`` / ``hidden_size``, ``n_inputs`` / ``input_size``) when it has them, else inferred:

1. candidate state sizes are the sizes of the square weight matrices in the state dict, then
   every other dimension of its tensors; candidate input sizes are 0 and those dimensions;
2. the dynamics are *probed*: called on a small batch of states (and inputs) of each candidate
   size; a size is kept when the call returns states of the same shape;
3. one state size must remain (otherwise the error names the attribute to add); an input size
   that makes no difference (the model ignores ``u``) is 0.

The module is then wrapped in :class:`CustomModel`, which carries the sizes and forwards
``step`` / ``velocity`` and any closed-form derivative methods (``step_jacobian``, …) to it.
Where the module has no closed-form Jacobian, :class:`CustomModel` gives one computed with
``torch.func`` for the whole batch at once: one ``vjp`` through the batched dynamics, pulled back
along the n basis vectors under ``vmap`` (the rows of every state's Jacobian in one pass), the
last result kept for a repeated call at the same states.
Modules that already say their sizes and take ``u`` are returned unchanged.
"""
from __future__ import annotations

import inspect
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.func import vjp, vmap

from .errors import CheckpointError

__all__ = ["CustomModel", "adapt_custom_module", "infer_sizes"]

_FORWARDED = ("step_jacobian", "velocity_jacobian", "step_curvature", "velocity_curvature",
              "jacobian", "curvature", "readout", "latent_basis", "low_rank_form")
_PROBE_BATCH = 3


def _takes_input(fn) -> bool:
    """Whether ``fn`` accepts a second positional argument (the input)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


def _int_attr(module: nn.Module, names: Tuple[str, ...]) -> Optional[int]:
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _dynamics(module: nn.Module):
    for name in ("step", "velocity"):
        fn = getattr(module, name, None)
        if callable(fn):
            return name, fn
    return None, None


def _candidates(state_dict: Dict[str, torch.Tensor]) -> Tuple[List[int], List[int]]:
    square: List[int] = []
    other: List[int] = []
    for tensor in state_dict.values():
        shape = tuple(int(s) for s in tensor.shape)
        if len(shape) == 2 and shape[0] == shape[1]:
            square.append(shape[0])
        other.extend(shape)
    states: List[int] = []
    for n in square + other:
        if n > 0 and n not in states:
            states.append(n)
    inputs = [0, *states]
    return states, inputs


def _works(fn, takes_u: bool, n: int, m: int, dtype) -> bool:
    gen = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(_PROBE_BATCH, n, generator=gen, dtype=dtype)
    try:
        with torch.no_grad():
            if takes_u:
                u = 0.1 * torch.randn(_PROBE_BATCH, m, generator=gen, dtype=dtype)
                out = fn(x, u)
            else:
                out = fn(x)
    except Exception:  # noqa: BLE001 - a wrong size raises in the user's code: not this one
        return False
    return isinstance(out, torch.Tensor) and tuple(out.shape) == (_PROBE_BATCH, n)


def infer_sizes(module: nn.Module, state_dict: Optional[Dict[str, torch.Tensor]] = None,
                where: Optional[str] = None) -> Tuple[int, int]:
    """``(n_states, n_inputs)`` of a custom module (see the module docstring).

    Raises
    ------
    CheckpointError
        The module has no dynamics, no candidate size works, or several do (the message names
        the attribute to add).
    """
    name, fn = _dynamics(module)
    cls = type(module).__name__
    if fn is None:
        raise CheckpointError(where, f"{cls} has neither step(x, u) nor velocity(x, u)",
                              "add a method step(x, u) -> x_next (discrete) or velocity(x, u) "
                              "-> dx/dt (continuous) on batch-first (b, n) tensors")
    takes_u = _takes_input(fn)
    n_given = _int_attr(module, ("n_states", "hidden_size"))
    m_given = _int_attr(module, ("n_inputs", "input_size"))
    if not takes_u:
        m_given = 0
    if n_given is not None and m_given is not None:
        return n_given, m_given
    sd = state_dict if state_dict is not None else module.state_dict()
    states, inputs = _candidates(sd)
    if n_given is not None:
        states = [n_given]
    if m_given is not None:
        inputs = [m_given]
    ref = next((t for t in sd.values() if t.is_floating_point()), None)
    dtype = ref.dtype if ref is not None else torch.float32
    working: Dict[int, List[int]] = {}
    for n in states:
        for m in inputs:
            if _works(fn, takes_u, n, m, dtype):
                working.setdefault(n, []).append(m)
            if not takes_u:
                break
    if not working:
        raise CheckpointError(where, f"cannot infer the sizes of {cls}: {name}(x, u) failed for "
                              f"every candidate state size {states[:8]} (read from the weights' "
                              "shapes)", f"give {cls} integer attributes n_states and n_inputs")
    if len(working) > 1:
        raise CheckpointError(where, f"cannot infer the state size of {cls}: {name} runs with "
                              f"states of size {sorted(working)[:8]}",
                              f"give {cls} an integer attribute n_states")
    (n, ms), = working.items()
    if len(ms) > 1:
        if 0 in ms and len(ms) == len(inputs):
            return n, 0  # u is ignored: the model has no input
        raise CheckpointError(where, f"cannot infer the input size of {cls}: {name} runs with "
                              f"inputs of size {ms[:8]}", f"give {cls} an integer attribute "
                              "n_inputs")
    return n, ms[0]


class CustomModel(nn.Module):
    """A user's module with its sizes, ``u`` optional; forwards the dynamics to it.

    Attributes
    ----------
    module : torch.nn.Module
        The user's module (its weights are this model's, under ``module.``).
    n_states, n_inputs : int
    """

    architecture = "custom"

    def __init__(self, module: nn.Module, n_states: int, n_inputs: int):
        super().__init__()
        self.module = module
        self.n_states = int(n_states)
        self.n_inputs = int(n_inputs)
        self._has = {name: callable(getattr(module, name, None))
                     for name in ("step", "velocity") + _FORWARDED}
        self._takes_u = {name: _takes_input(getattr(module, name))
                         for name in ("step", "velocity", "step_jacobian", "velocity_jacobian",
                                      "jacobian") if self._has[name]}
        own = getattr(module, "time", None)
        if isinstance(own, str):
            self.time = own

    def _call(self, name: str, x: torch.Tensor, u: Optional[torch.Tensor]):
        fn = getattr(self.module, name)
        if not self._takes_u.get(name, True):
            return fn(x)
        if u is None:
            u = x.new_zeros(x.shape[:-1] + (self.n_inputs,))
        return fn(x, u)

    def _forward_if(self, name: str):
        if not self._has.get(name):
            return None
        if name in self._takes_u:
            return lambda x, u=None: self._call(name, x, u)
        return getattr(self.module, name)

    @property
    def step(self):
        return self._forward_if("step")

    @property
    def velocity(self):
        return self._forward_if("velocity")

    def _batched_jacobian(self, name: str, x: torch.Tensor,
                          u: Optional[torch.Tensor]) -> torch.Tensor:
        """``∂f/∂x (b, n, n)`` of ``f = step`` or ``velocity`` by ``torch.func``, batched."""
        if u is None:
            u = x.new_zeros(x.shape[:-1] + (self.n_inputs,))
        cache = self.__dict__.get("_jacobian_cache")
        if cache is not None and cache[0] == name and cache[1].shape == x.shape \
                and cache[2].shape == u.shape and torch.equal(cache[1], x) \
                and torch.equal(cache[2], u):
            return cache[3]
        x_in = x.detach()
        with torch.enable_grad():
            pull = vjp(lambda y: self._call(name, y, u), x_in)[1]
            n, b = x.shape[-1], x.shape[0]
            basis = torch.eye(n, dtype=x.dtype, device=x.device)[:, None, :].expand(n, b, n)
            try:
                (rows,) = vmap(pull)(basis)
            except RuntimeError:  # an operation without a batching rule: one pull per row
                rows = torch.stack([pull(basis[i])[0] for i in range(n)])
        jac = rows.detach().permute(1, 0, 2).contiguous()
        self.__dict__["_jacobian_cache"] = (name, x.detach().clone(), u.detach().clone(), jac)
        return jac

    def __getattr__(self, name: str):
        if name in ("step_jacobian", "velocity_jacobian"):
            has = self.__dict__.get("_has", {})
            form = name[: -len("_jacobian")]
            if not has.get(name) and not has.get("jacobian") and has.get(form):
                return lambda x, u=None: self._batched_jacobian(form, x, u)
        if name in _FORWARDED and not name.startswith("_"):
            has = self.__dict__.get("_has", {})
            if has.get(name):
                return self._forward_if(name) if name in self.__dict__.get("_takes_u", {}) \
                    else getattr(self._modules["module"], name)
            raise AttributeError(name)
        return super().__getattr__(name)

    def extra_repr(self) -> str:
        return f"n_states={self.n_states}, n_inputs={self.n_inputs}"


def adapt_custom_module(module: nn.Module, state_dict: Optional[Dict[str, torch.Tensor]] = None,
                        where: Optional[str] = None) -> nn.Module:
    """The module as is when it says its sizes and takes ``u``; else a :class:`CustomModel`.

    torch ``nn.RNN`` / ``GRU`` / ``LSTM`` and modules with a ``recurrent_module`` are returned
    unchanged (their sizes are their own).
    """
    if isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)) or isinstance(
            getattr(module, "recurrent_module", None), (nn.RNN, nn.GRU, nn.LSTM)):
        return module
    _, fn = _dynamics(module)
    has_sizes = _int_attr(module, ("n_states", "hidden_size")) is not None
    if fn is not None and has_sizes and _takes_input(fn) and (
            _int_attr(module, ("n_inputs", "input_size")) is not None):
        return module
    n_states, n_inputs = infer_sizes(module, state_dict, where)
    return CustomModel(module, n_states, n_inputs)
