"""Custom model factories: 'pkg.module:build' and 'path/to/file.py:build'."""
import textwrap

import pytest
import torch
from torch import nn

from checkpoints import (CheckpointError, CheckpointSeries, build_from_factory, load_checkpoint,
                         load_factory)

MODULE_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    class Tanh(nn.Module):
        """x <- tanh(w x + b u), with a discrete step."""
        def __init__(self, n=3):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(n, n))
            self.b = nn.Parameter(torch.zeros(n, 1))
            self.n_states, self.n_inputs = n, 1

        def step(self, x, u):
            return torch.tanh(x @ self.w.T + u @ self.b.T)

    def build():
        return Tanh()

    def build_sized(state_dict):
        model = Tanh(state_dict["w"].shape[0])
        model.load_state_dict(state_dict)
        return model

    def build_sized_no_load(state_dict):
        return Tanh(state_dict["w"].shape[0])

    def build_gru():
        return nn.GRU(2, 4, batch_first=True)

    def not_a_module():
        return 3

    def no_dynamics():
        return nn.Linear(2, 2)

    def broken():
        raise RuntimeError("boom")

    NOT_CALLABLE = 5
''')


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(MODULE_SOURCE)
    return path


def tanh_state(n=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(n, n, generator=gen), "b": torch.randn(n, 1, generator=gen)}


def test_file_factory_zero_argument_loads_state_dict(factory_file):
    sd = tanh_state()
    model = build_from_factory(f"{factory_file}:build", sd)
    torch.testing.assert_close(model.w.detach(), sd["w"])


@pytest.mark.parametrize("name", ["build_sized", "build_sized_no_load"])
def test_one_argument_factory_gets_the_state_dict(factory_file, name):
    sd = tanh_state(n=5)
    model = build_from_factory(f"{factory_file}:{name}", sd)
    assert model.n_states == 5
    torch.testing.assert_close(model.b.detach(), sd["b"])  # loaded either by it or after it


def test_module_factory_on_sys_path(tmp_path, monkeypatch):
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = load_factory("userpkg.nets:build")
    assert callable(factory) and factory().n_states == 3


def test_callable_factory_and_torch_rnn(factory_file):
    gru = nn.GRU(2, 4, batch_first=True)
    model = build_from_factory(lambda: nn.GRU(2, 4, batch_first=True), gru.state_dict())
    torch.testing.assert_close(model.weight_hh_l0, gru.weight_hh_l0)
    assert isinstance(build_from_factory(f"{factory_file}:build_gru", gru.state_dict()), nn.GRU)


@pytest.mark.parametrize("spec, match", [
    ("no_colon_here", "no ':function' part"),
    ("pkg.module:", "malformed"),
    ("definitely_not_a_module_xyz:build", "cannot import module"),
    ("missing/file.py:build", "does not exist"),
])
def test_bad_specs(spec, match):
    with pytest.raises(CheckpointError, match=match):
        load_factory(spec)


def test_bad_attributes_and_results(factory_file):
    with pytest.raises(CheckpointError, match="has no attribute 'nope'") as info:
        load_factory(f"{factory_file}:nope")
    assert "build_sized" in info.value.fix
    with pytest.raises(CheckpointError, match="not callable"):
        load_factory(f"{factory_file}:NOT_CALLABLE")
    sd = tanh_state()
    with pytest.raises(CheckpointError, match="returned a int, not a torch.nn.Module"):
        build_from_factory(f"{factory_file}:not_a_module", sd)
    with pytest.raises(CheckpointError, match="neither step"):
        build_from_factory(f"{factory_file}:no_dynamics", nn.Linear(2, 2).state_dict())
    with pytest.raises(CheckpointError, match="raised RuntimeError: boom"):
        build_from_factory(f"{factory_file}:broken", sd)
    with pytest.raises(CheckpointError, match="does not fit") as info:
        build_from_factory(f"{factory_file}:build", {"w": torch.zeros(3, 3)})
    assert "'b'" in info.value.reason


def test_file_with_an_import_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_real_module_qq\n")
    with pytest.raises(CheckpointError, match="importing the factory file failed"):
        load_factory(f"{bad}:build")


def test_load_checkpoint_and_series_with_factory(tmp_path, factory_file):
    runs = tmp_path / "run"
    runs.mkdir()
    for epoch in (1, 2, 10):
        torch.save({"model": {f"net.{k}": v for k, v in tanh_state(seed=epoch).items()},
                    "epoch": epoch}, runs / f"ckpt_{epoch:04d}.pt")
    ckpt = load_checkpoint(runs / "ckpt_0002.pt", model_factory=f"{factory_file}:build",
                           prefix="net")
    assert ckpt.architecture == "custom" and ckpt.epoch == 2
    assert ckpt.model.w.dtype == torch.float64
    torch.testing.assert_close(ckpt.model.w.detach(), tanh_state(seed=2)["w"].double())
    series = CheckpointSeries.from_dir(runs, model_factory=f"{factory_file}:build", prefix="net.")
    assert series.epochs == [1, 2, 10]
    assert [c.epoch for c in series] == [1, 2, 10] and not series.problems
    with pytest.raises(CheckpointError, match="no keys under prefix 'other.'"):
        load_checkpoint(runs / "ckpt_0002.pt", model_factory=f"{factory_file}:build",
                        prefix="other")
