"""load_checkpoint: formats, layouts, detection, config files, and every kind of bad input."""
import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from checkpoints import (CheckpointError, LeakyRNN, PLRNN, RankOneRNN, TorchRNN, XFormRNN,
                         build_model, detect_architecture, find_recurrent_modules,
                         load_checkpoint, parse_checkpoint_name)
from checkpoints.loading import read_payload, unwrap_payload

DT = torch.float64


# ------------------------------------------------------------------ the ghost paper's layout
class PaperLowRankRNN(nn.Module):
    """Written independently of checkpoints.models, the way the paper's code names things."""

    def __init__(self, n_in, n, n_out, rank, full_rank=False):
        super().__init__()
        self.W_in = nn.Linear(n_in, n)
        if full_rank:
            self.W_rec = nn.Parameter(torch.randn(n, n) / n ** 0.5)
        else:
            self.S_l = nn.Parameter(torch.randn(n, rank) / n ** 0.5)
            self.S_r = nn.Parameter(torch.randn(rank, n))
        self.W_out = nn.Linear(n, n_out)


def numpy_leaky_step(sd, r, u, alpha=0.5):
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in sd.items()}
    W = sd["W_rec"] if "W_rec" in sd else sd["S_l"] @ sd["S_r"]
    drive = np.tanh(r @ W.T + u @ sd["W_in.weight"].T + sd["W_in.bias"])
    return (1 - alpha) * r + alpha * drive


@pytest.mark.parametrize("full_rank", [False, True])
def test_ghost_paper_checkpoint_loads_as_is(tmp_path, full_rank):
    torch.manual_seed(0)
    net = PaperLowRankRNN(2, 12, 1, rank=2, full_rank=full_rank)
    path = tmp_path / "model_epoch7.pt"
    torch.save(net.state_dict(), path)
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 7 and ckpt.step is None and ckpt.numbered
    assert ckpt.architecture == ("leaky_rnn" if full_rank else "low_rank_rnn")
    model = ckpt.model
    assert isinstance(model, LeakyRNN) and model.n_states == 12 and model.n_inputs == 2
    assert model.rank == (None if full_rank else 2) and model.alpha == 0.5
    assert next(model.parameters()).dtype == DT
    assert any("defaults" in note for note in ckpt.notes)
    r = np.random.default_rng(0).normal(size=(5, 12))
    u = np.random.default_rng(1).normal(size=(5, 2))
    expected = numpy_leaky_step(net.state_dict(), r, u)
    got = model.step(torch.from_numpy(r), torch.from_numpy(u)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ formats
def _reference_model():
    torch.manual_seed(1)
    return LeakyRNN(3, 8, 2, rank=3)


def _save(sd, path, fmt, metadata=None):
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path),
                  metadata={k: str(v) for k, v in (metadata or {}).items()})
    elif fmt == "npz":
        arrays = {k: v.detach().numpy() for k, v in sd.items()}
        arrays.update({k: np.asarray(v) for k, v in (metadata or {}).items()})
        np.savez(path, **arrays)
    else:
        torch.save({**(metadata or {}), "state_dict": sd} if metadata else sd, path)


@pytest.mark.parametrize("fmt", ["pt", "pth", "ckpt", "bin", "safetensors", "npz"])
def test_every_format_gives_the_same_model(tmp_path, fmt):
    ref = _reference_model()
    path = tmp_path / f"weights.{fmt}"
    _save(ref.state_dict(), path, fmt, metadata={"epoch": 4, "global_step": 40})
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 4 and ckpt.step == 40  # name has no number: stored keys
    x, u = torch.randn(3, 8, dtype=DT), torch.randn(3, 3, dtype=DT)
    torch.testing.assert_close(ckpt.model.step(x, u), ref.to(DT).step(x, u), rtol=0, atol=0)


def test_float32_weights_convert_exactly(tmp_path):
    ref = _reference_model()
    torch.save(ref.state_dict(), tmp_path / "m.pt")
    model = load_checkpoint(tmp_path / "m.pt").model
    for key, value in ref.state_dict().items():
        assert model.state_dict()[key].dtype == DT
        assert torch.equal(model.state_dict()[key], value.to(DT))
    assert load_checkpoint(tmp_path / "m.pt", dtype=torch.float32).model.S_l.dtype == torch.float32


