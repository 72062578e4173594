"""`ghostscope train dcdt` writes the authors' layout; `ghostscope analyze` on its root reads it
with the model recognized and the log aligned as their loss_history is."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_train_then_analyze_the_authors_layout(tmp_path):
    root = tmp_path / "results_dcdt"
    done = _cli("train", "dcdt", "--out", root / "seed_0", "--epochs", 4, "--n-states", 12,
                "--repeats", 2, "-q")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (root / "seed_0").iterdir()) == ["final.npz", "model_final.pt",
                                                                   "models"]
    out = tmp_path / "out"
    done = _cli("analyze", root, "--out", out, "--no-report", "-q", "--n-initial", 32)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == [0, 1, 2, 3] and summary["failed"] == []
    assert summary["loss_source"].endswith("seed_0/final.npz")
    history = np.load(root / "seed_0" / "final.npz")["loss_history"]
    losses = [e["loss"] for e in summary["per_epoch"]]
    np.testing.assert_array_equal(losses[:3], history[1:])  # loss_history[e] is model_epoch{e-1}
    assert losses[3] is None or math.isnan(losses[3])
    done = _cli("analyze", root, "--out", tmp_path / "raw", "--no-report", "-q", "--n-initial",
                32, "--log-offset", 0)
    raw = json.loads((tmp_path / "raw" / "summary.json").read_text())
    np.testing.assert_array_equal([e["loss"] for e in raw["per_epoch"]], history)
