"""Where the state dict sits inside a payload, its metadata, and checks on its values."""
from __future__ import annotations

import logging
import math
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .errors import CheckpointError, NotACheckpointError

__all__ = ["STATE_DICT_KEYS", "METADATA_KEYS", "HISTORY_KEYS", "unwrap_payload",
           "read_stored_index", "check_finite", "non_checkpoint_reason", "histories_reason"]

logger = logging.getLogger("checkpoints.loading")

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
METADATA_KEYS = ("epoch", "step", "global_step")


def _is_tensor_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and any(
        isinstance(v, torch.Tensor) for v in obj.values())


def _scalar(value) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return value.reshape(()).item()
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return value.reshape(()).item()
    return None


def unwrap_payload(payload: Any, path: Optional[str] = None
                   ) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any], Optional[nn.Module]]:
    """Find the state dict inside a loaded payload.

    Parameters
    ----------
    payload : object
        What :func:`read_payload` returned.
    path : str, optional
        For error messages.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
    metadata : dict
        Numeric / string top-level entries (``epoch``, ``step``, ``global_step``, ``loss``, …).
    module : torch.nn.Module or None
        The pickled module itself when the payload is one (trusted loads only).

    Raises
    ------
    CheckpointError
        No state dict anywhere, or a state dict whose values are not tensors.
    """
    module = None
    metadata: Dict[str, Any] = {}
    current = payload
    for _ in range(4):
        if isinstance(current, nn.Module):
            module = current
            current = current.state_dict()
            break
        if not isinstance(current, Mapping):
            break
        for key, value in current.items():
            if not isinstance(key, str) or key in metadata:
                continue
            if isinstance(value, str):
                metadata[key] = value
            elif isinstance(value, (torch.Tensor, np.ndarray)):
                if key in METADATA_KEYS and _scalar(value) is not None:
                    metadata[key] = _scalar(value)
            elif _scalar(value) is not None:
                metadata[key] = _scalar(value)
        nested = next((current[k] for k in STATE_DICT_KEYS if k in current
                       and (isinstance(current[k], (Mapping, nn.Module)))), None)
        if nested is None:
            break
        if isinstance(nested, Mapping) and not nested:
            break
        current = nested
    if not _is_tensor_dict(current):
        other = non_checkpoint_reason(payload)
        if other is not None:
            raise NotACheckpointError(path, f"holds {other}", "nothing to fix: a series skips "
                                      "it; point at model checkpoints to load a model")
        what = type(payload).__name__
        keys = list(payload.keys())[:20] if isinstance(payload, Mapping) else None
        raise CheckpointError(path, f"holds a {what}{' with keys ' + str(keys) if keys else ''} "
                              "and no state dict (a mapping from names to tensors) at the top "
                              f"level or under {list(STATE_DICT_KEYS)}",
                              "save model.state_dict(), or a dict with it under 'state_dict'")
    state_dict: Dict[str, torch.Tensor] = {}
    skipped = []
    for key, value in current.items():
        if not isinstance(key, str):
            raise CheckpointError(path, f"state dict has a non-string key {key!r}",
                                  "save a state dict whose keys are parameter names")
        if isinstance(value, torch.Tensor):
            state_dict[key] = value
        else:
            skipped.append(key)
    if skipped:
        logger.info("%s: ignoring non-tensor state-dict entries %s", path, skipped[:10])
    for key in METADATA_KEYS:
        value = state_dict.get(key)
        if value is not None and value.numel() == 1 and not value.is_floating_point():
            metadata.setdefault(key, state_dict.pop(key).reshape(()).tolist())
    return state_dict, metadata, module


def _normalize_prefix(prefix: Optional[str]) -> Optional[str]:
    if prefix is None:
        return None
    prefix = prefix.strip()
    return prefix if prefix == "" or prefix.endswith(".") else prefix + "."


def _key_list(state_dict, limit: int = 20) -> str:
    items = [f"{k} {tuple(v.shape)}" for k, v in list(state_dict.items())[:limit]]
    more = len(state_dict) - limit
    return "[" + ", ".join(items) + (f", … {more} more" if more > 0 else "") + "]"


def check_finite(state_dict: Mapping[str, torch.Tensor], path: Optional[str] = None) -> None:
    """Raise CheckpointError naming the first floating tensor with NaN or inf entries."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                n_nan = int(torch.isnan(tensor).sum())
                n_inf = int(finite.numel() - finite.sum()) - n_nan
                raise CheckpointError(path, f"key {key!r} has {n_nan} NaN and {n_inf} inf "
                                      f"value(s) out of {tensor.numel()}",
                                      "training diverged before this checkpoint: analyze earlier "
                                      "epochs, or lower the learning rate / clip gradients")


def _as_int(value) -> Optional[int]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return None


def read_stored_index(metadata: Mapping[str, Any]) -> Tuple[Optional[int], Optional[int]]:
    """``(epoch, step)`` from stored keys ``epoch`` and ``step`` / ``global_step``."""
    epoch = _as_int(metadata.get("epoch"))
    step = _as_int(metadata.get("step"))
    if step is None:
        step = _as_int(metadata.get("global_step"))
    return epoch, step


def _sub_state_dict(state_dict, prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


# Arrays a training-history file holds besides ``*_history`` ones.
HISTORY_KEYS = ("epochs", "epoch", "steps", "step", "loss", "accuracy")


def histories_reason(keys) -> Optional[str]:
    """Why an ``.npz`` with these array names is a training log, not weights (or None).

    True when some name ends in ``_history`` and every other one is in :data:`HISTORY_KEYS`
    (the ghost paper's ``final.npz``: ``loss_history``, ``grad_history``, ``accuracy_history``).
    """
    keys = [str(k) for k in keys]
    if keys and any(k.endswith("_history") for k in keys) and all(
            k.endswith("_history") or k in HISTORY_KEYS for k in keys):
        return f"training histories ({', '.join(sorted(keys)[:6])}), not model weights"
    return None


def non_checkpoint_reason(payload: Any) -> Optional[str]:
    """Why a loaded payload holds no model by design (an optimizer state), or None."""
    if isinstance(payload, Mapping):
        keys = {k for k in payload if isinstance(k, str)}
        if {"state", "param_groups"} <= keys and not keys & set(STATE_DICT_KEYS):
            return "an optimizer state (state, param_groups), not model weights"
        only = {k: v for k, v in payload.items() if k != "state_dict"}
        inner = payload.get("state_dict")
        if isinstance(inner, Mapping) and not only and inner:
            return histories_reason(inner.keys())
    return None
