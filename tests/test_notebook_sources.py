"""The saved example notebooks are what ``examples/build_notebooks.py`` writes: every cell's
kind and source is the builder's (so an edit of the builder is not forgotten in the notebook),
and each is small enough to commit."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  EXAMPLES / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_saved_notebook_is_the_builders():
    builder = _builder()
    assert sorted(builder.NOTEBOOKS) == sorted(p.stem for p in EXAMPLES.glob("*.ipynb"))
    problems = [line for name, cells in builder.NOTEBOOKS.items()
                for line in builder.differences(name, cells)]
    assert problems == []


def test_the_notebooks_are_small():
    for path in EXAMPLES.glob("*.ipynb"):
        assert path.stat().st_size < 400_000, f"{path.name}: {path.stat().st_size} bytes"


def test_a_changed_cell_is_reported(tmp_path, monkeypatch):
    builder = _builder()
    name, cells = "ghost_toy_model", list(builder.NOTEBOOKS["ghost_toy_model"])
    kind, src = cells[0]
    cells[0] = (kind, src + " (edited)")
    assert builder.differences(name, cells) == [f"{name}: cell 0 (md) differs"]
    assert builder.differences(name, cells[:-1])[0].startswith(f"{name}: {len(cells)} cells")
