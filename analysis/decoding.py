"""Result files are data: the fixed registry of the types an epoch file may name.

An epoch file (``epochs/epoch_XXXX.json``) records which result class its ghosts are and which
enum member the finder's status is. Reading it back must never import a module or look up a
class by a name that comes from the file: a JSON file edited to name ``os:system`` or the module
``this`` would otherwise run code on resume. This module maps the few names ghostscope itself
writes to its own classes; every other name is a :class:`ResultFileError` that names the file,
the value and the fix.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

__all__ = ["ResultFileError", "result_class", "enum_member", "RESULT_CLASSES", "RESULT_ENUMS"]


class ResultFileError(ValueError):
    """A result file that does not hold what ghostscope writes (edited, damaged or foreign)."""


def _ghosts_class() -> type:
    from fixedpoints.ghosts import Ghosts
    return Ghosts


def _finder_status() -> type:
    from fixedpoints.results import FinderStatus
    return FinderStatus


#: ``"module:Class"`` written in epoch files -> how to get that class (ghostscope's own only).
RESULT_CLASSES: Mapping[str, Callable[[], type]] = {
    "fixedpoints.ghosts:Ghosts": _ghosts_class,
}

#: ``(module, enum name)`` written in epoch files -> how to get that enum.
RESULT_ENUMS: Mapping[Tuple[str, str], Callable[[], type]] = {
    ("fixedpoints.results", "FinderStatus"): _finder_status,
}


def _fix(source: Optional[str]) -> str:
    where = f"{source}: " if source else ""
    return (f"{where}this file was edited or not written by ghostscope; delete it (or re-run "
            f"with --force, force=True) to recompute the epoch")


def result_class(name: Any, source: Optional[str] = None) -> type:
    """The class an epoch file names as ``"module:Class"`` (one of :data:`RESULT_CLASSES`).

    Raises
    ------
    ResultFileError
        For any other name; nothing is imported.
    """
    factory = RESULT_CLASSES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ResultFileError(f"{_fix(source)} (it names the type {str(name)[:80]!r}, which is "
                              f"not one of {sorted(RESULT_CLASSES)})")
    return factory()


def enum_member(value: Mapping[str, Any], source: Optional[str] = None) -> Any:
    """The enum member an epoch file records as ``{"enum", "name", "module"}``.

    Raises
    ------
    ResultFileError
        For an enum or member that is not one of :data:`RESULT_ENUMS`; nothing is imported.
    """
    module, name_of_enum = value.get("module"), value.get("enum")
    key = (str(module), str(name_of_enum))
    factory = RESULT_ENUMS.get(key) if isinstance(module, str) and isinstance(
        name_of_enum, str) else None
    if factory is None:
        raise ResultFileError(f"{_fix(source)} (it names the enum {str(key)[:80]}, which is not "
                              f"one of {sorted(RESULT_ENUMS)})")
    enum_cls: Any = factory()
    member: Dict[str, Any] = getattr(enum_cls, "__members__", {})
    name = value.get("name")
    if not isinstance(name, str) or name not in member:
        raise ResultFileError(f"{_fix(source)} ({key[1]} has no member {str(name)[:80]!r})")
    return member[name]
