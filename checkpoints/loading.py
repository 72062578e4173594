"""One checkpoint file in, one ready-to-analyze model out: the :class:`Checkpoint` orchestrator.

Each job lives in its own module; this one composes them (and re-exports their public names):

* :mod:`checkpoints.names` — epoch / step from file names;
* :mod:`checkpoints.formats` — the safe format readers;
* :mod:`checkpoints.layout` — where the state dict sits in a payload, metadata, value checks;
* :mod:`checkpoints.detection` — architecture from key names and shapes;
* :mod:`checkpoints.config` — config.json / model.json;
* :mod:`checkpoints.building` — building the model and filling it with the weights.

Formats
-------
``.pt .pth .ckpt .bin``
    ``torch.load(map_location="cpu", weights_only=True)``: tensors, dicts, lists and numbers
    only, so nothing in the file can run code. Whole pickled modules need
    ``trust_pickle=True`` (which *does* run the pickle: only for files you trust).
``.safetensors``
    via the ``safetensors`` package; the header's string metadata may hold ``epoch``/``step``.
``.npz``
    ``numpy.load(allow_pickle=False)``; 0-d arrays named ``epoch``, ``step``, ``global_step``
    are metadata, the other arrays the state dict.

Layouts
-------
A state dict at the top level, or under ``state_dict``, ``model_state_dict``, ``model``,
``net`` or ``module`` (also nested, e.g. ``{"model": {"state_dict": ...}}``); other top-level
entries (``epoch``, ``step``, ``global_step``, ``loss``, …) are metadata.
Inside the state dict a model may sit under any key prefix (``module.`` from DataParallel,
``model.`` from Lightning, ``model.rnn.`` for a torch GRU held by a bigger model): it is found
by its key pattern, and ``prefix=`` picks one when there are several.

Architecture
------------
Resolved in this order: the explicit ``architecture=`` argument, then ``config.json`` /
``model.json`` beside the file (``{"architecture": name, "model": {kwargs}}``), then the key
names and shapes. Sizes missing from a config are read from the shapes; hyper-parameters that
no weight stores (``alpha``, ``output``, ``confidence``, …) take the documented defaults unless a
config gives them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union, cast

import torch
from torch import nn

from .errors import CheckpointError
from .building import _UNSTORED, _build, _check_required_keys, _load_into
from .config import (CONFIG_NAMES, _config_for, _resolve_config, check_config_sizes, find_config,
                     read_config)
from .detection import (ArchitectureMatch, RecurrentModuleKeys, _find_readout, detect_architecture,
                        find_recurrent_modules)
from .custom import adapt_custom_module
from .factory import build_from_factory, check_custom_module
from .formats import read_payload
from .layout import (METADATA_KEYS, STATE_DICT_KEYS, _key_list, _normalize_prefix,
                     _sub_state_dict, check_finite, read_stored_index, unwrap_payload)
from .models import ARCHITECTURES, RecurrentModel, TorchRNN
from .names import CHECKPOINT_SUFFIXES, CheckpointName, parse_checkpoint_name

__all__ = [
    "Checkpoint", "CheckpointName", "RecurrentModuleKeys", "ArchitectureMatch",
    "CHECKPOINT_SUFFIXES", "STATE_DICT_KEYS", "METADATA_KEYS", "CONFIG_NAMES",
    "read_payload", "unwrap_payload", "find_recurrent_modules", "detect_architecture",
    "find_config", "read_config", "check_finite", "check_config_sizes", "parse_checkpoint_name",
    "read_stored_index",
    "load_checkpoint",
]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """One loaded checkpoint.

    Attributes
    ----------
    path : str
    epoch : int or None
        From the file name (``series`` order) or, failing that, stored ``epoch``/``step`` keys.
    step : int or None
    architecture : str
        Registry name, or ``"custom"`` for factory / trusted-pickle modules.
    model : torch.nn.Module
        Ready to analyze (``fixedpoints.from_module(checkpoint.model)``), in ``dtype``.
    state_dict : dict of str to torch.Tensor
        The state dict found in the file (full keys, before any prefix is stripped).
    prefix : str
        Key prefix of the model inside ``state_dict``.
    config : dict
        Constructor keyword arguments of a built-in model (empty for custom ones).
    metadata : dict
        Other numbers stored in the file (``epoch``, ``global_step``, ``loss``, …).
    numbered : bool
        False when neither the name nor the file gives an epoch or step.
    notes : tuple of str
        Things worth knowing about how the model was rebuilt (defaults used, readout
        substituted, …).
    convention : {"row", "column"} or None
        Leaky models: whether the recurrent matrix acts on row vectors (``r @ M``, the ghost
        paper's code, :class:`~checkpoints.paper_model.PaperRNN`) or column vectors (``W r``).
    convention_reason : str
        Why (the weights' shapes, a config key, an argument, or the default).
    """

    path: str
    epoch: Optional[int]
    step: Optional[int]
    architecture: str
    model: nn.Module
    state_dict: Dict[str, torch.Tensor]
    prefix: str = ""
    config: Dict[str, Any] = field(default_factory=dict)
    metadata: Dict[str, Any] = field(default_factory=dict)
    numbered: bool = True
    notes: Tuple[str, ...] = ()
    convention: Optional[str] = None
    convention_reason: str = ""

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Shapes of the model's state-dict entries, ``{key: shape}``."""
        return {k: tuple(v.shape) for k, v in self.model.state_dict().items()}


def load_checkpoint(path: Union[str, os.PathLike], architecture: Optional[str] = None,
                    prefix: Optional[str] = None, trust_pickle: bool = False, config=None,
                    model_factory=None, dtype: torch.dtype = torch.float64,
                    epoch: Optional[int] = None, step: Optional[int] = None,
                    convention: Optional[str] = None) -> Checkpoint:
    """Load one checkpoint file into a ready-to-analyze model.

    Parameters
    ----------
    path : str or PathLike
    architecture : str, optional
        Registry name (see ``checkpoints.ARCHITECTURES``); overrides config files and detection.
    prefix : str, optional
        Key prefix of the model inside the state dict (e.g. ``"model.rnn"``), to choose among
        several recurrent modules.
    trust_pickle : bool, default False
        Allow whole pickled objects (runs code from the file: trusted files only).
    config : dict, str, None or False
        Model config: a dict, a JSON path, None to look for ``config.json`` / ``model.json``
        beside the file, False to ignore config files.
    model_factory : str or callable, optional
        ``"pkg.module:build"`` / ``"file.py:build"`` building a custom module.
    dtype : torch.dtype, default torch.float64
        The model is converted to this dtype (float32 weights convert exactly).
    epoch, step : int, optional
        Override the epoch/step (a series passes the ones parsed from the file name).
    convention : {"row", "column"}, optional
        Leaky models whose weights cannot tell (a full-rank ``W_rec``): ``"row"`` for code that
        computes ``r @ W_rec`` on row vectors (the ghost paper's scripts), ``"column"`` for
        ``W_rec @ r``. Overrides a ``"convention"`` key in the config; column when neither
        says (see :func:`~checkpoints.detection.detect_architecture`).

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        Anything wrong with the file; the message names the file, the reason and the fix.
    """
    path = os.fspath(path)
    payload = read_payload(path, trust_pickle=trust_pickle)
    state_dict, metadata, module = unwrap_payload(payload, path)
    notes: List[str] = []
    if epoch is None and step is None:
        name = parse_checkpoint_name(path)
        epoch, step = name.epoch, name.step
        if epoch is None and step is None:
            epoch = name.number
        if epoch is None and step is None:
            epoch, step = read_stored_index(metadata)
    numbered = epoch is not None or step is not None
    pre = _normalize_prefix(prefix) or ""

    if model_factory is not None:
        sub = _sub_state_dict(state_dict, pre)
        if not sub:
            raise CheckpointError(path, f"no keys under prefix {pre!r}; keys seen: "
                                  f"{_key_list(state_dict)}", "fix prefix=")
        check_finite(sub, path)
        model = build_from_factory(model_factory, sub, path)
        return Checkpoint(path, epoch, step, "custom", model.to(dtype), state_dict, pre, {},
                          metadata, numbered, tuple(notes))

    if module is not None and (isinstance(module, RecurrentModel) or (
            prefix is None and architecture is None
            and (callable(getattr(module, "step", None))
                 or callable(getattr(module, "velocity", None))
                 or isinstance(module, (nn.RNN, nn.GRU, nn.LSTM))))):
        check_finite(state_dict, path)
        model = check_custom_module(module, path)
        if not isinstance(model, RecurrentModel):
            model = adapt_custom_module(model, state_dict, path)
        arch = getattr(model, "architecture", None) if isinstance(model, RecurrentModel) else None
        own_config = model.config() if isinstance(model, RecurrentModel) else {}
        notes.append("loaded a whole pickled module (trust_pickle=True)")
        return Checkpoint(path, epoch, step, arch or "custom", model.to(dtype), state_dict, "",
                          own_config, metadata, numbered, tuple(notes))

    cfg = _resolve_config(config, path)
    wanted = architecture or (cfg or {}).get("architecture")
    if wanted is not None and wanted not in ARCHITECTURES:
        source = "architecture=" if architecture else f"config {(cfg or {}).get('path')}"
        raise CheckpointError(path, f"unknown architecture {wanted!r} (from {source})",
                              f"use one of {sorted(ARCHITECTURES)} or a model factory")
    source = "convention="
    if convention is None and cfg is not None and cfg.get("convention") is not None:
        convention, source = cfg["convention"], f"config {cfg.get('path') or '(given)'}"
    match = detect_architecture(state_dict, architecture=wanted, prefix=prefix, path=path,
                                convention=convention, convention_source=source)
    arch = match.architecture  # for the leaky family the keys decide full vs low rank
    kwargs = _config_for(arch, match.config, cfg, path, notes)
    if cfg is None and arch in _UNSTORED:
        notes.append(f"no config.json: {arch} hyper-parameters that no weight stores use their "
                     f"defaults ({_UNSTORED[arch]})")
    if architecture is not None and cfg is not None \
            and cfg.get("architecture") not in (None, architecture):
        notes.append(f"architecture={architecture!r} overrides {cfg.get('architecture')!r} from "
                     f"{cfg.get('path')}")
    _check_required_keys(arch, kwargs, state_dict, match, path)
    check_config_sizes(match.config, kwargs, state_dict, path, (cfg or {}).get("path"))
    cfg_path = None if cfg is None else (cfg.get("path") or "the config given")
    model = _build(arch, kwargs, path, f"{cfg_path} and the weights' shapes" if cfg else
                   "the weights' shapes", cfg_path)
    model = model.to(dtype)
    if match.rnn is not None:
        sub = {f"rnn.{k[len(match.prefix):]}": state_dict[k] for k in state_dict
               if k.startswith(match.prefix)}
        readout = _find_readout(state_dict, match.rnn)
        if readout is not None and readout[0] in state_dict:
            sub["readout_layer.weight"] = state_dict[readout[0]]
            if readout[1] is not None:
                sub["readout_layer.bias"] = state_dict[readout[1]]
            elif (isinstance(model.readout_layer, nn.Linear)
                  and model.readout_layer.bias is not None):
                sub["readout_layer.bias"] = torch.zeros(model.n_outputs)
            if not readout[0].endswith("readout_layer.weight"):
                notes.append(f"readout taken from {readout[0]}")
        else:
            hidden = cast(TorchRNN, model).hidden_size  # a torch RNN match builds a TorchRNN
            if model.n_outputs != hidden:
                raise CheckpointError(path, f"config asks for n_outputs={model.n_outputs} but no "
                                      f"readout of shape ({model.n_outputs}, {hidden}) was found "
                                      "next to the RNN", "drop n_outputs from the config")
            sub["readout_layer.weight"] = torch.eye(hidden)
            sub["readout_layer.bias"] = torch.zeros(hidden)
            notes.append("no linear readout found next to the RNN: readout() returns the last "
                         "layer's h")
        check_finite(sub, path)
        _load_into(model, sub, path, f"a {arch} with {kwargs}", match.prefix, cfg_path)
    else:
        sub = _sub_state_dict(state_dict, match.prefix)
        check_finite(sub, path)
        _load_into(model, sub, path, f"{arch} with {kwargs}", match.prefix, cfg_path)
    if match.prefix:
        used = set(_find_readout(state_dict, match.rnn) or ()) if match.rnn is not None else set()
        outside = [k for k in state_dict if not k.startswith(match.prefix) and k not in used]
        if outside:
            notes.append(f"{len(outside)} key(s) outside prefix {match.prefix!r} were not used")
    return Checkpoint(path, epoch, step, arch, model, state_dict, match.prefix,
                      model.config(), metadata, numbered, tuple(notes), match.convention,
                      match.convention_reason)

