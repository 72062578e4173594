"""Safe reading of one checkpoint file and turning it into a model.

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

import io
import json
import logging
import math
import os
import pickletools
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .errors import CheckpointError
from .factory import build_from_factory, check_custom_module
from .models import ARCHITECTURES, TORCH_CELLS, RecurrentModel, build_model

__all__ = [
    "Checkpoint", "CheckpointName", "RecurrentModuleKeys", "ArchitectureMatch",
    "CHECKPOINT_SUFFIXES", "STATE_DICT_KEYS", "METADATA_KEYS", "CONFIG_NAMES",
    "read_payload", "unwrap_payload", "find_recurrent_modules", "detect_architecture",
    "find_config", "read_config", "check_finite", "check_config_sizes", "parse_checkpoint_name",
    "read_stored_index",
    "load_checkpoint",
]

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npz")
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
METADATA_KEYS = ("epoch", "step", "global_step")
CONFIG_NAMES = ("config.json", "model.json")
_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_PICKLE_FIX = ("re-save the weights as a plain state dict (torch.save(model.state_dict(), path)) "
               "or as .safetensors; only if you trust where the file came from, pass "
               "trust_pickle=True (--trust-pickle), which runs the file's pickled code")
_ARCH_FIX = ("pass architecture= (one of {archs}), put a config.json with "
             "{{\"architecture\": ..., \"model\": {{...}}}} beside the file, or give a model "
             "factory ('pkg.module:build' or 'file.py:build')")


def _arch_fix() -> str:
    return _ARCH_FIX.format(archs=sorted(ARCHITECTURES))


# --------------------------------------------------------------------------- names
@dataclass(frozen=True)
class CheckpointName:
    """Epoch and step parsed from a checkpoint's file name.

    ``epoch`` comes from ``epoch12`` / ``epoch_12`` / ``epoch=12`` / ``epoch-12``; ``step`` from
    ``step``, ``global_step``, ``iter`` or ``iteration`` followed by a number; a file with
    neither but some other number (``ckpt_000100.pt``) gets that last number as ``number``.
    """

    epoch: Optional[int] = None
    step: Optional[int] = None
    number: Optional[int] = None

    @property
    def numbered(self) -> bool:
        return self.epoch is not None or self.step is not None or self.number is not None


_EPOCH_RE = re.compile(r"epoch[s]?[=_\-]?(\d+)", re.IGNORECASE)
_STEP_RE = re.compile(r"(?:global_step|step|iteration|iter)[s]?[=_\-]?(\d+)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"(\d+)")


def _stem(name: str) -> str:
    base = os.path.basename(name)
    for suffix in CHECKPOINT_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return os.path.splitext(base)[0]


def parse_checkpoint_name(name: str) -> CheckpointName:
    """Parse epoch / step / bare number from a file name (natural numbers, never lexicographic).

    Examples
    --------
    >>> parse_checkpoint_name("model_epoch12.pt").epoch
    12
    >>> parse_checkpoint_name("epoch=3-step=1200.ckpt")
    CheckpointName(epoch=3, step=1200, number=None)
    >>> parse_checkpoint_name("ckpt_000100.pt").number
    100
    """
    stem = _stem(name)
    epoch = _EPOCH_RE.search(stem)
    step = _STEP_RE.search(stem)
    if epoch or step:
        return CheckpointName(epoch=int(epoch.group(1)) if epoch else None,
                              step=int(step.group(1)) if step else None)
    numbers = _NUMBER_RE.findall(stem)
    return CheckpointName(number=int(numbers[-1]) if numbers else None)


# --------------------------------------------------------------------------- reading
def _check_file(path: str) -> None:
    if os.path.islink(path) and not os.path.exists(path):
        raise CheckpointError(path, f"is a symbolic link to {os.readlink(path)!r}, which does "
                              "not exist", "fix the link or delete it")
    if not os.path.exists(path):
        raise CheckpointError(path, "file does not exist", "check the path")
    if not os.path.isfile(path):
        raise CheckpointError(path, "is not a regular file",
                              "pass a checkpoint file (for a directory use CheckpointSeries.from_dir)")
    if os.path.getsize(path) == 0:
        raise CheckpointError(path, "file is empty (0 bytes)",
                              "the save was probably interrupted: re-save it or delete it")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:  # permission denied, an I/O error: not a corrupt file
        raise CheckpointError(path, f"cannot be opened ({exc.strerror or exc})",
                              "give this user read permission (chmod u+r) or check the disk"
                              ) from None


def _corrupt(path: str, exc: BaseException, what: str) -> CheckpointError:
    message = str(exc)
    inner = re.search(r"WeightsUnpickler error:(.*?)(?:Check the documentation|$)", message, re.S)
    if inner:  # drop torch's advice to retry with weights_only=False: the file is just corrupt
        message = "not a valid pickle:" + inner.group(1)
    detail = " ".join(f"{type(exc).__name__}: {message}".split())
    return CheckpointError(path, f"cannot be read as {what} ({detail[:300]}); the file is "
                           "truncated, corrupt or not a checkpoint",
                           "re-save or re-download it, or delete it (a series skips it)")


def read_payload(path: Union[str, os.PathLike], trust_pickle: bool = False) -> Any:
    """Read a checkpoint file safely and return what it holds.

    Parameters
    ----------
    path : str or PathLike
        ``.pt``, ``.pth``, ``.ckpt``, ``.bin``, ``.safetensors`` or ``.npz``.
    trust_pickle : bool, default False
        Allow arbitrary pickled objects in torch files (runs code from the file).

    Returns
    -------
    object
        torch files: whatever was saved (dicts, tensors, …; modules only when trusted);
        ``.safetensors``: ``{"state_dict": {...}, **metadata}``; ``.npz``: a dict of tensors
        and metadata numbers.

    Raises
    ------
    CheckpointError
        Missing, empty, truncated or corrupt file, unknown suffix, pickled objects refused.
    """
    path = os.fspath(path)
    _check_file(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _TORCH_SUFFIXES:
        return _read_torch(path, trust_pickle)
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix == ".npz":
        return _read_npz(path)
    raise CheckpointError(path, f"unknown checkpoint suffix {suffix!r}",
                          f"use one of {list(CHECKPOINT_SUFFIXES)}")


def _read_torch(path: str, trust_pickle: bool) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # torch raises many types on corrupt input; all become one error
        if not trust_pickle:
            unsafe = _unsafe_globals(path)
            if unsafe:
                raise CheckpointError(path, "holds pickled Python objects that a safe load "
                                      f"refuses (it refers to {', '.join(unsafe[:5])}); a full "
                                      "unpickle could run code from the file", _PICKLE_FIX) from exc
        raise _corrupt(path, exc, "a torch checkpoint") from exc


def _allowed_globals() -> set:
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed = set(_get_allowed_globals())
    except Exception:  # pragma: no cover - private torch API moved
        allowed = set()
    try:
        allowed |= {f"{g.__module__}.{g.__qualname__}" for g in
                    torch.serialization.get_safe_globals() if hasattr(g, "__qualname__")}
    except Exception:  # pragma: no cover
        pass
    return allowed


def _pickle_streams(path: str) -> List[bytes]:
    """The pickle byte streams of a torch file: ``*/data.pkl`` of a zip, else the file itself."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return [archive.read(n) for n in archive.namelist() if n.endswith("data.pkl")]
        with open(path, "rb") as handle:
            return [handle.read()]
    except Exception:  # a zip too broken to list: no pickle to inspect
        return []


