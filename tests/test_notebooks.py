"""The example notebooks run as saved: each is executed again (nbclient, a fresh kernel), prints
the same lines as its saved outputs, with no error, and the numbers its conclusions state are
the ones it measures. ``slow``: minutes on 2 cores each."""
from __future__ import annotations

import copy
import re
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


#: A number printed in e-notation below this is round-off: its digits vary with the machine's
#: BLAS (2.2e-15 here, 3.6e-15 on another), so the saved and the fresh run are compared with it
#: masked, on the lines that print a round-off figure on purpose (:data:`ROUND_OFF_LINES`);
#: each notebook's CHECKS still bound the fresh figure.
ROUND_OFF = 1e-12
ROUND_OFF_LINES = re.compile(r"largest \|κ difference\||largest \|dκ/dt\|")

_E_NUMBER = re.compile(r"\b\d(?:\.\d+)?e-\d+\b")


def _masked(lines):
    """The lines, with every e-notation number below :data:`ROUND_OFF` replaced by a mark on
    the lines :data:`ROUND_OFF_LINES` matches."""
    def mask(match):
        return "<round-off>" if float(match.group(0)) < ROUND_OFF else match.group(0)

    return [_E_NUMBER.sub(mask, line) if ROUND_OFF_LINES.search(line) else line
            for line in lines]


def _html(nb):
    return [o.data["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type in ("execute_result", "display_data") and "text/html" in o.data]


def _markdown(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _number(pattern, lines):
    """The first group of the first printed line matching ``pattern``, as a float."""
    for line in lines:
        m = re.search(pattern, line)
        if m:
            return float(m.group(1))
    raise AssertionError(f"no printed line matches {pattern!r}")


def _stated(text, lines, conclusions):
    """``text`` is both printed (measured) and in the conclusions (stated)."""
    assert any(text in line for line in lines), f"not measured: {text!r}"
    assert text in " ".join(conclusions.split()), f"not stated in the conclusions: {text!r}"


def check_ghost_rank_one_runs(lines, conclusions):
    for text in ("steepest at epoch 978 (onset 968, the loss fell 60%)", "epochs 850–1100",
                 "5 attractor_moved", "lead to the drop +78 epochs (between +78 and +128",
                 "saddle_node 400-450"):
        _stated(text, lines, conclusions)
    assert _number(r"stuck, lr 0.03: loss 0.998 -> ([\d.]+)", lines) == 1.0
    assert _number(r"stuck, lr 0.03: .*gradient norm at the end ([\d.e+-]+)", lines) < 1e-6
    assert _number(r"learning, lr 0.01: loss 0.998 -> ([\d.]+)", lines) < 0.1
    for run in ("learning", "stuck"):  # ghostscope's points are the closed form's
        assert _number(rf"{run}: the same number .* largest \|κ difference\| ([\d.e+-]+)",
                       lines) < 1e-9
    assert "κ* = -3.03 (stable), -1.33 (saddle), 4.39 (stable)" in " ".join(lines)
    assert _number(r"κ0 = n·x0 = ([\d.-]+), below the saddle", lines) == -1.69
    assert "learning: ghosts found at 0 of 31 checkpoints" in lines
    assert _number(r"over all checkpoints of both runs: (\d+)", lines) == 0


def check_ghost_rank_two_runs(lines, conclusions):
    for text in ("steepest at epoch 452 (onset 447, the loss fell 51%)",
                 "steepest at epoch 292 (onset 278, the loss fell 24%)",
                 "event pitchfork between epochs 420 and 440, lead to the drop +12",
                 "event ghost_appeared between epochs 220 and 240, lead to the drop +52",
                 "event stability_change between epochs 280 and 300, lead to the drop -8",
                 "event ghost_appeared between epochs 600 and 620, lead to the drop -168",
                 "from epoch 620 (loss 0.0608): 2 stable, 1 saddle, 0 unstable, 2 ghost(s)"):
        _stated(text, lines, conclusions)
    for task in ("dcdt", "dmts"):  # on the authors' 2-D reduced equation
        assert _number(rf"{task}: largest \|dκ/dt\| .* checkpoints: ([\d.e+-]+)", lines) < 1e-9
        plateau = _number(rf"{task}: .* ([\d.]+) on the plateau", lines)
        end = _number(rf"{task}: .* ([\d.]+) at the end", lines)
        assert end < 0.5 * plateau
    assert "from epoch 440 (loss 0.1060): 2 stable, 1 saddle" in " ".join(lines)  # bistable
    assert _number(r"dcdt: .* on the plateau .* accuracy [\d.]+ -> ([\d.]+)", lines) == 0.977
    assert _number(r"dmts: .* on the plateau .* accuracy [\d.]+ -> ([\d.]+)", lines) == 0.947


def check_flipflop_tcr(lines, conclusions):
    for text in ("27 fixed points, by index {0: 8, 1: 12, 2: 6, 3: 1}",
                 "by index: {0: '8/8', 1: '12/12', 2: '6/6', 3: '1/1'}",
                 "found only by the FixedPointFinder-style search: 0",
                 "λ = 0.1: loss below 0.1 from epoch 202", "λ = 0: loss below 0.1 from epoch 193"):
        _stated(text, lines, conclusions)
    assert "signature: stable=8, saddle=19; index i0:8 i1:12 i2:6 i3:1; attractors=8" in lines
    assert _number(r"largest q among them: ([\d.e+-]+)", lines) < 1e-20
    assert _number(r"FixedPointFinder-style: .*, (\d+) with q < 1e-12", lines) == 27
    assert _number(r"FixedPointFinder-style: .* steps, (\d+) unique points", lines) == 63
    assert _number(r"the rest: q from ([\d.e+-]+)", lines) == 2.6e-07


CHECKS = {"ghost_rank_one_runs": check_ghost_rank_one_runs,
          "ghost_rank_two_runs": check_ghost_rank_two_runs,
          "flipflop_tcr": check_flipflop_tcr}


def test_round_off_is_masked_and_nothing_else():
    assert _masked(["largest |κ difference| 3.6e-15, speed 2.0e-03 and 1e-13"]) == [
        "largest |κ difference| <round-off>, speed 2.0e-03 and <round-off>"]
    assert _masked(["largest |κ difference| 5.0e-12"]) == ["largest |κ difference| 5.0e-12"]
    assert _masked(["largest q among them: 3.6e-15"]) == ["largest q among them: 3.6e-15"]


def test_the_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == sorted(["ghost_toy_model", *CHECKS])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_as_saved(path):
    saved = nbformat.read(path, as_version=4)
    fresh = copy.deepcopy(saved)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(fresh, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    assert _masked(_printed(fresh)) == _masked(_printed(saved))
    shown, again = _html(saved), _html(fresh)
    assert len(shown) == len(again) >= 1
    assert all(("<table" in h or "<img" in h) for h in again)  # the rich displays
    if path.stem in CHECKS:
        CHECKS[path.stem](_printed(fresh), _markdown(fresh))
