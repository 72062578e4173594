"""The versions recorded with every result (``summary.json``) and report (``report.html``)."""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Dict

__all__ = ["library_versions"]

#: The libraries whose numerics or drawing the results depend on, in the order listed.
LIBRARIES = ("torch", "numpy", "scipy", "matplotlib", "networkx")


def library_versions() -> Dict[str, str]:
    """``{"ghostscope": ..., "python": ..., "torch": ..., ...}``.

    ghostscope's version is ``"source"`` when it runs from a source tree that is not installed;
    a library that is missing is left out.
    """
    try:
        ghostscope = metadata.version("ghostscope")
    except metadata.PackageNotFoundError:
        ghostscope = "source"
    out = {"ghostscope": ghostscope, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
