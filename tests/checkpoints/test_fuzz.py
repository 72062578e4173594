"""Property / fuzz tests: corrupted files give a Checkpoint or a CheckpointError, nothing else.

And no code from a file ever runs: every pickle here carries a payload that would create a
sentinel file if it were unpickled for real.
"""
import io
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

from checkpoints import Checkpoint, CheckpointError, CheckpointSeries, LeakyRNN, load_checkpoint

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _fresh(tmp_path) -> Path:
    """A new directory per hypothesis example (tmp_path is shared by all examples)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _state():
    torch.manual_seed(0)
    return LeakyRNN(2, 4, 1, rank=2).state_dict()


def _torch_bytes(legacy=False):
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "state_dict": _state()}, buffer,
               _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def _npz_bytes():
    buffer = io.BytesIO()
    np.savez(buffer, epoch=np.asarray(1), **{k: v.numpy() for k, v in _state().items()})
    return buffer.getvalue()


VALID = {
    ".pt": _torch_bytes(),
    ".pth": _torch_bytes(legacy=True),
    ".safetensors": save_safetensors({k: v.contiguous() for k, v in _state().items()}),
    ".npz": _npz_bytes(),
}


def _mutate(data: bytes, kind: str, position: float, payload: bytes) -> bytes:
    index = int(position * len(data))
    if kind == "truncate":
        return data[:index]
    if kind == "flip":
        chunk = bytes(b ^ 0xFF for b in payload) or b"\xff"
        return data[:index] + chunk + data[index + len(chunk):]
    if kind == "insert":
        return data[:index] + payload + data[index:]
    return data[:index] + data[index + max(1, len(payload)):]  # delete


def _check(path):
    try:
        result = load_checkpoint(path, config=False)
    except CheckpointError as error:
        assert error.path == str(path) or error.path is None or error.path.endswith(".json")
        assert error.reason and error.fix
        assert "\n" not in str(error)
        return None
    assert isinstance(result, Checkpoint)
    for value in result.model.state_dict().values():  # anything that loads is finite
        assert bool(torch.isfinite(value).all())
    return result


@FUZZ
@given(suffix=st.sampled_from(sorted(VALID)),
       kind=st.sampled_from(["truncate", "flip", "insert", "delete"]),
       position=st.floats(0.0, 1.0, exclude_max=True),
       payload=st.binary(min_size=0, max_size=16))
def test_corrupted_files_raise_checkpoint_errors_only(tmp_path, suffix, kind, position, payload):
    path = _fresh(tmp_path) / f"model_epoch1{suffix}"
    path.write_bytes(_mutate(VALID[suffix], kind, position, payload))
    _check(path)


@FUZZ
@given(suffix=st.sampled_from([".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npz"]),
       data=st.binary(min_size=0, max_size=512))
def test_random_bytes(tmp_path, suffix, data):
    path = _fresh(tmp_path) / f"random{suffix}"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        load_checkpoint(path, config=False)


@pytest.mark.parametrize("suffix", sorted(VALID))
def test_every_truncation_point_of_a_small_file(tmp_path, suffix):
    data = VALID[suffix]
    step = max(1, len(data) // 60)
    for cut in range(0, len(data), step):
        path = tmp_path / f"cut_{cut}{suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load_checkpoint(path, config=False)


class _CreatesSentinel:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@FUZZ
@given(protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
       where=st.sampled_from(["top", "nested", "inside_state_dict", "only"]),
       suffix=st.sampled_from([".pt", ".pth", ".ckpt", ".bin"]),
       container=st.sampled_from(["pickle", "torch_zip", "torch_legacy"]))
def test_malicious_pickles_never_run(tmp_path, protocol, where, suffix, container):
    tmp_path = _fresh(tmp_path)
    sentinel = tmp_path / "code_ran"
    evil = _CreatesSentinel(sentinel)
    state = _state()
    payload = {"top": {"state_dict": state, "x": evil},
               "nested": {"model": {"state_dict": state, "meta": [1, evil]}},
               "inside_state_dict": {**state, "W_rec": evil},
               "only": evil}[where]
    path = tmp_path / f"model_epoch3{suffix}"
    if container == "pickle":
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=protocol)
    else:
        torch.save(payload, path, pickle_protocol=max(protocol, 2),
                   _use_new_zipfile_serialization=container == "torch_zip")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, config=False)
    assert not sentinel.exists()
    assert "pickled Python objects" in info.value.reason
    assert "trust_pickle=True" in info.value.fix and "only if you trust" in info.value.fix
    series = CheckpointSeries.from_dir(tmp_path)
    assert list(series) == [] and len(series.problems) == 1
    assert not sentinel.exists()


@FUZZ
@given(kinds=st.lists(st.sampled_from(["good", "truncate", "flip", "random", "empty"]),
                      min_size=1, max_size=6),
       seed=st.integers(0, 2 ** 16))
def test_series_over_a_mix_of_good_and_bad_files(tmp_path, kinds, seed):
    run = _fresh(tmp_path)
    rng = np.random.default_rng(seed)
    data = VALID[".pt"]
    for epoch, kind in enumerate(kinds):
        if kind == "good":
            blob = data
        elif kind == "truncate":
            blob = data[: int(rng.integers(1, len(data) - 1))]
        elif kind == "flip":
            blob = bytearray(data)
            blob[int(rng.integers(0, len(data)))] ^= 0xFF
            blob = bytes(blob)
        elif kind == "random":
            blob = rng.bytes(int(rng.integers(1, 400)))
        else:
            blob = b""
        (run / f"model_epoch{epoch}.pt").write_bytes(blob)
    series = CheckpointSeries.from_dir(run)
    loaded = list(series)
    assert len(loaded) + len(series.problems) == len(kinds)
    assert [c.epoch for c in loaded] == sorted(c.epoch for c in loaded)
    good = {i for i, k in enumerate(kinds) if k == "good"}
    assert good <= {c.epoch for c in loaded}
    bad_paths = {p.path for p in series.problems}
    assert all(str(run / f"model_epoch{i}.pt") in bad_paths
               for i, k in enumerate(kinds) if k in ("truncate", "random", "empty"))