# ------------------------------------------------------------------ layouts
@pytest.mark.parametrize("wrap", ["state_dict", "model_state_dict", "model", "net", "module"])
def test_state_dict_under_container_keys(tmp_path, wrap):
    ref = _reference_model()
    torch.save({wrap: ref.state_dict(), "epoch": 3, "step": 9, "loss": 0.25,
                "optimizer": {"lr": 0.1}}, tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt.architecture == "low_rank_rnn"
    assert ckpt.metadata["loss"] == 0.25 and (ckpt.epoch, ckpt.step) == (3, 9)


def test_doubly_nested_and_dataparallel_prefix(tmp_path):
    ref = _reference_model()
    sd = {f"module.{k}": v for k, v in ref.state_dict().items()}
    torch.save({"model": {"state_dict": sd}, "epoch": 2}, tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt.prefix == "module." and ckpt.architecture == "low_rank_rnn"
    torch.testing.assert_close(ckpt.model.S_l, ref.S_l.to(DT))


class LightningLike(nn.Module):
    def __init__(self, cell=nn.GRU, layers=2, second=False):
        super().__init__()
        self.model = nn.Module()
        self.model.rnn = cell(3, 5, num_layers=layers, batch_first=True)
        self.model.fc = nn.Linear(5, 2)
        if second:
            self.model.encoder = nn.GRU(3, 4, batch_first=True)


def test_nested_torch_gru_found_by_key_pattern(tmp_path):
    torch.manual_seed(0)
    net = LightningLike().double()
    torch.save({"epoch": 5, "global_step": 500, "state_dict": net.state_dict(),
                "hyper_parameters": {"lr": 0.01}}, tmp_path / "epoch=5-step=500.ckpt")
    ckpt = load_checkpoint(tmp_path / "epoch=5-step=500.ckpt")
    assert (ckpt.epoch, ckpt.step) == (5, 500)
    assert ckpt.architecture == "gru" and ckpt.prefix == "model.rnn."
    model = ckpt.model
    assert isinstance(model, TorchRNN) and model.num_layers == 2 and model.n_states == 10
    inputs = torch.randn(2, 6, 3, dtype=DT)
    expected_seq, _ = net.model.rnn(inputs)
    outputs, states = model(inputs)
    torch.testing.assert_close(states[..., 5:], expected_seq, rtol=0, atol=1e-12)
    torch.testing.assert_close(outputs, net.model.fc(expected_seq), rtol=0, atol=1e-12)
    assert any("model.fc.weight" in note for note in ckpt.notes)


def test_several_rnns_need_a_prefix(tmp_path):
    net = LightningLike(second=True)
    torch.save(net.state_dict(), tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "c.pt")
    message = str(info.value)
    assert "ambiguous" in message and "'model.rnn.'" in message and "'model.encoder.'" in message
    assert "prefix" in info.value.fix and str(tmp_path / "c.pt") in message
    ckpt = load_checkpoint(tmp_path / "c.pt", prefix="model.encoder")
    assert ckpt.model.hidden_size == 4 and ckpt.prefix == "model.encoder."
    with pytest.raises(CheckpointError, match="no recognized model under prefix 'model.decoder.'"):
        load_checkpoint(tmp_path / "c.pt", prefix="model.decoder")
    found = find_recurrent_modules(net.state_dict())
    assert set(found) == {"model.rnn.", "model.encoder."}
    assert found["model.rnn."].num_layers == 2 and found["model.rnn."].cells == ("gru",)


@pytest.mark.parametrize("layers", [1, 3])
def test_bare_lstm_state_dict(tmp_path, layers):
    torch.manual_seed(0)
    lstm = nn.LSTM(2, 4, num_layers=layers, batch_first=True).double()
    torch.save(lstm.state_dict(), tmp_path / f"lstm_{layers}.pt")
    ckpt = load_checkpoint(tmp_path / f"lstm_{layers}.pt")
    model = ckpt.model
    assert ckpt.architecture == "lstm" and model.n_states == 2 * layers * 4
    assert any("last layer's h" in note for note in ckpt.notes)
    inputs = torch.randn(3, 5, 2, dtype=DT)
    seq, _ = lstm(inputs)
    outputs, states = model(inputs)
    torch.testing.assert_close(outputs, seq, rtol=0, atol=1e-12)  # identity readout


def test_plain_rnn_tanh_or_relu_is_ambiguous_until_told(tmp_path):
    rnn = nn.RNN(2, 3, nonlinearity="relu", batch_first=True)
    torch.save(rnn.state_dict(), tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match="tanh or relu") as info:
        load_checkpoint(tmp_path / "r.pt")
    assert "rnn_relu" in info.value.fix
    ckpt = load_checkpoint(tmp_path / "r.pt", architecture="rnn_relu")
    x, u = torch.randn(4, 3, dtype=DT), torch.randn(4, 2, dtype=DT)
    expected, _ = rnn.double()(u[:, None], x[None])
    torch.testing.assert_close(ckpt.model.step(x, u), expected[:, 0], rtol=0, atol=1e-12)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "rnn_relu"}))
    assert load_checkpoint(tmp_path / "r.pt").architecture == "rnn_relu"
    with pytest.raises(CheckpointError, match="shapes of rnn_tanh or rnn_relu"):
        load_checkpoint(tmp_path / "r.pt", architecture="gru")


