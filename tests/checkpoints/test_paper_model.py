"""The ghost paper's row-vector model: recognized from its weights, dynamics as the authors'."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from checkpoints import CheckpointError, PaperRNN, load_checkpoint


def _authors_state_dict(n=12, k=2, m=1, o=1, seed=0):
    """A state dict laid out as the authors' scripts save it (float32, their key names)."""
    g = torch.Generator().manual_seed(seed)
    return {"S_l": torch.randn(n, k, generator=g) / n ** 0.5,
            "S_r": torch.randn(k, n, generator=g),
            "W_in.weight": torch.rand(n, m, generator=g) - 0.5,
            "W_in.bias": 0.1 * torch.randn(n, generator=g),
            "W_out.weight": torch.rand(o, k, generator=g) - 0.5,
            "W_out.bias": torch.rand(o, generator=g) - 0.5}


def _authors_step(sd, r, u, alpha=0.5):
    """The authors' equations written independently in numpy (row vectors, float64)."""
    p = {k: v.double().numpy() for k, v in sd.items()}
    z = np.tanh(u @ p["W_in.weight"].T + p["W_in.bias"] + r @ (p["S_l"] @ p["S_r"]))
    return (1 - alpha) * r + alpha * z


def _authors_output(sd, r, g=np.tanh):
    p = {k: v.double().numpy() for k, v in sd.items()}
    return g((r @ p["S_l"]) @ p["W_out.weight"].T + p["W_out.bias"])


@pytest.mark.parametrize("n,k,m,o", [(12, 2, 1, 1), (30, 3, 2, 4), (7, 1, 3, 2)])
def test_authors_files_load_without_options_and_match_their_equations(tmp_path, n, k, m, o):
    sd = _authors_state_dict(n, k, m, o)
    path = tmp_path / "model_epoch3.pt"
    torch.save(sd, path)
    ckpt = load_checkpoint(path)
    assert ckpt.architecture == "paper_low_rank_rnn"
    assert isinstance(ckpt.model, PaperRNN) and ckpt.model.rank == k
    assert ckpt.convention == "row" and "latent" in ckpt.convention_reason
    rng = np.random.default_rng(1)
    r = rng.uniform(-1, 1, (5, n))
    u = rng.normal(size=(5, m))
    x = torch.from_numpy(r)
    got = ckpt.model.step(x, torch.from_numpy(u)).detach().numpy()
    np.testing.assert_allclose(got, _authors_step(sd, r, u), rtol=0, atol=1e-12)
    vel = ckpt.model.velocity(x, torch.from_numpy(u)).detach().numpy()
    np.testing.assert_allclose(vel, (_authors_step(sd, r, u) - r) / 0.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ckpt.model.readout(x).detach().numpy(), _authors_output(sd, r),
                               rtol=0, atol=1e-12)


def test_closed_form_derivatives_equal_autograd():
    torch.manual_seed(0)
    for rank in (2, None):
        model = PaperRNN(2, 9, 1, rank=rank).double()
        x = torch.randn(4, 9, dtype=torch.float64) * 0.5
        u = torch.randn(4, 2, dtype=torch.float64)
        w = torch.randn(4, 9, dtype=torch.float64)
        for name in ("step", "velocity"):
            fn = getattr(model, name)
            jac = torch.stack([torch.autograd.functional.jacobian(
                lambda xi, fn=fn, b=b, u=u: fn(xi[None], u[b:b + 1])[0], x[b]) for b in range(4)])
            closed = getattr(model, f"{name}_jacobian")(x, u)
            torch.testing.assert_close(closed, jac, rtol=0, atol=1e-12)
            hess = torch.stack([torch.autograd.functional.hessian(
                lambda xi, fn=fn, b=b, u=u, w=w: (w[b] * fn(xi[None], u[b:b + 1])[0]).sum(),
                x[b])
                for b in range(4)])
            torch.testing.assert_close(getattr(model, f"{name}_curvature")(x, u, w), hess,
                                       rtol=0, atol=1e-12)


def test_low_rank_form_reproduces_the_fixed_point_equation():
    torch.manual_seed(3)
    model = PaperRNN(1, 20, 1, rank=2).double()
    u = torch.tensor([0.4], dtype=torch.float64)
    form = model.low_rank_form(u)
    assert form["left"].shape == (20, 2) and form["right"].shape == (2, 20)
    assert form["nonlinearity"] == "tanh" and form["bias"].dtype == torch.float64
    r = torch.randn(3, 20, dtype=torch.float64)
    # z = tanh(c + L R r) in column form equals the model's tanh(W_in u + b + r S_l S_r)
    z_form = torch.tanh(form["bias"] + (r @ form["right"].T) @ form["left"].T)
    z_model = model.velocity(r, u.expand(3, 1)) + r
    torch.testing.assert_close(z_form, z_model, rtol=0, atol=1e-12)
    torch.testing.assert_close(r @ form["right"].T, model.latent(r), rtol=0, atol=1e-14)
    full = PaperRNN(1, 6, 1).double()
    assert full.low_rank_form() is None  # a random full-rank matrix has no rank <= 3 form
    with torch.no_grad():
        full.W_rec.copy_(torch.outer(torch.randn(6, dtype=torch.float64),
                                      torch.randn(6, dtype=torch.float64)))
    form = full.low_rank_form()
    assert form["left"].shape == (6, 1)
    torch.testing.assert_close(form["left"] @ form["right"], full.W_rec.T, rtol=0, atol=1e-12)


def test_full_rank_w_rec_convention_from_flag_or_config(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {"W_rec": torch.randn(8, 8, generator=g) / 3,
          "W_in.weight": torch.randn(8, 1, generator=g),
          "W_in.bias": torch.randn(8, generator=g), "W_out.weight": torch.randn(1, 8, generator=g),
          "W_out.bias": torch.zeros(1)}
    path = tmp_path / "ckpt.pt"
    torch.save(sd, path)
    default = load_checkpoint(path)
    assert default.architecture == "leaky_rnn" and default.convention == "column"
    assert "--convention row" in default.convention_reason
    row = load_checkpoint(path, convention="row")
    assert row.architecture == "paper_rnn" and row.convention == "row"
    x = torch.randn(3, 8, dtype=torch.float64)
    w = sd["W_rec"].double()
    expect = 0.5 * x + 0.5 * torch.tanh(sd["W_in.bias"].double() + x @ w)
    torch.testing.assert_close(row.model.step(x), expect, rtol=0, atol=1e-12)
    expect_col = 0.5 * x + 0.5 * torch.tanh(sd["W_in.bias"].double() + x @ w.T)
    torch.testing.assert_close(default.model.step(x), expect_col, rtol=0, atol=1e-12)
    (tmp_path / "config.json").write_text(json.dumps({"convention": "row"}))
    from_config = load_checkpoint(path)
    assert from_config.convention == "row" and "config.json" in from_config.convention_reason


def test_contradicting_convention_is_one_line_naming_the_shape(tmp_path):
    path = tmp_path / "model_epoch0.pt"
    torch.save(_authors_state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, convention="column")
    text = str(info.value)
    assert "\n" not in text and "(1, 2)" in text and str(path) in text and "fix:" in text
