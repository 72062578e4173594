"""CheckpointSeries: ordering, laziness, bad files one by one, duplicates, shape changes."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import checkpoints.series as series_module
from checkpoints import CheckpointError, CheckpointSeries, LeakyRNN, TorchRNN, build_model


def leaky_state(seed, n=6):
    torch.manual_seed(seed)
    return LeakyRNN(2, n, 1, rank=2).state_dict()


def write_run(directory, names, n=6):
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        path = directory / name
        if name.endswith(".safetensors"):
            save_file(leaky_state(i, n), str(path))
        elif name.endswith(".npz"):
            np.savez(path, **{k: v.numpy() for k, v in leaky_state(i, n).items()})
        else:
            torch.save(leaky_state(i, n), path)
    return directory


def test_natural_order_never_lexicographic(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch10.pt", "model_epoch2.pt", "model_epoch100.pt",
                                       "model_epoch1.pt", "model_final.pt"])
    series = CheckpointSeries.from_dir(run)
    assert series.epochs == [1, 2, 10, 100, None]
    assert [p.split("/")[-1] for p in series.paths] == [
        "model_epoch1.pt", "model_epoch2.pt", "model_epoch10.pt", "model_epoch100.pt",
        "model_final.pt"]
    assert series.unnumbered == [str(run / "model_final.pt")]
    last = series[-1]
    assert last.numbered is False and last.epoch is None
    assert series[0].numbered is True and len(series) == 5


@pytest.mark.parametrize("names, epochs", [
    (["model_epoch_12.pt", "model_epoch_3.pt"], [3, 12]),
    (["ckpt_000100.pt", "ckpt_000020.pt", "ckpt_000003.pt"], [3, 20, 100]),
    (["step-5000.safetensors", "step-900.safetensors"], [900, 5000]),
    (["w_7.npz", "w_11.npz"], [7, 11]),
])
def test_name_styles(tmp_path, names, epochs):
    series = CheckpointSeries.from_dir(write_run(tmp_path / "run", names))
    assert series.epochs == epochs
    assert [c.epoch for c in series] == epochs and not series.problems


def test_lightning_epoch_and_step_order(tmp_path):
    names = ["epoch=1-step=300.ckpt", "epoch=0-step=200.ckpt", "epoch=0-step=100.ckpt",
             "epoch=10-step=3000.ckpt", "last.ckpt"]
    series = CheckpointSeries.from_dir(write_run(tmp_path / "run", names))
    assert series.epochs == [0, 0, 1, 10, None]
    assert series.steps == [100, 200, 300, 3000, None]
    assert series[2].step == 300


def test_order_from_stored_keys_when_names_have_no_number(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"epoch": 5, "state_dict": leaky_state(0)}, run / "alpha.pt")
    torch.save({"epoch": 1, "state_dict": leaky_state(1)}, run / "beta.pt")
    torch.save({"global_step": 3, "state_dict": leaky_state(2)}, run / "delta.pt")
    torch.save(leaky_state(3), run / "gamma.pt")
    series = CheckpointSeries.from_dir(run)
    assert [e.name for e in series.entries] == ["beta.pt", "delta.pt", "alpha.pt", "gamma.pt"]
    assert series.epochs == [1, 3, 5, None]
    assert [e.source for e in series.entries] == ["stored", "stored", "stored", "none"]


def test_listing_is_lazy(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", [f"model_epoch{e}.pt" for e in range(6)])
    calls = []
    real = series_module.load_checkpoint
    monkeypatch.setattr(series_module, "load_checkpoint",
                        lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    series = CheckpointSeries.from_dir(run)
    assert len(series) == 6 and series.epochs == list(range(6)) and calls == []
    model = series.load_model(3)
    assert calls == [str(run / "model_epoch3.pt")] and model.rank == 2
    sub = series[2:4]
    assert isinstance(sub, CheckpointSeries) and sub.epochs == [2, 3] and len(calls) == 1
    assert series.index_of(4) == 4
    with pytest.raises(KeyError, match="no checkpoint with epoch 99"):
        series.index_of(99)


def test_pattern_selects_one_family(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch1.pt", "model_epoch2.pt", "ema_epoch1.pt"])
    with pytest.raises(CheckpointError, match="duplicate epoch 1") as info:
        CheckpointSeries.from_dir(run)
    assert "pattern=" in info.value.fix and "ema_epoch1.pt" in info.value.reason
    series = CheckpointSeries.from_dir(run, pattern="model_epoch*.pt")
    assert series.epochs == [1, 2]
    with pytest.raises(CheckpointError, match="no checkpoint file matches pattern 'x\\*'") as info:
        CheckpointSeries.from_dir(run, pattern="x*")
    assert "model_epoch1.pt" in info.value.fix


def test_duplicate_epochs_across_spellings(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch5.pt", "model_epoch_5.safetensors"])
    with pytest.raises(CheckpointError, match="duplicate epoch 5"):
        CheckpointSeries.from_dir(run)


def test_directory_errors(tmp_path):
    with pytest.raises(CheckpointError, match="directory does not exist"):
        CheckpointSeries.from_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        CheckpointSeries.from_dir(tmp_path / "empty")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError) as info:
        CheckpointSeries.from_dir(other)
    assert "notes.txt" in info.value.fix
    nested = tmp_path / "nested"
    write_run(nested / "checkpoints", ["model_epoch1.pt"])
    with pytest.raises(CheckpointError) as info:
        CheckpointSeries.from_dir(nested)
    assert "sub-directories" in info.value.fix and "checkpoints" in info.value.fix
    with pytest.raises(CheckpointError, match="is a file"):
        CheckpointSeries.from_dir(nested / "checkpoints" / "model_epoch1.pt")


def _bad_run(tmp_path):
    run = write_run(tmp_path / "run", [f"model_epoch{e}.pt" for e in range(6)])
    (run / "model_epoch1.pt").write_bytes(b"\x00garbage" * 5)                   # random bytes
    data = (run / "model_epoch2.pt").read_bytes()
    (run / "model_epoch2.pt").write_bytes(data[:100])                          # truncated
    sd = leaky_state(3)
    sd["S_l"][0, 0] = float("nan")
    torch.save(sd, run / "model_epoch3.pt")                                    # NaN
    sd = leaky_state(4)
    del sd["W_out.weight"]
    torch.save(sd, run / "model_epoch4.pt")                                    # missing key
    return run


def test_bad_files_reported_one_by_one_and_the_rest_goes_on(tmp_path):
    run = _bad_run(tmp_path)
    series = CheckpointSeries.from_dir(run)
    loaded = [c.epoch for c in series]
    assert loaded == [0, 5]
    problems = series.problems
    assert [p.path for p in problems] == [str(run / f"model_epoch{e}.pt") for e in (1, 2, 3, 4)]
    assert all(isinstance(p, CheckpointError) and p.fix for p in problems)
    assert "NaN" in problems[2].reason and "'S_l'" in problems[2].reason
    assert "missing keys" in problems[3].reason
    # iterating again does not duplicate problems
    list(series)
    assert len(series.problems) == 4
    # indexing a bad file raises
    with pytest.raises(CheckpointError, match="model_epoch1.pt"):
        series[1]


def test_strict_stops_at_the_first_bad_file(tmp_path):
    series = CheckpointSeries.from_dir(_bad_run(tmp_path), strict=True)
    seen = []
    with pytest.raises(CheckpointError, match="model_epoch1.pt"):
        for checkpoint in series:
            seen.append(checkpoint.epoch)
    assert seen == [0]


def test_validate_loads_everything(tmp_path):
    series = CheckpointSeries.from_dir(_bad_run(tmp_path))
    assert len(series.validate()) == 4


def test_shape_change_between_checkpoints(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch1.pt", "model_epoch2.pt"], n=6)
    torch.save(leaky_state(9, n=8), run / "model_epoch3.pt")
    torch.save(leaky_state(8, n=6), run / "model_epoch4.pt")
    series = CheckpointSeries.from_dir(run)
    assert [c.epoch for c in series] == [1, 2, 4]
    (problem,) = series.problems
    assert problem.path.endswith("model_epoch3.pt")
    assert "shapes changed from epoch 1" in problem.reason
    assert "S_l (6, 2) -> (8, 2)" in problem.reason


def test_architecture_change_between_checkpoints(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch1.pt"])
    torch.save(build_model("gru", n_inputs=2, hidden_size=3, n_outputs=1).state_dict(),
               run / "model_epoch2.pt")
    series = CheckpointSeries.from_dir(run)
    assert [c.epoch for c in series] == [1]
    assert "architecture 'gru' differs" in series.problems[0].reason


def test_unreadable_unnumbered_file_is_reported_and_kept_last(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch1.pt"])
    (run / "final.pt").write_bytes(b"not a checkpoint")
    series = CheckpointSeries.from_dir(run)
    assert series.epochs == [1, None]
    assert len(series.problems) == 1 and series.problems[0].path.endswith("final.pt")
    with pytest.raises(CheckpointError):
        CheckpointSeries.from_dir(run, strict=True)


def test_trainer_layout_with_config_json(tmp_path):
    """The layout checkpoints.train writes: model_epoch{e}.pt, train_log.csv, config.json."""
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    model = TorchRNN(3, 4, 3, cell="lstm", num_layers=2)
    for epoch in (0, 5, 10):
        with torch.no_grad():
            model.rnn.weight_hh_l1.add_(0.01)
        torch.save(model.state_dict(), run / f"model_epoch{epoch}.pt")
    (run / "train_log.csv").write_text("epoch,loss,accuracy,grad_norm\n0,1.0,0.5,0.1\n")
    (run / "config.json").write_text(json.dumps({
        "architecture": model.architecture, "model": model.config(),
        "task": {"name": "flipflop"}, "training": {"lr": 1e-3}}))
    series = CheckpointSeries.from_dir(run)
    assert series.config["architecture"] == "lstm"
    checkpoints = list(series)
    assert [c.epoch for c in checkpoints] == [0, 5, 10]
    assert all(c.config == model.config() for c in checkpoints)
    torch.testing.assert_close(checkpoints[-1].model.rnn.weight_hh_l1,
                               model.rnn.weight_hh_l1.detach().double())


def test_config_json_gives_hyper_parameters(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch1.pt", "model_epoch2.pt"])
    (run / "config.json").write_text(json.dumps(
        {"architecture": "low_rank_rnn", "model": {"n_inputs": 2, "n_states": 6, "n_outputs": 1,
                                                   "rank": 2, "alpha": 0.1}}))
    series = CheckpointSeries.from_dir(run)
    assert all(c.model.alpha == 0.1 for c in series)
    (run / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="config.json"):
        CheckpointSeries.from_dir(run)
    assert CheckpointSeries.from_dir(run, config=False)[0].model.alpha == 0.5


def test_from_files_and_repr(tmp_path):
    run = write_run(tmp_path / "run", ["model_epoch3.pt", "model_epoch1.pt"])
    series = CheckpointSeries.from_files([run / "model_epoch3.pt", run / "model_epoch1.pt"])
    assert series.epochs == [1, 3]
    assert "2 checkpoints" in repr(series) and "1..3" in repr(series)


def test_a_slice_pickles_for_worker_processes(tmp_path):
    import pickle

    run = write_run(tmp_path / "run", ["model_epoch1.pt", "model_epoch2.pt"])
    (run / "config.json").write_text(json.dumps({"architecture": "low_rank_rnn",
                                                 "model": {"alpha": 0.3}}))
    series = CheckpointSeries.from_dir(run)
    clone = pickle.loads(pickle.dumps(series[1:2]))
    checkpoint = clone.load(0)
    assert checkpoint.epoch == 2 and checkpoint.model.alpha == 0.3