def test_bidirectional_and_projected_rnns_are_rejected(tmp_path):
    torch.save(nn.GRU(2, 3, bidirectional=True).state_dict(), tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="bidirectional"):
        load_checkpoint(tmp_path / "b.pt")
    torch.save(nn.LSTM(2, 4, proj_size=2).state_dict(), tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="proj_size=2"):
        load_checkpoint(tmp_path / "p.pt")


@pytest.mark.parametrize("arch, kwargs, cls", [
    ("rank_one_rnn", dict(n_states=9), RankOneRNN),
    ("xform_rnn", dict(n_inputs=2, n_states=5, n_outputs=3), XFormRNN),
    ("plrnn", dict(n_inputs=2, n_states=5, n_outputs=3), PLRNN),
    ("plrnn", dict(n_inputs=0, n_states=4, n_outputs=1), PLRNN),
    ("gru", dict(n_inputs=2, hidden_size=5, n_outputs=3, num_layers=2), TorchRNN),
    ("lstm", dict(n_inputs=2, hidden_size=5, n_outputs=3), TorchRNN),
])
def test_builtin_architectures_detected_from_keys(tmp_path, arch, kwargs, cls):
    torch.manual_seed(0)
    ref = build_model(arch, **kwargs)
    torch.save(ref.state_dict(), tmp_path / "m.pt")
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.architecture == arch and isinstance(ckpt.model, cls)
    assert ckpt.config == ref.config()
    assert not any("readout" in note for note in ckpt.notes)
    x = torch.randn(3, ref.n_states, dtype=DT)
    u = torch.randn(3, ref.n_inputs, dtype=DT)
    torch.testing.assert_close(ckpt.model.step(x, u), ref.to(DT).step(x, u), rtol=0, atol=0)


def test_detect_architecture_reports_sizes():
    match = detect_architecture(_reference_model().state_dict())
    assert match.architecture == "low_rank_rnn" and match.prefix == ""
    assert match.config == dict(n_inputs=3, n_states=8, n_outputs=2, rank=3)


# ------------------------------------------------------------------ config files
def test_trainer_config_json_is_used(tmp_path):
    torch.manual_seed(0)
    ref = LeakyRNN(2, 6, 1, alpha=0.2, output="sigmoid", confidence=3.0)
    torch.save(ref.state_dict(), tmp_path / "model_epoch0.pt")
    (tmp_path / "config.json").write_text(json.dumps({
        "architecture": ref.architecture, "model": ref.config(),
        "task": {"name": "x"}, "training": {"lr": 0.1}}))
    ckpt = load_checkpoint(tmp_path / "model_epoch0.pt")
    assert ckpt.model.alpha == 0.2 and ckpt.model.output == "sigmoid"
    assert ckpt.config == ref.config()
    assert not any("defaults" in note for note in ckpt.notes)
    # config=False ignores it
    assert load_checkpoint(tmp_path / "model_epoch0.pt", config=False).model.alpha == 0.5


