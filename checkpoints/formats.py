"""Safe readers of the checkpoint file formats (.pt .pth .ckpt .bin, .safetensors, .npz)."""
from __future__ import annotations

import io
import os
import pickletools
import re
import warnings
import zipfile
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from .errors import CheckpointError, NotACheckpointError
from .layout import METADATA_KEYS, histories_reason, non_checkpoint_reason
from .names import CHECKPOINT_SUFFIXES

__all__ = ["read_payload", "peek_non_checkpoint"]

_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_PICKLE_FIX = ("re-save the weights as a plain state dict (torch.save(model.state_dict(), path)) "
               "or as .safetensors; only if you trust where the file came from, pass "
               "trust_pickle=True (--trust-pickle), which runs the file's pickled code")


def _check_file(path: str) -> None:
    if os.path.islink(path) and not os.path.exists(path):
        raise CheckpointError(path, f"is a symbolic link to {os.readlink(path)!r}, which does "
                              "not exist", "fix the link or delete it")
    if not os.path.exists(path):
        raise CheckpointError(path, "file does not exist", "check the path")
    if not os.path.isfile(path):
        raise CheckpointError(path, "is not a regular file",
                              "pass a checkpoint file (for a directory use "
                              "CheckpointSeries.from_dir)")
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
    except Exception:  # noqa: BLE001 - private torch API; any failure: it moved  # pragma: no cover
        allowed = set()
    try:
        allowed |= {f"{g.__module__}.{g.__qualname__}" for g in
                    torch.serialization.get_safe_globals()
                    if not isinstance(g, tuple) and hasattr(g, "__qualname__")}
    except Exception:  # noqa: BLE001 - older torch without the list  # pragma: no cover
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
    except Exception:  # noqa: BLE001 - a zip too broken to list: no pickle to inspect
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
            except Exception:  # noqa: BLE001 - bytes past the last pickle: stop
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
    histories = histories_reason(result.keys())
    if histories is not None:
        raise NotACheckpointError(path, f"holds {histories}", "nothing to fix: a series skips "
                                  "it; read it as a training log (log=, --log)")
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


def peek_non_checkpoint(path: Union[str, os.PathLike], trust_pickle: bool = False
                        ) -> Optional[str]:
    """Why the file at ``path`` holds no model by design, or None (cheap: an ``.npz`` is only
    listed; a torch file is read only when its name says optimizer)."""
    path = os.fspath(path)
    name = os.path.basename(path).lower()
    try:
        if name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                return histories_reason(archive.files)
        if "optim" in name and name.endswith(_TORCH_SUFFIXES):
            return non_checkpoint_reason(read_payload(path, trust_pickle=trust_pickle))
    except Exception:  # noqa: BLE001 - unreadable here: loading it reports the real problem
        return None
    return None
