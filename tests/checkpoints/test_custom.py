"""Custom models without ceremony: only step(x, u) or velocity(x, u); sizes inferred."""
from __future__ import annotations

import textwrap

import pytest
import torch

import fixedpoints as fp
from checkpoints import CheckpointError, CheckpointSeries, LeakyRNN, load_checkpoint
from checkpoints.custom import CustomModel, infer_sizes

SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    class Leaky(nn.Module):
        """r <- r/2 + tanh(W r + W_in u + b)/2, sizes nowhere but in the weights."""
        def __init__(self, n=7, m=2):
            super().__init__()
            self.W_rec = nn.Parameter(torch.zeros(n, n))
            self.W_in = nn.Linear(m, n)
            self.W_out = nn.Linear(n, 1)

        def step(self, x, u):
            return 0.5 * x + 0.5 * torch.tanh(x @ self.W_rec.T + self.W_in(u))

    class Autonomous(nn.Module):
        """dx/dt = -x + J tanh(x): no input at all."""
        def __init__(self, n=5):
            super().__init__()
            self.J = nn.Parameter(torch.zeros(n, n))

        def velocity(self, x):
            return -x + torch.tanh(x) @ self.J.T

    class Scaled(nn.Module):
        """Runs with any state size: ambiguous."""
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.ones(4, 4))
            self.c = nn.Parameter(torch.ones(6))

        def step(self, x, u):
            return 0.9 * x

    def leaky():
        return Leaky()

    def autonomous():
        return Autonomous()

    def scaled():
        return Scaled()
''')


@pytest.fixture
def models_file(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(SOURCE)
    return path


def _leaky_state(seed=0, n=7, m=2):
    torch.manual_seed(seed)
    ref = LeakyRNN(m, n, 1)
    return ref, ref.state_dict()


def test_step_only_module_gets_its_sizes_and_closed_form_equal_derivatives(tmp_path, models_file):
    ref, sd = _leaky_state()
    torch.save(sd, tmp_path / "model_epoch0.pt")
    ckpt = load_checkpoint(tmp_path / "model_epoch0.pt", model_factory=f"{models_file}:leaky")
    assert isinstance(ckpt.model, CustomModel)
    assert (ckpt.model.n_states, ckpt.model.n_inputs) == (7, 2)
    u = torch.tensor([0.3, -0.2], dtype=torch.float64)
    custom = fp.from_module(ckpt.model, input=u)
    builtin = fp.from_module(ref.double(), input=u)
    assert custom.jacobian_fn is not None and custom.curvature_fn is None  # torch.func, batched
    x = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(custom.velocity(x), builtin.velocity(x), rtol=0, atol=1e-14)
    torch.testing.assert_close(custom.jacobian(x), builtin.jacobian(x), rtol=0, atol=1e-12)
    y = x + 0.5  # a new batch after the cached one: never the stale Jacobian
    torch.testing.assert_close(custom.jacobian(y), builtin.jacobian(y), rtol=0, atol=1e-12)
    torch.testing.assert_close(custom.jacobian(x), builtin.jacobian(x), rtol=0, atol=1e-12)
    w = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(custom.curvature(x, w), builtin.curvature(x, w), rtol=0,
                               atol=1e-12)
    # u absent means zero input
    torch.testing.assert_close(ckpt.model.step(x), ckpt.model.module.step(
        x, torch.zeros(5, 2, dtype=torch.float64)))


def test_module_without_input_works_with_u_absent(tmp_path, models_file):
    torch.manual_seed(1)
    torch.save({"J": torch.randn(5, 5) / 2}, tmp_path / "ckpt_3.pt")
    ckpt = load_checkpoint(tmp_path / "ckpt_3.pt", model_factory=f"{models_file}:autonomous")
    assert (ckpt.model.n_states, ckpt.model.n_inputs) == (5, 0)
    dyn = fp.from_module(ckpt.model)
    assert dyn.time == "continuous" and dyn.n_inputs == 0
    x = torch.randn(4, 5, dtype=torch.float64)
    j = ckpt.model.module.J.detach()
    torch.testing.assert_close(dyn.velocity(x), -x + torch.tanh(x) @ j.T, rtol=0, atol=1e-14)
    found = fp.find_fixed_points(dyn, torch.randn(16, 5, dtype=torch.float64).numpy())
    assert len(found) >= 1  # the origin is a fixed point of this flow


def test_only_ambiguous_inference_errors_and_names_the_attribute(tmp_path, models_file):
    torch.save({"a": torch.ones(4, 4), "c": torch.ones(6)}, tmp_path / "model_epoch0.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "model_epoch0.pt", model_factory=f"{models_file}:scaled")
    text = str(info.value)
    assert "n_states" in text and "[4, 6]" in text and "\n" not in text
    assert str(tmp_path / "model_epoch0.pt") in text


def test_series_of_custom_checkpoints(tmp_path, models_file):
    for e in range(3):
        torch.save(_leaky_state(seed=e)[1], tmp_path / f"model_epoch{e}.pt")
    series = CheckpointSeries.from_dir(tmp_path, model_factory=f"{models_file}:leaky")
    models = [c.model for c in series]
    assert len(models) == 3 and all(m.n_states == 7 for m in models)
    assert series.problems == []


def test_infer_sizes_prefers_stated_attributes():
    class Stated(torch.nn.Module):
        n_states, n_inputs = 3, 1

        def step(self, x, u):
            return x

    assert infer_sizes(Stated()) == (3, 1)
