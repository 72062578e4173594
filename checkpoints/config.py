"""Model config files (config.json / model.json) and merging them with what the weights say."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Union


from .errors import CheckpointError
from .detection import _FAMILY_OF
from .models import ARCHITECTURES, TORCH_CELLS

__all__ = ["CONFIG_NAMES", "SIZE_KEYS", "check_config_sizes", "find_config", "read_config"]

CONFIG_NAMES = ("config.json", "model.json")


def find_config(directory: Union[str, os.PathLike]) -> Optional[str]:
    """Path of ``config.json`` (else ``model.json``) in ``directory``, or None."""
    for name in CONFIG_NAMES:
        candidate = os.path.join(os.fspath(directory), name)
        if os.path.isfile(candidate):
            return candidate
    return None


def read_config(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a model config JSON file.

    Two forms are accepted: the trainer's ``{"architecture": name, "model": {kwargs}, ...}``
    and a flat ``{"architecture": name, **kwargs}``.

    A ``"convention": "row" | "column"`` entry (top level or in ``model``) says whether a leaky
    model's recurrent matrix acts on row vectors (``r @ M``, the ghost paper's code) or on
    column vectors (``W r``), where the weights cannot tell.

    Returns
    -------
    dict
        ``{"architecture": str or None, "model": dict, "flat": bool, "path": str,
        "convention": str or None}``.

    Raises
    ------
    CheckpointError
        Unreadable or invalid JSON, not an object, or a non-string architecture.
    """
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"cannot read the model config ({type(exc).__name__}: {exc})",
                              "fix or delete the JSON file") from exc
    return _normalize_config(data, path)


def _normalize_config(data, path: Optional[str]) -> Dict[str, Any]:
    """``{"architecture", "model", "flat", "path", "convention"}`` of a config's JSON object."""
    if not isinstance(data, Mapping):
        raise CheckpointError(path, f"model config is a {type(data).__name__}, not a JSON object",
                              'write {"architecture": name, "model": {constructor kwargs}}')
    architecture = data.get("architecture")
    if architecture is not None and not isinstance(architecture, str):
        raise CheckpointError(path, f"config 'architecture' is {architecture!r}, not a string",
                              f"use one of {sorted(ARCHITECTURES)}")
    if isinstance(data.get("model"), Mapping):
        model = dict(data["model"])
        convention = model.pop("convention", data.get("convention"))
        return {"architecture": architecture, "model": model, "flat": False, "path": path,
                "convention": convention}
    model = {k: v for k, v in data.items()
             if k not in ("architecture", "task", "training", "convention")}
    return {"architecture": architecture, "model": model, "flat": True, "path": path,
            "convention": data.get("convention")}


def _resolve_config(config, file_path: str) -> Optional[Dict[str, Any]]:
    if config is False:
        return None
    if config is None:
        found = find_config(os.path.dirname(os.path.abspath(file_path)))
        return read_config(found) if found else None
    if isinstance(config, (str, os.PathLike)):
        return read_config(config)
    if isinstance(config, Mapping):
        if "flat" in config and "model" in config and "path" in config:
            return dict(config)
        return _normalize_config(config, None)
    raise CheckpointError(file_path, f"config={config!r} is not a dict, a JSON path, None or False",
                          "pass a dict like {'architecture': ..., 'model': {...}} or a path")


def _config_for(architecture: str, inferred: Dict[str, Any], cfg: Optional[Dict[str, Any]],
                path: str, notes: List[str]) -> Dict[str, Any]:
    kwargs = dict(inferred)
    if cfg is None:
        return kwargs
    cfg_arch = cfg.get("architecture")
    if cfg_arch is not None and _FAMILY_OF.get(cfg_arch) != _FAMILY_OF.get(architecture):
        notes.append(f"config {cfg.get('path')} describes {cfg_arch!r}, not {architecture!r}; "
                     "its model arguments were not used")
        return kwargs
    given = dict(cfg["model"])
    if cfg_arch in TORCH_CELLS or architecture in TORCH_CELLS:
        if "n_states" in given and "hidden_size" not in given:
            given["hidden_size"] = given.pop("n_states")
    if cfg["flat"] or (cfg_arch is not None and ARCHITECTURES.get(cfg_arch)
                       is not ARCHITECTURES[architecture]):
        import inspect
        accepted = set(inspect.signature(ARCHITECTURES[architecture]).parameters)
        ignored = sorted(set(given) - accepted)
        if ignored:
            notes.append(f"config {cfg.get('path')}: ignored entries {ignored}")
        given = {k: v for k, v in given.items() if k in accepted}
    kwargs.update(given)
    return kwargs


#: Model arguments that are sizes: they must come from the weights, never only from a config.
SIZE_KEYS = ("n_states", "hidden_size", "n_inputs", "n_outputs", "rank", "num_layers")


def check_config_sizes(inferred: Mapping[str, Any], kwargs: Mapping[str, Any],
                       state_dict: Mapping[str, Any], path: Optional[str],
                       config_path: Optional[str] = None) -> None:
    """Refuse model sizes from a config that the weights contradict, before anything is built.

    Building the model from a config's sizes first and checking the weights after lets an
    edited ``"n_states": 20000`` beside 16-unit weights allocate gigabytes (or abort the process
    on an impossible allocation) before the mismatch is found; this check costs nothing.

    Parameters
    ----------
    inferred : mapping
        Sizes read from the weights' shapes (``n_states``, ``n_inputs``, ...).
    kwargs : mapping
        The model arguments about to be used (config entries over the inferred ones).
    state_dict : mapping of str to torch.Tensor
        The file's tensors: a size no weight has a dimension of cannot fit them.
    path : str, optional
        The checkpoint file (for the message).
    config_path : str, optional
        The config file the sizes came from.

    Raises
    ------
    CheckpointError
        A size that differs from the weights' or exceeds every dimension of the file's tensors.
    """
    where = f"config {config_path}" if config_path else "the model arguments"
    fix = (f"correct or delete that entry in {config_path or 'the arguments'} (sizes are read "
           f"from the weights' shapes)")
    for key in SIZE_KEYS:
        value = kwargs.get(key)
        if value is None or isinstance(value, bool):
            continue
        if key in inferred and inferred[key] is not None and value != inferred[key]:
            raise CheckpointError(path, f"{where} gives {key}={value!r} but the weights in the "
                                  f"file have {key}={inferred[key]}", fix)
    largest = max((int(d) for t in state_dict.values() if hasattr(t, "shape")
                   for d in t.shape), default=0)
    for key in SIZE_KEYS:
        value = kwargs.get(key)
        if key in inferred or value is None or isinstance(value, bool):
            continue
        if not isinstance(value, int) or value < 0 or value > max(largest, 1):
            raise CheckpointError(path, f"{where} gives {key}={value!r}, which no weight in the "
                                  f"file has (the largest dimension is {largest})", fix)
