"""Run directories as they lie: checkpoint folders below a root, files that are not weights,
problems said once."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from checkpoints import (CheckpointError, CheckpointSeries, LeakyRNN, find_run, group_problems,
                         load_checkpoint)


def _save_leaky(path, n=5):
    torch.manual_seed(0)
    torch.save(LeakyRNN(1, n, 1).state_dict(), path)


def _tree(root, *folders, files=2):
    for folder in folders:
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        for e in range(files):
            _save_leaky(d / f"epoch={e}-step={10 * e}.ckpt")


def test_run_root_finds_the_usual_folders(tmp_path):
    _tree(tmp_path / "a", "models")
    assert find_run(tmp_path / "a").checkpoint_dir == str(tmp_path / "a" / "models")
    _tree(tmp_path / "b", "lightning_logs/version_0/checkpoints")
    layout = find_run(tmp_path / "b")
    assert layout.checkpoint_dir.endswith("version_0/checkpoints")
    assert str(tmp_path / "b" / "lightning_logs" / "version_0") in layout.search_dirs
    _tree(tmp_path / "c", "ckpt_dir")
    assert find_run(tmp_path / "c").checkpoint_dir.endswith("ckpt_dir")
    # the folder itself when it holds the checkpoints; ghostscope's own output is never a run
    _tree(tmp_path, "d")
    (tmp_path / "d" / "out" / "epochs").mkdir(parents=True)
    (tmp_path / "d" / "out" / "summary.json").write_text("{}")
    np.savez(tmp_path / "d" / "out" / "epochs" / "epoch_0001.npz", x=np.zeros(2))
    assert find_run(tmp_path / "d").checkpoint_dir == str(tmp_path / "d")


def test_several_runs_are_listed_to_choose_from(tmp_path):
    _tree(tmp_path / "results_dcdt", "seed_0/models", "seed_1/models", "seed_10/models")
    with pytest.raises(CheckpointError) as info:
        CheckpointSeries.from_run(tmp_path / "results_dcdt")
    text = str(info.value)
    assert "3 runs" in text and "seed_0/models, seed_1/models, seed_10/models" in text
    assert "\n" not in text and str(tmp_path / "results_dcdt" / "seed_0") in text
    series = CheckpointSeries.from_run(tmp_path / "results_dcdt", run="seed_1")
    assert series.directory.endswith("seed_1/models")
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        find_run(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    return d


def test_non_checkpoint_files_are_skipped_not_problems(tmp_path):
    for e in range(3):
        _save_leaky(tmp_path / f"model_epoch{e}.pt")
    np.savez(tmp_path / "final.npz", loss_history=np.ones(3), grad_history=np.ones(3),
             accuracy_history=np.ones(3))
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    torch.save(optimizer.state_dict(), tmp_path / "opt_epoch7.pt")  # numbered, found on load
    series = CheckpointSeries.from_dir(tmp_path)
    assert series.validate() == []
    skipped = dict(series.skipped)
    assert set(skipped) == {str(tmp_path / n) for n in ("final.npz", "optimizer.pt",
                                                         "opt_epoch7.pt")}
    assert "training histories" in skipped[str(tmp_path / "final.npz")]
    assert "optimizer state" in skipped[str(tmp_path / "opt_epoch7.pt")]
    assert len(list(series)) == 3


def test_identical_reasons_are_grouped_every_file_kept(tmp_path):
    bad = {"S_l": torch.randn(6, 2), "S_r": torch.randn(2, 6), "W_in.weight": torch.randn(6, 1),
           "W_in.bias": torch.randn(6), "W_out.weight": torch.randn(1, 6),
           "W_out.bias": torch.randn(3)}
    for e in range(30):
        torch.save(bad, tmp_path / f"model_epoch{e}.pt")
    (tmp_path / "model_epoch99.pt").write_bytes(b"garbage")
    series = CheckpointSeries.from_dir(tmp_path)
    problems = series.validate()
    assert len(problems) == 31
    groups = group_problems(problems)
    assert [len(g.paths) for g in groups] == [30, 1]
    line = str(groups[0])
    assert line.startswith("30 files: the weights do not fit") and line.endswith(
        "first: model_epoch0.pt")
    assert "config.json" not in line  # there is none: never blamed
    assert str(groups[1]).startswith(str(tmp_path / "model_epoch99.pt"))


def test_a_config_that_exists_is_named_in_the_fix(tmp_path):
    _save_leaky(tmp_path / "model_epoch0.pt")
    (tmp_path / "config.json").write_text(json.dumps(
        {"architecture": "leaky_rnn", "model": {"n_states": 7}}))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "model_epoch0.pt")
    assert str(tmp_path / "config.json") in info.value.fix


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_info_on_the_authors_run_root(tmp_path):
    from checkpoints import train_paper_run

    run = tmp_path / "results_dmts" / "seed_0"
    train_paper_run("dmts", run, epochs=3, n_states=10, repeats=2)
    torch.save({"S_l": torch.randn(10, 2)}, run / "models" / "model_epoch3.pt")
    torch.save({"S_l": torch.randn(10, 2)}, run / "models" / "model_epoch4.pt")
    done = _cli("info", tmp_path / "results_dmts")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "seed_0/models" in out and "paper_low_rank_rnn" in out
    assert "convention: row (W_out.weight (1, 2) reads the rank-2 latent" in out
    assert "final.npz" in out and "log_offset=-1" in out
    assert "2 files: unknown architecture" in out and "first: model_epoch3.pt" in out
    done = _cli("info", tmp_path / "results_dmts", "--json")
    info = json.loads(done.stdout)
    assert len(info["problems"]) == 2 and info["problem_groups"][0]["count"] == 2
    assert info["model"]["convention"] == "row" and info["training_log"]["offset"] == -1


def test_analyze_says_a_shared_reason_once_and_keeps_every_file(tmp_path):
    from checkpoints import train_paper_run

    run = tmp_path / "run"
    train_paper_run("dcdt", run, epochs=2, n_states=8, repeats=1)
    bad = {"S_l": torch.randn(8, 2), "S_r": torch.randn(2, 8), "W_in.weight": torch.randn(8, 1),
           "W_in.bias": torch.randn(8), "W_out.weight": torch.randn(1, 2),
           "W_out.bias": torch.randn(3)}
    for e in range(5, 9):
        torch.save(bad, run / "models" / f"model_epoch{e}.pt")
    done = _cli("analyze", run, "--out", tmp_path / "out", "--no-report", "--n-initial", 16)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("size mismatch for W_out.bias") == 1
    assert "4 files: the weights do not fit" in done.stderr
    assert "first: model_epoch5.pt" in done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["failed"]) == 4


def test_lightning_last_ckpt_copy_is_skipped_not_a_duplicate(tmp_path):
    torch.manual_seed(0)
    sd = {f"model.{k}": v for k, v in LeakyRNN(1, 4, 1).state_dict().items()}
    for e in range(3):
        torch.save({"epoch": e, "global_step": 4 * (e + 1), "state_dict": sd},
                   tmp_path / f"epoch={e}-step={4 * (e + 1)}.ckpt")
    torch.save({"epoch": 2, "global_step": 12, "state_dict": sd}, tmp_path / "last.ckpt")
    torch.save({"epoch": 7, "global_step": 99, "state_dict": sd}, tmp_path / "other.ckpt")
    series = CheckpointSeries.from_dir(tmp_path)
    assert series.epochs == [0, 1, 2, 7]
    assert [p for p, _ in series.skipped] == [str(tmp_path / "last.ckpt")]
    assert "copy of epoch=2-step=12.ckpt" in series.skipped[0][1]
