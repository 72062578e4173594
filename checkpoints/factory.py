"""Custom model factories: ``"pkg.module:build"`` or ``"path/to/file.py:build"``.

A factory is a callable that returns a ``torch.nn.Module``. If it takes exactly one required
positional argument it is called with the checkpoint's state dict (so it can read sizes from
the shapes); otherwise it is called with no argument and the state dict is loaded into the
result with ``load_state_dict(strict=True)``. When a one-argument factory returns a module whose
keys are exactly the file's keys, the weights are loaded as well (harmless if the factory
already did it).

The module must give its dynamics as ``step(x, u)`` (discrete) and/or ``velocity(x, u)``
(continuous) on batch-first 2-D tensors (``step(x)`` / ``velocity(x)`` without input), or be a
torch ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``. Nothing else is needed: sizes it does not state
are inferred (:mod:`checkpoints.custom`).

Importing a factory runs the user's own code (a module or file the user names); nothing from a
checkpoint file is ever executed.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Callable, Dict, Optional, Union

import torch
from torch import nn

from .custom import adapt_custom_module
from .errors import CheckpointError

__all__ = ["load_factory", "build_from_factory", "check_custom_module"]

Factory = Callable[..., nn.Module]
_SPEC_HELP = ("write the factory as 'package.module:function' (importable) or "
              "'path/to/file.py:function'")


def load_factory(spec: Union[str, Factory]) -> Factory:
    """Resolve a factory spec to a callable.

    Parameters
    ----------
    spec : str or callable
        ``"pkg.module:build"``, ``"path/to/file.py:build"``, or a callable (returned as is).

    Returns
    -------
    callable

    Raises
    ------
    CheckpointError
        Malformed spec, module or file not found, import error, missing or non-callable
        attribute. ``path`` names the spec.
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise CheckpointError(None if not isinstance(spec, str) else spec,
                              f"model factory {spec!r} has no ':function' part", _SPEC_HELP)
    target, _, attr = spec.rpartition(":")
    if not target or not attr.isidentifier():
        raise CheckpointError(spec, f"model factory {spec!r} is malformed", _SPEC_HELP)
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _import_file(target, spec)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise CheckpointError(spec, f"cannot import module {target!r} ({exc})",
                                  "check the module name and that it is on PYTHONPATH, or give a "
                                  "file path like 'path/to/file.py:function'") from exc
        except Exception as exc:
            raise CheckpointError(spec, f"importing module {target!r} failed: "
                                  f"{type(exc).__name__}: {exc}",
                                  "fix the error in that module") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        public = sorted(n for n in vars(module) if not n.startswith("_")
                        and callable(getattr(module, n)))
        raise CheckpointError(spec, f"{target!r} has no attribute {attr!r}",
                              f"use one of its callables: {public[:20]}")
    if not callable(factory):
        raise CheckpointError(spec, f"{target}:{attr} is a {type(factory).__name__}, not callable",
                              "point the spec at a function or class that returns an nn.Module")
    return factory


def _import_file(target: str, spec: str):
    path = os.path.abspath(os.path.expanduser(target))
    if not os.path.isfile(path):
        raise CheckpointError(target, "factory file does not exist",
                              "check the path (relative paths are taken from the current "
                              "directory)")
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    name = f"_ghostscope_factory_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:  # pragma: no cover - odd file types
        raise CheckpointError(target, "cannot be imported as a Python module",
                              "give a .py file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise CheckpointError(target, f"importing the factory file failed: "
                              f"{type(exc).__name__}: {exc}", "fix the error in that file") from exc
    return module


def _wants_state_dict(factory: Factory) -> bool:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    required = [p for p in signature.parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1


def check_custom_module(module, where: str) -> nn.Module:
    """Check that ``module`` is an nn.Module with dynamics; return it or raise CheckpointError."""
    if not isinstance(module, nn.Module):
        raise CheckpointError(where, f"the model factory returned a {type(module).__name__}, "
                              "not a torch.nn.Module", "return an nn.Module from the factory")
    if isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)):
        return module
    if not (callable(getattr(module, "step", None)) or callable(getattr(module, "velocity", None))):
        raise CheckpointError(where, f"{type(module).__name__} has neither step(x, u) nor "
                              "velocity(x, u) and is not a torch RNN/GRU/LSTM",
                              "add a method step(x, u) -> x_next (discrete) or velocity(x, u) -> "
                              "dx/dt (continuous) on batch-first (b, n) tensors")
    return module


def build_from_factory(factory: Union[str, Factory], state_dict: Dict[str, torch.Tensor],
                       path: Optional[str] = None) -> nn.Module:
    """Build a module with a factory and fill it with ``state_dict``.

    Parameters
    ----------
    factory : str or callable
        A factory spec (see :func:`load_factory`) or the callable itself.
    state_dict : dict of str to torch.Tensor
    path : str, optional
        The checkpoint file, for error messages.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    CheckpointError
        The factory fails, returns no module or a module without dynamics, or the state dict
        does not fit (missing/unexpected keys, shape mismatch).
    """
    spec_name = (factory if isinstance(factory, str)
                 else getattr(factory, "__qualname__", repr(factory)))
    factory = load_factory(factory)
    where = path if path is not None else str(spec_name)
    takes_state = _wants_state_dict(factory)
    try:
        module = factory(state_dict) if takes_state else factory()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(where, f"model factory {spec_name} raised "
                              f"{type(exc).__name__}: {exc}",
                              "fix the factory, or check that this checkpoint is the kind of "
                              "model it builds") from exc
    module = check_custom_module(module, where)
    own_keys = set(module.state_dict())
    if takes_state and own_keys != set(state_dict):
        # the factory consumed the state dict its own way
        return adapt_custom_module(module, state_dict, where)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        missing = sorted(own_keys - set(state_dict))
        unexpected = sorted(set(state_dict) - own_keys)
        detail = " ".join(str(exc).split())
        raise CheckpointError(where, f"the state dict does not fit the module built by "
                              f"{spec_name} (missing keys {missing[:10]}, unexpected keys "
                              f"{unexpected[:10]}): {detail[:400]}",
                              "make the factory build the architecture that was saved, or pass "
                              "prefix= to select the sub-module's keys") from exc
    return adapt_custom_module(module, state_dict, where)
