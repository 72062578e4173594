"""The example notebooks run as saved: each is executed again (nbclient, a fresh kernel) and
prints the same lines as its saved outputs, with no error. ``slow``: minutes on 2 cores."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))

pytestmark = pytest.mark.slow


def _printed(nb):
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for o in cell.outputs:
            assert o.output_type != "error", f"a cell failed: {o.get('ename')}: {o.get('evalue')}"
            if o.output_type == "stream" and o.name == "stdout":
                out.extend(line for line in o.text.splitlines() if line.strip())
    return out


def _html(nb):
    return [o.data["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type in ("execute_result", "display_data") and "text/html" in o.data]


def test_there_is_a_notebook():
    assert [p.name for p in NOTEBOOKS] == ["ghost_toy_model.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_as_saved(path):
    saved = nbformat.read(path, as_version=4)
    fresh = copy.deepcopy(saved)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(fresh, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    assert _printed(fresh) == _printed(saved)
    shown, again = _html(saved), _html(fresh)
    assert len(shown) == len(again) >= 1
    assert all(("<table" in h or "<img" in h) for h in again)  # the rich displays