def _unsafe_globals(path: str) -> List[str]:
    """Names of Python objects a torch file's pickle imports, outside torch's safe list.

    The pickle is only parsed (``pickletools.genops``), never executed. Consecutive pickles
    (the legacy torch format) are scanned until the data stops being a pickle.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickletools warns on odd string escapes
        return _scan_globals(_pickle_streams(path), _allowed_globals())


def _scan_globals(streams: List[bytes], allowed: set) -> List[str]:
    found: List[str] = []
    for data in streams:
        stream = io.BytesIO(data)
        while stream.tell() < len(data):
            strings: List[str] = []
            start = stream.tell()
            try:
                for opcode, arg, _ in pickletools.genops(stream):
                    if opcode.name == "GLOBAL" and isinstance(arg, str):
                        name = arg.replace(" ", ".", 1)
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        name = f"{strings[-2]}.{strings[-1]}"
                    elif isinstance(arg, str):
                        strings.append(arg)
                        continue
                    else:
                        continue
                    if name not in allowed and not name.startswith("torch._utils._rebuild") \
                            and name not in found:
                        found.append(name)
            except Exception:
                break
            if stream.tell() == start:
                break
    return found


def _read_safetensors(path: str) -> Dict[str, Any]:
    try:
        from safetensors import safe_open
    except ImportError as exc:  # pragma: no cover - safetensors is a dependency
        raise CheckpointError(path, "the safetensors package is not installed",
                              "pip install safetensors") from exc
    try:
        tensors = {}
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except Exception as exc:
        raise _corrupt(path, exc, "a safetensors file") from exc
    payload: Dict[str, Any] = {"state_dict": tensors}
    for key, value in metadata.items():
        payload.setdefault(key, _parse_number(value))
    return payload


def _parse_number(value: str):
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return float(value)
        except (TypeError, ValueError):
            return value


def _read_npz(path: str) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                result[key] = archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise CheckpointError(path, "holds object arrays, which need pickle and are refused",
                                  "re-save it with numeric arrays only (np.savez(path, **{k: "
                                  "tensor.numpy()}))") from exc
        raise _corrupt(path, exc, "an .npz archive") from exc
    except Exception as exc:
        raise _corrupt(path, exc, "an .npz archive") from exc
    payload: Dict[str, Any] = {}
    tensors: Dict[str, torch.Tensor] = {}
    for key, array in result.items():
        if array.ndim == 0 and key in METADATA_KEYS + ("loss", "accuracy"):
            payload[key] = array.item()
        elif array.dtype.kind in "biuf":
            tensors[key] = torch.from_numpy(np.ascontiguousarray(array))
        elif array.dtype.kind in "US" and array.ndim == 0:
            payload[key] = str(array)
        else:
            raise CheckpointError(path, f"array {key!r} has dtype {array.dtype}, not a number type",
                                  "store weights as integer or floating arrays")
    payload["state_dict"] = tensors
    return payload


# --------------------------------------------------------------------------- unwrapping
def _is_tensor_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and any(
        isinstance(v, torch.Tensor) for v in obj.values())


def _scalar(value) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return value.reshape(()).tolist()
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return value.reshape(()).tolist()
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
        if key in state_dict and state_dict[key].numel() == 1 and not state_dict[key].is_floating_point():
            metadata.setdefault(key, state_dict.pop(key).reshape(()).tolist())
    return state_dict, metadata, module


# --------------------------------------------------------------------------- detection
_RNN_KEY_RE = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<kind>weight|bias)_(?P<which>ih|hh|hr)_l"
                         r"(?P<layer>\d+)(?P<reverse>_reverse)?$")


@dataclass(frozen=True)
class RecurrentModuleKeys:
    """A torch ``nn.RNN``/``nn.GRU``/``nn.LSTM`` found in a state dict by its key pattern.

    Attributes
    ----------
    prefix : str
        Key prefix of the module (``""`` or ending in ``"."``, e.g. ``"model.rnn."``).
    keys : tuple of str
        The module's keys (full names).
    cells : tuple of str
        Cell names consistent with the shapes: ``("gru",)``, ``("lstm",)`` or
        ``("rnn_tanh", "rnn_relu")`` (these two cannot be told apart from weights).
    input_size, hidden_size, num_layers : int
    bias, bidirectional : bool
    proj_size : int
    """

    prefix: str
    keys: Tuple[str, ...]
    cells: Tuple[str, ...]
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    bidirectional: bool
    proj_size: int


def _normalize_prefix(prefix: Optional[str]) -> Optional[str]:
    if prefix is None:
        return None
    prefix = prefix.strip()
    return prefix if prefix == "" or prefix.endswith(".") else prefix + "."


def find_recurrent_modules(state_dict: Mapping[str, torch.Tensor], prefix: Optional[str] = None,
                           path: Optional[str] = None) -> Dict[str, RecurrentModuleKeys]:
    """Find torch recurrent modules in a state dict by their key pattern.

    Keys ``{prefix}weight_ih_l{k}``, ``{prefix}weight_hh_l{k}`` (and biases) mark an
    ``nn.RNN``/``nn.GRU``/``nn.LSTM`` with layers ``k = 0 … L-1``.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
    prefix : str, optional
        Keep only the module under this prefix (with or without the trailing dot).
    path : str, optional
        For error messages.

    Returns
    -------
    dict of str to RecurrentModuleKeys
        Keyed by prefix.

    Raises
    ------
    CheckpointError
        A module whose layers or shapes do not make a torch RNN.
    """
    groups: Dict[str, List[str]] = {}
    for key in state_dict:
        match = _RNN_KEY_RE.match(key)
        if match:
            groups.setdefault(match.group("prefix"), []).append(key)
    wanted = _normalize_prefix(prefix)
    found = {}
    for pre, keys in groups.items():
        if wanted is not None and pre != wanted:
            continue
        if f"{pre}weight_hh_l0" not in state_dict or f"{pre}weight_ih_l0" not in state_dict:
            continue
        found[pre] = _describe_rnn(state_dict, pre, keys, path)
    return found


def _describe_rnn(state_dict, pre: str, keys: List[str], path) -> RecurrentModuleKeys:
    layers = sorted({int(_RNN_KEY_RE.match(k).group("layer")) for k in keys})
    if layers != list(range(len(layers))):
        raise CheckpointError(path, f"torch RNN under prefix {pre!r} has layers {layers}, not "
                              "0..L-1", "the checkpoint is missing layers: re-save the full model")
    w_ih, w_hh = state_dict[f"{pre}weight_ih_l0"], state_dict[f"{pre}weight_hh_l0"]
    if w_ih.dim() != 2 or w_hh.dim() != 2:
        raise CheckpointError(path, f"{pre}weight_ih_l0 has shape {tuple(w_ih.shape)} and "
                              f"{pre}weight_hh_l0 {tuple(w_hh.shape)}; torch RNN weights are 2-D",
                              "check the file was saved from an nn.RNN/GRU/LSTM")
    proj_size = 0
    if f"{pre}weight_hr_l0" in state_dict:
        proj_size = int(state_dict[f"{pre}weight_hr_l0"].shape[0])
    hidden = int(state_dict[f"{pre}weight_hr_l0"].shape[1]) if proj_size else int(w_hh.shape[1])
    rows = int(w_ih.shape[0])
    gates = rows // hidden if hidden and rows % hidden == 0 else None
    cells = {3: ("gru",), 4: ("lstm",), 1: ("rnn_tanh", "rnn_relu")}.get(gates)
    if cells is None:
        raise CheckpointError(path, f"{pre}weight_ih_l0 has {rows} rows for hidden size {hidden}: "
                              "not 1, 3 or 4 gates of an RNN, GRU or LSTM",
                              "check the file was saved from an nn.RNN/GRU/LSTM")
    return RecurrentModuleKeys(
        prefix=pre, keys=tuple(sorted(keys)), cells=cells, input_size=int(w_ih.shape[1]),
        hidden_size=hidden, num_layers=len(layers), bias=f"{pre}bias_ih_l0" in state_dict,
        bidirectional=any(k.endswith("_reverse") for k in keys), proj_size=proj_size)


# Identifying keys of each built-in family (relative to the model's prefix).
_FAMILY_KEYS = {
    "low_rank_rnn": ("W_in.weight", "S_l", "S_r"),
    "leaky_rnn": ("W_in.weight", "W_rec"),
    "xform_rnn": ("W_in.weight", "J"),
    "rank_one_rnn": ("m", "n"),
    "plrnn": ("A", "W", "h"),
}
_FAMILY_OF = {"leaky_rnn": "leaky", "low_rank_rnn": "leaky", "xform_rnn": "xform_rnn",
              "rank_one_rnn": "rank_one_rnn", "plrnn": "plrnn",
              **{cell: "torch" for cell in TORCH_CELLS}}


@dataclass(frozen=True)
class ArchitectureMatch:
    """A model recognized in a state dict.

    Attributes
    ----------
    architecture : str
        Registry name (a key of ``ARCHITECTURES``), or ``"torch"`` for a torch RNN whose cell
        type the weights leave open (``rnn_tanh`` vs ``rnn_relu``).
    prefix : str
        Key prefix of the model (``""`` or ending in ``"."``).
    config : dict
        Constructor keyword arguments read from the shapes.
    rnn : RecurrentModuleKeys or None
        For torch recurrent modules.
    """

    architecture: str
    prefix: str
    config: Dict[str, Any] = field(default_factory=dict)
    rnn: Optional[RecurrentModuleKeys] = None

    @property
    def family(self) -> str:
        return _FAMILY_OF.get(self.architecture, self.architecture)


def _shape(state_dict, key, ndim, path) -> Tuple[int, ...]:
    tensor = state_dict[key]
    if tensor.dim() != ndim:
        raise CheckpointError(path, f"key {key!r} has shape {tuple(tensor.shape)}, expected a "
                              f"{ndim}-D tensor", "check the file holds the model you think it does")
    return tuple(int(s) for s in tensor.shape)


def _builtin_match(state_dict, arch: str, pre: str, path) -> ArchitectureMatch:
    get = lambda key: f"{pre}{key}"  # noqa: E731
    cfg: Dict[str, Any] = {}
    if arch in ("leaky_rnn", "low_rank_rnn", "xform_rnn"):
        n_states, n_inputs = _shape(state_dict, get("W_in.weight"), 2, path)
        cfg.update(n_inputs=n_inputs, n_states=n_states)
        if get("W_out.weight") in state_dict:
            cfg["n_outputs"] = _shape(state_dict, get("W_out.weight"), 2, path)[0]
        if arch == "low_rank_rnn":
            cfg["rank"] = _shape(state_dict, get("S_l"), 2, path)[1]
    elif arch == "rank_one_rnn":
        cfg["n_states"] = _shape(state_dict, get("m"), 1, path)[0]
    elif arch == "plrnn":
        cfg["n_states"] = _shape(state_dict, get("A"), 1, path)[0]
        cfg["n_inputs"] = _shape(state_dict, get("C"), 2, path)[1] if get("C") in state_dict else 0
        if get("B") in state_dict:
            cfg["n_outputs"] = _shape(state_dict, get("B"), 2, path)[0]
    return ArchitectureMatch(arch, pre, cfg)


def _candidates(state_dict, path) -> List[ArchitectureMatch]:
    keys = set(state_dict)
    found: List[ArchitectureMatch] = []
    taken = set()
    for arch, ident in _FAMILY_KEYS.items():
        anchor = ident[-1]
        for key in keys:
            if key == anchor or key.endswith("." + anchor):
                pre = key[: len(key) - len(anchor)]
                if (pre, "leaky") in taken and arch == "leaky_rnn":
                    continue
                if all(f"{pre}{k}" in keys for k in ident):
                    found.append(_builtin_match(state_dict, arch, pre, path))
                    taken.add((pre, _FAMILY_OF[arch]))
    for pre, rnn in find_recurrent_modules(state_dict, path=path).items():
        # A TorchRNN saved by this package: rnn.* plus readout_layer.* under the parent prefix.
        found.append(ArchitectureMatch(rnn.cells[0] if len(rnn.cells) == 1 else "torch", pre,
                                       {}, rnn))
    return found


def detect_architecture(state_dict: Mapping[str, torch.Tensor], architecture: Optional[str] = None,
                        prefix: Optional[str] = None, path: Optional[str] = None
                        ) -> ArchitectureMatch:
    """Recognize the model in a state dict from its key names and shapes.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
    architecture : str, optional
        Restrict the search to this registry name's family (``leaky_rnn`` and ``low_rank_rnn``
        are one family; so are the torch cells).
    prefix : str, optional
        Restrict the search to models under this key prefix.
    path : str, optional
        For error messages.

    Returns
    -------
    ArchitectureMatch

    Raises
    ------
    CheckpointError
        Nothing recognized, or several candidates (the message lists the keys or prefixes
        seen and how to choose).
    """
    if architecture is not None and architecture not in ARCHITECTURES:
        raise CheckpointError(path, f"unknown architecture {architecture!r}",
                              f"use one of {sorted(ARCHITECTURES)} or a model factory")
    found = _candidates(state_dict, path)
    wanted = _normalize_prefix(prefix)
    if wanted is not None:
        found_all = found
        found = [c for c in found if c.prefix == wanted]
        if not found:
            seen = sorted({c.prefix for c in found_all})
            raise CheckpointError(path, f"no recognized model under prefix {wanted!r}"
                                  + (f"; models were found under prefixes {seen}" if seen else
                                     f"; keys seen: {_key_list(state_dict)}"),
                                  "pass one of the prefixes found, or check the key names")
    if architecture is not None:
        family = _FAMILY_OF[architecture]
        same = [c for c in found if c.family == family
                or (family == "torch" and c.architecture == "torch")]
        if not same:
            seen = [f"{c.architecture} at {c.prefix!r}" for c in found]
            raise CheckpointError(path, f"architecture {architecture!r} was requested but its keys "
                                  f"are not in the file ({'found ' + ', '.join(seen) if seen else 'keys seen: ' + _key_list(state_dict)})",
                                  f"check the architecture name; {architecture} needs keys like "
                                  f"{_expected_keys(architecture)}")
        found = same
    if not found:
        raise CheckpointError(path, "unknown architecture: no built-in model or torch RNN "
                              f"matches the keys seen: {_key_list(state_dict)}", _arch_fix())
    if len(found) > 1:
        listing = ", ".join(f"{c.architecture} under prefix {c.prefix!r}" for c in found)
        raise CheckpointError(path, f"ambiguous: several recurrent models in the file ({listing})",
                              "pass prefix= (--prefix) naming the one to analyze")
    match = found[0]
    if match.rnn is not None:
        match = _torch_match(match, architecture, state_dict, path)
    return match


def _torch_match(match: ArchitectureMatch, architecture, state_dict, path) -> ArchitectureMatch:
    rnn = match.rnn
    if rnn.bidirectional:
        raise CheckpointError(path, f"the torch RNN under prefix {rnn.prefix!r} is bidirectional "
                              "(keys *_reverse); it reads sequences backwards too and has no "
                              "forward-in-time dynamics", "analyze a unidirectional model")
    if rnn.proj_size:
        raise CheckpointError(path, f"the LSTM under prefix {rnn.prefix!r} has proj_size="
                              f"{rnn.proj_size} (keys weight_hr_l*); projected LSTMs are not "
                              "supported", "train with proj_size=0 or give a model factory")
    cell = architecture if architecture in TORCH_CELLS else None
    if cell is not None and cell not in rnn.cells:
        raise CheckpointError(path, f"architecture {cell!r} was requested but the weights under "
                              f"{rnn.prefix!r} have the shapes of {' or '.join(rnn.cells)}",
                              f"pass architecture={rnn.cells[0]!r}")
    if cell is None:
        if len(rnn.cells) > 1:
            raise CheckpointError(path, f"ambiguous: the plain RNN under prefix {rnn.prefix!r} "
                                  f"(keys {list(rnn.keys)[:6]}) may use tanh or relu; the weights "
                                  "do not say which", "pass architecture='rnn_tanh' or "
                                  "'rnn_relu', or write it in config.json")
        cell = rnn.cells[0]
    cfg = dict(n_inputs=rnn.input_size, hidden_size=rnn.hidden_size, cell=cell,
               num_layers=rnn.num_layers, bias=rnn.bias)
    readout = _find_readout(state_dict, rnn)
    cfg["n_outputs"] = int(state_dict[readout[0]].shape[0]) if readout else rnn.hidden_size
    return ArchitectureMatch(cell, rnn.prefix, cfg, rnn)


def _parent(prefix: str) -> str:
    if not prefix:
        return ""
    parts = prefix[:-1].split(".")
    return ".".join(parts[:-1]) + "." if len(parts) > 1 else ""


def _find_readout(state_dict, rnn: RecurrentModuleKeys) -> Optional[Tuple[str, Optional[str]]]:
    """The linear readout next to a torch RNN: ``readout_layer`` or the only fitting Linear."""
    parent = _parent(rnn.prefix)
    own = f"{parent}readout_layer.weight"
    if own in state_dict and state_dict[own].dim() == 2 and state_dict[own].shape[1] == rnn.hidden_size:
        bias = f"{parent}readout_layer.bias"
        return own, bias if bias in state_dict else None
    fits = []
    for key, tensor in state_dict.items():
        if not key.startswith(parent) or key.startswith(rnn.prefix) or not key.endswith(".weight"):
            continue
        name = key[len(parent): -len(".weight")]
        if "." in name or tensor.dim() != 2 or tensor.shape[1] != rnn.hidden_size:
            continue
        bias = f"{parent}{name}.bias"
        fits.append((key, bias if bias in state_dict else None))
    return fits[0] if len(fits) == 1 else None


def _key_list(state_dict, limit: int = 20) -> str:
    items = [f"{k} {tuple(v.shape)}" for k, v in list(state_dict.items())[:limit]]
    more = len(state_dict) - limit
    return "[" + ", ".join(items) + (f", … {more} more" if more > 0 else "") + "]"


def _expected_keys(architecture: str) -> List[str]:
    if architecture in TORCH_CELLS:
        return ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
                "readout_layer.weight", "readout_layer.bias"]
    cfg = {"rank_one_rnn": {}, "low_rank_rnn": dict(n_inputs=1, n_states=2, n_outputs=1, rank=1)}
    model = build_model(architecture, **cfg.get(architecture, dict(n_inputs=1, n_states=2,
                                                                     n_outputs=1)))
    return sorted(model.state_dict())


# --------------------------------------------------------------------------- config files
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

    Returns
    -------
    dict
        ``{"architecture": str or None, "model": dict, "flat": bool, "path": str}``.

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
    if not isinstance(data, Mapping):
        raise CheckpointError(path, f"model config is a {type(data).__name__}, not a JSON object",
                              'write {"architecture": name, "model": {constructor kwargs}}')
    architecture = data.get("architecture")
    if architecture is not None and not isinstance(architecture, str):
        raise CheckpointError(path, f"config 'architecture' is {architecture!r}, not a string",
                              f"use one of {sorted(ARCHITECTURES)}")
    if isinstance(data.get("model"), Mapping):
        return {"architecture": architecture, "model": dict(data["model"]), "flat": False,
                "path": path}
    model = {k: v for k, v in data.items() if k not in ("architecture", "task", "training")}
    return {"architecture": architecture, "model": model, "flat": True, "path": path}


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


# --------------------------------------------------------------------------- checks
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


# --------------------------------------------------------------------------- checkpoint
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

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Shapes of the model's state-dict entries, ``{key: shape}``."""
        return {k: tuple(v.shape) for k, v in self.model.state_dict().items()}


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


