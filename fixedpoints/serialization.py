"""Writing results: the one JSON conversion rule and the one atomic-write scheme of ghostscope.

Every JSON file the project writes (a result's ``.json``, an epoch's ``epoch_XXXX.json``,
``summary.json``, ``events.json``, the CLI's ``--json`` output) goes through :func:`to_json`,
whose rule is:

==================================  ===========================================
value                               JSON
==================================  ===========================================
finite float (Python or numpy)      number
NaN, +inf, -inf                     ``null`` (strict JSON; readers turn a float
                                    field's ``null`` back into NaN)
complex (Python or numpy)           ``[real, imag]``, each part by the float rule
``enum.Enum`` member                its ``name``
numpy integer / bool                number / ``true``, ``false``
ndarray, tuple, list, set           list (elements converted)
dict                                object (keys as ``str``, values converted)
``os.PathLike``                     its path as a string
None, str, int, bool                as is
anything else                       ``str(value)``
==================================  ===========================================

(Result formats that must restore an enum's type store ``{"enum": ..., "name": ...}`` themselves
before calling :func:`to_json`.)

Every file is written to a temporary name in the same folder, then renamed with
:func:`os.replace`, so an interrupted write never leaves a half-written file under the final name.
The temporary name is ``.<name>.<pid>.tmp`` (:func:`temporary_path`); :func:`is_temporary`
recognizes what an interrupted run left behind.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import re
from pathlib import Path
from typing import IO, Any, Callable, Optional, Union

import numpy as np

__all__ = ["to_json", "json_text", "json_float_field", "temporary_path", "is_temporary",
           "atomic_write", "write_text"]

_TEMPORARY = re.compile(r"^\..+\.\d+\.tmp$")


def _float(value: Any) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data (dict, list, str, number, bool, None) by the module's rule.

    Parameters
    ----------
    value : any

    Returns
    -------
    object
        Something :func:`json.dumps` writes as strict JSON (no NaN or Infinity).

    Examples
    --------
    >>> to_json({"q": float("nan"), "z": 1 + 2j, "x": np.arange(2), "k": (np.int64(3),)})
    {'q': None, 'z': [1.0, 2.0], 'x': [0, 1], 'k': [3]}
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return _float(value)
    if isinstance(value, (complex, np.complexfloating)):
        return [_float(value.real), _float(value.imag)]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and bool(np.isfinite(value).all()):
            return value.tolist()  # finite reals: the rule's numbers as they are
        return to_json(value.tolist())
    if isinstance(value, (list, tuple)) and all(type(v) is float for v in value):
        # a list of Python floats (a state, a spectrum's parts): no call per number
        return [v if math.isfinite(v) else None for v in value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def json_text(value: Any, *, indent: Optional[int] = 1, sort_keys: bool = False) -> str:
    """``json.dumps(to_json(value))``: strict JSON text of ``value``."""
    return json.dumps(to_json(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


def json_float_field(field: "dataclasses.Field", value: Any) -> Any:
    """A dataclass field's value read from JSON: ``null`` in a ``float`` field is NaN again.

    The inverse of the rule's NaN/inf -> ``null`` for scalar float fields (the only loss the
    rule makes that a reader can undo from the type alone).
    """
    if value is None and field.type in ("float", float):
        return math.nan
    return value


def temporary_path(path: Union[str, os.PathLike]) -> Path:
    """Where ``path`` is written before it is renamed: ``.<name>.<pid>.tmp`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def is_temporary(name: str) -> bool:
    """Whether a file name is a temporary left by an interrupted :func:`atomic_write`."""
    return _TEMPORARY.match(name) is not None


def atomic_write(path: Union[str, os.PathLike], write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file through ``write(handle)`` (binary) to a temporary name, then rename it.

    Parameters
    ----------
    path : path
        The final name.
    write : callable
        Called once with the open binary handle of the temporary file.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: Union[str, os.PathLike], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))
