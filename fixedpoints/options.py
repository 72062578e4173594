"""Building frozen option dataclasses from what users pass: None, an instance, a dict, overrides."""
from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Dict, Optional, Type, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["resolve_options"]

T = TypeVar("T", bound="DataclassInstance")


def resolve_options(cls: Type[T], options: Any = None, overrides: Optional[Dict[str, Any]] = None,
                    *, name: str = "") -> T:
    """An options dataclass from ``None`` (the defaults), an instance, or a dict of its fields,
    with ``overrides`` replacing single fields.

    Parameters
    ----------
    cls : type
        A (frozen) dataclass; its ``__post_init__`` validates the values.
    options : None, cls or dict
    overrides : dict, optional
    name : str
        What the options are for, used in messages (``"event"`` -> "unknown event option(s)").

    Raises
    ------
    ValueError
        For names that are not fields of ``cls`` (the message lists the valid ones).
    TypeError
        For ``options`` of another type.
    """
    known = [f.name for f in fields(cls)]
    label = f"{name} option" if name else "option"
    if options is None:
        base: Dict[str, Any] = {}
    elif isinstance(options, cls):
        if not overrides:
            return options
        base = {k: getattr(options, k) for k in known}
    elif isinstance(options, dict):
        base = dict(options)
    else:
        raise TypeError(f"{name or 'options'}={options!r} is not a {cls.__name__} or a dict")
    changes = {**base, **(overrides or {})}
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ValueError(f"unknown {label}(s) {unknown}; valid options are {sorted(known)}")
    return cls(**changes)