def _load_into(model: nn.Module, sub: Dict[str, torch.Tensor], path: str, what: str,
               prefix: str) -> None:
    own = set(model.state_dict())
    missing = sorted(own - set(sub))
    unexpected = sorted(set(sub) - own)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {[prefix + k for k in missing][:10]}")
        if unexpected:
            parts.append(f"unexpected keys {[prefix + k for k in unexpected][:10]}")
        raise CheckpointError(path, f"the state dict does not fit {what}: " + ", ".join(parts),
                              "check the architecture (architecture=, config.json) or pass "
                              "prefix= to select the model's keys; a truncated save lacks keys")
    try:
        model.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise CheckpointError(path, f"the weights do not fit {what}: {detail[:400]}",
                              "the sizes in config.json (or given) disagree with the file: fix "
                              "them or drop them so they are read from the shapes") from exc


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
    if cfg["flat"]:
        import inspect
        accepted = set(inspect.signature(ARCHITECTURES[architecture].__init__).parameters)
        ignored = sorted(set(given) - accepted)
        if ignored:
            notes.append(f"config {cfg.get('path')}: ignored entries {ignored}")
        given = {k: v for k, v in given.items() if k in accepted}
    kwargs.update(given)
    return kwargs


#: Model arguments that are sizes: they must come from the weights, never only from a config.
SIZE_KEYS = ("n_states", "hidden_size", "n_inputs", "n_outputs", "rank", "num_layers")


