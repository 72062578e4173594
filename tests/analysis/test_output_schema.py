"""The documented JSON schema of summary.json and epochs/*.json holds what the README says."""
import json

import numpy as np

from analysis import analyze_series
from fixedpoints import systems


def test_summary_and_epoch_json_hold_versions_checkpoints_and_per_point_lists(tmp_path):
    series = [(0, systems.tanh_map(2.0, 0.40)), (1, systems.tanh_map(2.0, 0.55))]
    analyze_series(series, n_initial=64, run=dict(out=tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["versions"]) >= {"ghostscope", "torch", "numpy", "python"}
    assert [c["epoch"] for c in summary["checkpoints"]] == [0, 1]
    first = json.loads((tmp_path / "epochs" / "epoch_0000.json").read_text())
    kinds = sorted(p["kind"] for p in first["points"])
    assert kinds == ["stable", "stable", "unstable"]
    for point in first["points"]:
        x = np.array(point["x"])
        assert abs(np.tanh(2 * x[0] + 0.40) - x[0]) < 1e-9  # each listed point is a fixed point
        assert len(point["eigvals_real"]) == 1
    second = json.loads((tmp_path / "epochs" / "epoch_0001.json").read_text())
    assert [p["kind"] for p in second["points"]].count("stable") == 1
    assert isinstance(second["ghost_list"], list) and isinstance(second["slow_regions"], list)