def test_flat_model_json_and_explicit_dict(tmp_path):
    ref = RankOneRNN(n_states=6, alpha=0.25)
    torch.save(ref.state_dict(), tmp_path / "m.pt")
    (tmp_path / "model.json").write_text(json.dumps({"architecture": "rank_one_rnn",
                                                     "alpha": 0.25, "lr": 0.1}))
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.model.alpha == 0.25 and any("ignored entries ['lr']" in n for n in ckpt.notes)
    ckpt = load_checkpoint(tmp_path / "m.pt", config={"architecture": "rank_one_rnn",
                                                      "model": {"x0": 0.1}})
    assert ckpt.model.x0 == 0.1 and ckpt.model.alpha == 0.5


def test_config_sizes_that_disagree_with_the_weights(tmp_path):
    torch.save(LeakyRNN(2, 6, 1).state_dict(), tmp_path / "m.pt")
    (tmp_path / "config.json").write_text(json.dumps(
        {"architecture": "leaky_rnn", "model": {"n_inputs": 2, "n_states": 7, "n_outputs": 1}}))
    with pytest.raises(CheckpointError, match="gives n_states=7 but the weights in the file "
                                              "have n_states=6") as info:
        load_checkpoint(tmp_path / "m.pt")
    assert "config.json" in info.value.fix


def test_bad_config_files(tmp_path):
    torch.save(LeakyRNN(2, 6, 1).state_dict(), tmp_path / "m.pt")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "m.pt")
    assert info.value.path.endswith("config.json") and "JSONDecodeError" in info.value.reason
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "transformer"}))
    with pytest.raises(CheckpointError, match="unknown architecture 'transformer'"):
        load_checkpoint(tmp_path / "m.pt")
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_checkpoint(tmp_path / "m.pt")


def test_explicit_architecture_overrides_and_mismatches(tmp_path):
    torch.save(LeakyRNN(2, 6, 1).state_dict(), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="'plrnn' was requested") as info:
        load_checkpoint(tmp_path / "m.pt", architecture="plrnn")
    assert "'A'" in info.value.fix  # says which keys a PLRNN needs
    with pytest.raises(CheckpointError, match="unknown architecture 'foo'"):
        load_checkpoint(tmp_path / "m.pt", architecture="foo")


# ------------------------------------------------------------------ bad content
def test_unknown_keys_name_what_was_seen(tmp_path):
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)},
               tmp_path / "m.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "m.pt")
    assert "unknown architecture" in info.value.reason
    assert "encoder.weight (3, 3)" in info.value.reason and "decoder.bias (3,)" in info.value.reason
    assert "architecture=" in info.value.fix and "factory" in info.value.fix