def check_config_sizes(inferred: Mapping[str, Any], kwargs: Mapping[str, Any],
                       state_dict: Mapping[str, torch.Tensor], path: Optional[str],
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


_UNSTORED = {
    "leaky_rnn": "alpha=0.5, output='linear'",
    "low_rank_rnn": "alpha=0.5, output='linear'",
    "xform_rnn": "alpha=0.5, output='linear'",
    "rank_one_rnn": "alpha=0.5, confidence=10.0, x0=-0.3",
}


def _check_required_keys(arch: str, kwargs, state_dict, match: ArchitectureMatch, path) -> None:
    """Report missing keys before a size that only they could give is found missing."""
    if match.rnn is not None:
        return
    expected = _expected_keys(arch if arch != "low_rank_rnn" or kwargs.get("rank") else "leaky_rnn")
    missing = [match.prefix + k for k in expected if match.prefix + k not in state_dict]
    if missing:
        raise CheckpointError(path, f"the state dict does not fit {arch}: missing keys {missing}",
                              "a truncated or partial save lacks keys: re-save the full "
                              "state dict, or check the architecture (architecture=, config.json)")


def _build(architecture: str, kwargs: Dict[str, Any], path: str, source: str) -> RecurrentModel:
    if architecture == "low_rank_rnn" and kwargs.get("rank") is None:
        architecture = "leaky_rnn"
    try:
        return build_model(architecture, **kwargs)
    except ValueError as exc:
        raise CheckpointError(path, f"{exc} (arguments from {source})",
                              "fix the model arguments in config.json or the call") from exc


def load_checkpoint(path: Union[str, os.PathLike], architecture: Optional[str] = None,
                    prefix: Optional[str] = None, trust_pickle: bool = False, config=None,
                    model_factory=None, dtype: torch.dtype = torch.float64,
                    epoch: Optional[int] = None, step: Optional[int] = None) -> Checkpoint:
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
            and (callable(getattr(module, "step", None)) or callable(getattr(module, "velocity", None))
                 or isinstance(module, (nn.RNN, nn.GRU, nn.LSTM))))):
        check_finite(state_dict, path)
        model = check_custom_module(module, path)
        arch = getattr(model, "architecture", None) if isinstance(model, RecurrentModel) else None
        cfg = model.config() if isinstance(model, RecurrentModel) else {}
        notes.append("loaded a whole pickled module (trust_pickle=True)")
        return Checkpoint(path, epoch, step, arch or "custom", model.to(dtype), state_dict, "",
                          cfg, metadata, numbered, tuple(notes))

    cfg = _resolve_config(config, path)
    wanted = architecture or (cfg or {}).get("architecture")
    if wanted is not None and wanted not in ARCHITECTURES:
        source = "architecture=" if architecture else f"config {cfg.get('path')}"
        raise CheckpointError(path, f"unknown architecture {wanted!r} (from {source})",
                              f"use one of {sorted(ARCHITECTURES)} or a model factory")
    match = detect_architecture(state_dict, architecture=wanted, prefix=prefix, path=path)
    arch = match.architecture  # for the leaky family the keys decide full vs low rank
    kwargs = _config_for(arch, match.config, cfg, path, notes)
    if cfg is None and arch in _UNSTORED:
        notes.append(f"no config.json: {arch} hyper-parameters that no weight stores use their "
                     f"defaults ({_UNSTORED[arch]})")
    if architecture is not None and cfg is not None and cfg.get("architecture") not in (None, architecture):
        notes.append(f"architecture={architecture!r} overrides {cfg.get('architecture')!r} from "
                     f"{cfg.get('path')}")
    _check_required_keys(arch, kwargs, state_dict, match, path)
    check_config_sizes(match.config, kwargs, state_dict, path, (cfg or {}).get("path"))
    model = _build(arch, kwargs, path, "config.json and the weights' shapes" if cfg else
                   "the weights' shapes")
    model = model.to(dtype)
    if match.rnn is not None:
        sub = {f"rnn.{k[len(match.prefix):]}": state_dict[k] for k in state_dict
               if k.startswith(match.prefix)}
        readout = _find_readout(state_dict, match.rnn)
        if readout is not None and readout[0] in state_dict:
            sub["readout_layer.weight"] = state_dict[readout[0]]
            if readout[1] is not None:
                sub["readout_layer.bias"] = state_dict[readout[1]]
            elif model.readout_layer.bias is not None:
                sub["readout_layer.bias"] = torch.zeros(model.n_outputs)
            if not readout[0].endswith("readout_layer.weight"):
                notes.append(f"readout taken from {readout[0]}")
        else:
            hidden = model.hidden_size
            if model.n_outputs != hidden:
                raise CheckpointError(path, f"config asks for n_outputs={model.n_outputs} but no "
                                      f"readout of shape ({model.n_outputs}, {hidden}) was found "
                                      "next to the RNN", "drop n_outputs from the config")
            sub["readout_layer.weight"] = torch.eye(hidden)
            sub["readout_layer.bias"] = torch.zeros(hidden)
            notes.append("no linear readout found next to the RNN: readout() returns the last "
                         "layer's h")
        check_finite(sub, path)
        _load_into(model, sub, path, f"a {arch} with {kwargs}", match.prefix)
    else:
        sub = _sub_state_dict(state_dict, match.prefix)
        check_finite(sub, path)
        _load_into(model, sub, path, f"{arch} with {kwargs}", match.prefix)
    if match.prefix:
        outside = [k for k in state_dict if not k.startswith(match.prefix)]
        if outside:
            notes.append(f"{len(outside)} key(s) outside prefix {match.prefix!r} were not used")
    return Checkpoint(path, epoch, step, arch, model, state_dict, match.prefix,
                      model.config(), metadata, numbered, tuple(notes))