def test_missing_and_unexpected_keys(tmp_path):
    sd = LeakyRNN(2, 6, 1).state_dict()
    del sd["W_out.bias"]
    torch.save(sd, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \['W_out.bias'\]"):
        load_checkpoint(tmp_path / "missing.pt")
    sd = LeakyRNN(2, 6, 1).state_dict()
    sd["extra"] = torch.zeros(2)
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra'\]"):
        load_checkpoint(tmp_path / "extra.pt")


def test_wrong_dimensionality_is_reported(tmp_path):
    sd = LeakyRNN(2, 6, 1).state_dict()
    sd["W_in.weight"] = torch.zeros(6)
    torch.save(sd, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="'W_in.weight' has shape \\(6,\\), expected a 2-D"):
        load_checkpoint(tmp_path / "m.pt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_name_the_key(tmp_path, bad):
    sd = LeakyRNN(2, 6, 1).state_dict()
    sd["W_rec"][1, 2] = bad
    torch.save(sd, tmp_path / "model_epoch9.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "model_epoch9.pt")
    assert "'W_rec'" in info.value.reason and "diverged" in info.value.fix
    assert ("1 NaN" if bad != bad else "1 inf") in info.value.reason


@pytest.mark.parametrize("payload, what", [
    (torch.zeros(3), "Tensor"), ([1, 2, 3], "list"), ({"a": 1, "b": "x"}, "dict"), ({}, "dict")])
def test_payloads_without_a_state_dict(tmp_path, payload, what):
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=f"holds a {what}.*no state dict"):
        load_checkpoint(tmp_path / "m.pt")


def test_missing_empty_and_odd_paths(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(tmp_path)
    (tmp_path / "m.h5").write_bytes(b"123")
    with pytest.raises(CheckpointError, match="unknown checkpoint suffix '.h5'"):
        load_checkpoint(tmp_path / "m.h5")


def test_truncated_torch_file(tmp_path):
    torch.save(LeakyRNN(2, 6, 1).state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "cut.pt")
    assert "truncated, corrupt" in info.value.reason and info.value.path.endswith("cut.pt")
    assert "weights_only=False" not in str(info.value)


def test_npz_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "m.npz", W=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="object arrays"):
        load_checkpoint(tmp_path / "m.npz")


def test_safetensors_header_garbage(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"\xff" * 8 + b"{junk")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tmp_path / "m.safetensors")


# ------------------------------------------------------------------ pickles
class _OpensAFile:
    """Unpickling this calls builtins.open(path, "w"): the file appears iff code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("how", ["pickle2", "pickle4", "torch_zip", "torch_legacy"])
def test_code_in_a_pickle_is_never_run(tmp_path, how):
    sentinel = tmp_path / "code_ran"
    payload = {"state_dict": LeakyRNN(1, 2, 1).state_dict(), "evil": _OpensAFile(sentinel)}
    path = tmp_path / "model_epoch1.pt"
    if how.startswith("pickle"):
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=int(how[-1]))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=(how == "torch_zip"))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not sentinel.exists()
    assert "builtins.open" in info.value.reason or "io.open" in info.value.reason
    assert "trust_pickle=True" in info.value.fix and "trust" in info.value.fix
    assert "pickled Python objects" in info.value.reason


def test_trusted_whole_module(tmp_path):
    torch.manual_seed(0)
    ref = XFormRNN(2, 4, 1, alpha=0.3)
    torch.save(ref, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects.*XFormRNN"):
        load_checkpoint(tmp_path / "whole.pt")
    ckpt = load_checkpoint(tmp_path / "whole.pt", trust_pickle=True)
    assert ckpt.architecture == "xform_rnn" and ckpt.model.alpha == 0.3
    assert ckpt.model.J.dtype == DT


def test_read_payload_and_unwrap_metadata(tmp_path):
    torch.save({"epoch": torch.tensor(3), "step": 7, "name": "run1",
                "state_dict": {"a": torch.zeros(1)}}, tmp_path / "x.pt")
    sd, meta, module = unwrap_payload(read_payload(tmp_path / "x.pt"))
    assert list(sd) == ["a"] and module is None
    assert meta == {"epoch": 3, "step": 7, "name": "run1"}


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("name, epoch, step, number", [
    ("model_epoch12.pt", 12, None, None),
    ("model_epoch_12.pt", 12, None, None),
    ("epoch=3-step=1200.ckpt", 3, 1200, None),
    ("ckpt_000100.pt", None, None, 100),
    ("step-5000.safetensors", None, 5000, None),
    ("model_final.pt", None, None, None),
    ("gru128_lr1e-3_epoch07.pth", 7, None, None),
    ("global_step42.bin", None, 42, None),
])
def test_parse_checkpoint_name(name, epoch, step, number):
    parsed = parse_checkpoint_name(name)
    assert (parsed.epoch, parsed.step, parsed.number) == (epoch, step, number)
    assert parsed.numbered == (name != "model_final.pt")


def test_checkpoint_error_is_one_line_with_file_reason_fix():
    err = CheckpointError("/a/b.pt", "bad\nthing", "do\n this")
    assert str(err) == "/a/b.pt: bad thing; fix: do this"
    assert (err.path, err.reason, err.fix) == ("/a/b.pt", "bad thing", "do this")
    assert pickle.loads(pickle.dumps(err)).fix == "do this"
