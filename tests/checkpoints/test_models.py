"""Built-in models: equations, key names, forward == repeated step, config round trip."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import jacrev, vmap

from checkpoints.models import (ARCHITECTURES, PLRNN, TORCH_CELLS, LeakyRNN, RankOneRNN,
                                RecurrentModel, TorchRNN, XFormRNN, build_model)

DT = torch.float64

SMALL = {
    "leaky_rnn": dict(n_inputs=2, n_states=6, n_outputs=3),
    "low_rank_rnn": dict(n_inputs=2, n_states=6, n_outputs=3, rank=2),
    "paper_rnn": dict(n_inputs=2, n_states=6, n_outputs=3),
    "paper_low_rank_rnn": dict(n_inputs=2, n_states=6, n_outputs=3, rank=2),
    "rank_one_rnn": dict(n_states=7),
    "xform_rnn": dict(n_inputs=2, n_states=6, n_outputs=3),
    "plrnn": dict(n_inputs=2, n_states=6, n_outputs=3),
    "gru": dict(n_inputs=2, hidden_size=4, n_outputs=3, num_layers=2),
    "lstm": dict(n_inputs=2, hidden_size=4, n_outputs=3, num_layers=2),
    "rnn_tanh": dict(n_inputs=2, hidden_size=4, n_outputs=3, num_layers=2),
    "rnn_relu": dict(n_inputs=2, hidden_size=4, n_outputs=3, num_layers=2),
}

EXPECTED_KEYS = {
    "leaky_rnn": {"W_in.weight", "W_in.bias", "W_rec", "W_out.weight", "W_out.bias"},
    "low_rank_rnn": {"W_in.weight", "W_in.bias", "S_l", "S_r", "W_out.weight", "W_out.bias"},
    "paper_rnn": {"W_in.weight", "W_in.bias", "W_rec", "W_out.weight", "W_out.bias"},
    "paper_low_rank_rnn": {"W_in.weight", "W_in.bias", "S_l", "S_r", "W_out.weight",
                           "W_out.bias"},
    "rank_one_rnn": {"m", "n", "b"},
    "xform_rnn": {"W_in.weight", "W_in.bias", "J", "W_out.weight", "W_out.bias"},
    "plrnn": {"A", "W", "C", "h", "B"},
}


def make(arch, seed=0):
    torch.manual_seed(seed)
    return build_model(arch, **SMALL[arch]).to(DT)


def test_registry_covers_all_small_configs():
    assert set(SMALL) == set(ARCHITECTURES)
    for arch in ARCHITECTURES:
        assert issubclass(ARCHITECTURES[arch], RecurrentModel)


@pytest.mark.parametrize("arch", sorted(EXPECTED_KEYS))
def test_state_dict_keys_are_documented_ones(arch):
    assert set(make(arch).state_dict()) == EXPECTED_KEYS[arch]


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_forward_equals_repeated_step_and_shapes(arch):
    model = make(arch)
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(3, 9, model.n_inputs, generator=gen, dtype=DT)
    x0 = 0.5 * torch.randn(3, model.n_states, generator=gen, dtype=DT)
    outputs, states = model(inputs, x0)
    assert outputs.shape == (3, 9, model.n_outputs) and states.shape == (3, 9, model.n_states)
    x, xs = x0, []
    for t in range(9):
        x = model.step(x, inputs[:, t])
        xs.append(x)
    torch.testing.assert_close(states, torch.stack(xs, 1), rtol=0, atol=1e-10)
    torch.testing.assert_close(outputs, model.readout(states.reshape(-1, model.n_states))
                               .reshape(3, 9, -1), rtol=0, atol=1e-12)
    assert model.initial_state(5).shape == (5, model.n_states)
    assert model.time == "discrete" and model.architecture == arch


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_config_rebuilds_identical_layout(arch):
    model = make(arch)
    clone = build_model(model.architecture, **model.config())
    assert type(clone) is type(model)
    assert clone.config() == model.config()
    assert {k: v.shape for k, v in clone.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    clone.load_state_dict(model.state_dict())
    x = torch.randn(4, model.n_states, dtype=DT)
    u = torch.randn(4, model.n_inputs, dtype=DT)
    torch.testing.assert_close(clone.to(DT).step(x, u), model.step(x, u), rtol=0, atol=0)


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_step_is_traceable_by_vmap_jacrev(arch):
    model = make(arch)
    x = 0.3 * torch.randn(4, model.n_states, dtype=DT)
    u = torch.randn(4, model.n_inputs, dtype=DT)
    jac = vmap(jacrev(lambda xi, ui: model.step(xi[None], ui[None])[0]))(x, u)
    eps = 1e-6
    fd = torch.stack([(model.step(x + eps * e, u) - model.step(x - eps * e, u)) / (2 * eps)
                      for e in torch.eye(model.n_states, dtype=DT)], dim=-1)
    torch.testing.assert_close(jac, fd, rtol=1e-6, atol=1e-7)


CLOSED_FORMS = [(arch, form) for arch in ("leaky_rnn", "low_rank_rnn", "rank_one_rnn",
                                           "xform_rnn", "plrnn")
                for form in ("step", "velocity") if not (arch == "plrnn" and form == "velocity")]


@pytest.mark.parametrize("arch,form", CLOSED_FORMS)
def test_closed_form_jacobian_and_curvature_equal_autodiff(arch, form):
    """``<form>_jacobian`` against jacrev and ``<form>_curvature`` against the Hessian of
    ``w · F(x)``, at random states and inputs (PLRNN away from its ReLU kinks)."""
    model = make(arch)
    fn = getattr(model, form)
    gen = torch.Generator().manual_seed(5)
    x = 0.7 * torch.randn(4, model.n_states, dtype=DT, generator=gen)
    u = torch.randn(4, model.n_inputs, dtype=DT, generator=gen)
    w = torch.randn(4, model.n_states, dtype=DT, generator=gen)
    jac = vmap(jacrev(lambda xi, ui: fn(xi[None], ui[None])[0]))(x, u)
    torch.testing.assert_close(getattr(model, f"{form}_jacobian")(x, u), jac,
                               rtol=1e-12, atol=1e-13)
    hess = vmap(jacrev(jacrev(lambda xi, ui, wi: (wi * fn(xi[None], ui[None])[0]).sum())))(x, u, w)
    torch.testing.assert_close(getattr(model, f"{form}_curvature")(x, u, w), hess,
                               rtol=1e-12, atol=1e-13)


def test_torch_rnn_names_its_recurrent_module():
    model = make("gru")
    assert model.recurrent_module is model.rnn


# ----------------------------------------------------------------- leaky family
def test_leaky_step_matches_equation_and_velocity():
    model = make("leaky_rnn")
    x = torch.randn(5, 6, dtype=DT)
    u = torch.randn(5, 2, dtype=DT)
    W, Win, b = model.W_rec, model.W_in.weight, model.W_in.bias
    drive = torch.tanh(x @ W.T + u @ Win.T + b)
    torch.testing.assert_close(model.step(x, u), 0.5 * x + 0.5 * drive, rtol=0, atol=1e-15)
    torch.testing.assert_close(model.velocity(x, u), -x + drive, rtol=0, atol=1e-15)
    # leaky map minus identity is alpha times the continuous velocity
    torch.testing.assert_close(model.step(x, u) - x, model.alpha * model.velocity(x, u))


@pytest.mark.parametrize("rank", [None, 2])
def test_leaky_step_and_velocity_are_bit_for_bit_the_plain_expressions(rank):
    # the fused products (addmm) must round exactly as the expressions they replace, so that
    # training runs and analyses do not change; any other shape takes the plain expressions
    torch.manual_seed(3)
    model = LeakyRNN(2, 30, 1, rank=rank, alpha=0.3).double()
    w = model.W

    def plain(x, u):
        recurrent = x @ w.T if rank is None else (x @ model.S_r.T) @ model.S_l.T
        return torch.tanh(recurrent + model.W_in(u))

    for shape in ((64, 30), (30,), (4, 5, 30)):
        x = 3.0 * torch.randn(*shape, dtype=DT)
        u = torch.randn(*shape[:-1], 2, dtype=DT)
        drive = plain(x, u)
        assert torch.equal(model.step(x, u), (1.0 - model.alpha) * x + model.alpha * drive)
        assert torch.equal(model.velocity(x, u), -x + drive)


def test_leaky_jacobian_closed_form():
    torch.manual_seed(3)
    model = LeakyRNN(1, 5, 1, alpha=0.2).to(DT)
    x = torch.randn(1, 5, dtype=DT)
    u = torch.zeros(1, 1, dtype=DT)
    pre = x @ model.W_rec.T + model.W_in.bias
    expected = (0.8 * torch.eye(5, dtype=DT)
                + 0.2 * torch.diag((1 - torch.tanh(pre) ** 2)[0]) @ model.W_rec)
    jac = jacrev(lambda xi: model.step(xi[None], u)[0])(x[0])
    torch.testing.assert_close(jac, expected, rtol=0, atol=1e-14)


def test_low_rank_equals_full_rank_with_product_matrix():
    low = make("low_rank_rnn")
    full = LeakyRNN(2, 6, 3).to(DT)
    with torch.no_grad():
        full.W_rec.copy_(low.S_l @ low.S_r)
        full.W_in.load_state_dict(low.W_in.state_dict())
        full.W_out.load_state_dict(low.W_out.state_dict())
    x, u = torch.randn(4, 6, dtype=DT), torch.randn(4, 2, dtype=DT)
    torch.testing.assert_close(low.step(x, u), full.step(x, u), rtol=0, atol=1e-14)
    torch.testing.assert_close(low.W, full.W_rec)
    assert low.architecture == "low_rank_rnn" and full.architecture == "leaky_rnn"
    assert torch.linalg.matrix_rank(low.W) == 2


def test_leaky_fixed_point_with_zero_recurrence_is_tanh_of_input():
    model = LeakyRNN(2, 4, 1, alpha=0.3).to(DT)
    with torch.no_grad():
        model.W_rec.zero_()
    u = torch.tensor([[0.4, -1.0]], dtype=DT)
    r_star = torch.tanh(model.W_in(u))
    torch.testing.assert_close(model.step(r_star, u), r_star, rtol=0, atol=1e-15)
    x = torch.zeros(1, 4, dtype=DT)
    for _ in range(400):
        x = model.step(x, u)
    torch.testing.assert_close(x, r_star, rtol=0, atol=1e-12)  # contraction rate 0.7


def test_sigmoid_readout_with_confidence():
    model = LeakyRNN(1, 3, 2, output="sigmoid", confidence=4.0).to(DT)
    x = torch.randn(5, 3, dtype=DT)
    torch.testing.assert_close(model.readout(x), torch.sigmoid(4.0 * model.W_out(x)))


def test_leaky_without_inputs_and_with_none_input():
    model = LeakyRNN(0, 3, 1).to(DT)
    x = torch.randn(2, 3, dtype=DT)
    torch.testing.assert_close(model.step(x), model.step(x, torch.zeros(2, 0, dtype=DT)))
    out, states = model(torch.zeros(2, 5, 0, dtype=DT))
    assert states.shape == (2, 5, 3)


# ----------------------------------------------------------------- rank one
def test_rank_one_latent_closes_in_one_dimension():
    torch.manual_seed(0)
    model = RankOneRNN(n_states=50).to(DT)
    with torch.no_grad():
        model.b.copy_(0.1 * torch.randn(50, dtype=DT))
    x = torch.randn(8, 50, dtype=DT)
    kappa = model.kappa(x)
    torch.testing.assert_close(model.velocity(x) @ model.n, model.kappa_velocity(kappa))
    torch.testing.assert_close(model.step(x) - x, 0.5 * model.velocity(x))
    torch.testing.assert_close(model.readout(x)[:, 0], torch.sigmoid(10.0 * (kappa - 1.0)))


def test_rank_one_defaults_match_the_paper():
    torch.manual_seed(0)
    model = RankOneRNN()
    assert (model.n_states, model.n_inputs, model.n_outputs) == (100, 0, 1)
    assert model.alpha == 0.5 and model.confidence == 10.0
    torch.testing.assert_close(model.initial_state(2), torch.full((2, 100), -0.3))
    assert torch.all(model.b == 0)
    # m, n ~ N(0, 1/N): m drawn first, then n from the same generator
    torch.manual_seed(0)
    m = torch.randn(100) / 10.0
    n = torch.randn(100) / 10.0
    torch.testing.assert_close(model.m.detach(), m)
    torch.testing.assert_close(model.n.detach(), n)


# ----------------------------------------------------------------- x-form
def test_xform_velocity_and_euler_step():
    model = make("xform_rnn")
    x, u = torch.randn(4, 6, dtype=DT), torch.randn(4, 2, dtype=DT)
    v = -x + torch.tanh(x) @ model.J.T + u @ model.W_in.weight.T + model.W_in.bias
    torch.testing.assert_close(model.velocity(x, u), v, rtol=0, atol=1e-14)
    torch.testing.assert_close(model.step(x, u), x + 0.5 * v, rtol=0, atol=1e-14)
    torch.testing.assert_close(model.readout(x), model.W_out(torch.tanh(x)))


def test_xform_and_leaky_share_fixed_points_through_the_change_of_variables():
    # x-form fixed point x* = J tanh(x*) + c  <=>  r* = tanh(x*) solves r = tanh(J r + c)
    torch.manual_seed(2)
    xf = XFormRNN(1, 5, 1, gain=0.5).to(DT)
    leaky = LeakyRNN(1, 5, 1).to(DT)
    with torch.no_grad():
        leaky.W_rec.copy_(xf.J)
        leaky.W_in.load_state_dict(xf.W_in.state_dict())
    u = torch.ones(1, 1, dtype=DT)
    x = torch.zeros(1, 5, dtype=DT)
    for _ in range(500):
        x = xf.step(x, u)
    assert float(xf.velocity(x, u).detach().abs().max()) < 1e-12
    r = torch.tanh(x)
    assert float(leaky.velocity(r, u).detach().abs().max()) < 1e-12


# ----------------------------------------------------------------- PLRNN
def test_plrnn_ignores_the_diagonal_of_W():
    model = make("plrnn")
    x, u = torch.randn(3, 6, dtype=DT), torch.randn(3, 2, dtype=DT)
    before = model.step(x, u)
    with torch.no_grad():
        model.W.add_(torch.diag(torch.arange(1.0, 7.0, dtype=DT)))
    torch.testing.assert_close(model.step(x, u), before, rtol=0, atol=0)
    W = model.W_offdiagonal
    expected = model.A * x + torch.relu(x) @ W.T + u @ model.C.T + model.h
    torch.testing.assert_close(before, expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(model.readout(x), x @ model.B.T)


def test_plrnn_exact_fixed_points_per_relu_pattern():
    torch.manual_seed(5)
    n = 3
    model = PLRNN(0, n, 1).to(DT)
    with torch.no_grad():
        model.h.copy_(torch.tensor([0.3, -0.2, 0.5], dtype=DT))
    eye = torch.eye(n, dtype=DT)
    consistent = 0
    for pattern in range(2 ** n):
        d = torch.tensor([(pattern >> i) & 1 for i in range(n)], dtype=DT)
        z = torch.linalg.solve(eye - torch.diag(model.A) - model.W_offdiagonal @ torch.diag(d),
                               model.h)
        if torch.equal((z > 0).to(DT), d):
            consistent += 1
            torch.testing.assert_close(model.step(z[None])[0], z, rtol=0, atol=1e-13)
    assert consistent >= 1


# ----------------------------------------------------------------- torch cells
@pytest.mark.parametrize("cell", TORCH_CELLS)
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_torch_forward_fused_equals_explicit_step(cell, num_layers, bias):
    torch.manual_seed(7)
    model = TorchRNN(3, 5, 2, cell=cell, num_layers=num_layers, bias=bias).to(DT)
    layers = 2 if cell == "lstm" else 1
    assert model.n_states == layers * num_layers * 5
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 11, 3, generator=gen, dtype=DT)
    x0 = torch.randn(4, model.n_states, generator=gen, dtype=DT) * 0.5
    outputs, states = model(inputs, x0)
    x, xs = x0, []
    for t in range(11):
        x = model.step(x, inputs[:, t])
        xs.append(x)
    torch.testing.assert_close(states, torch.stack(xs, 1), rtol=0, atol=1e-10)
    # the last layer's h over time is what the fused module returns as its output sequence
    hidden = model._to_hidden(x0)
    seq, _ = model.rnn(inputs, hidden)
    h_last = states[..., (num_layers - 1) * 5: num_layers * 5]
    torch.testing.assert_close(seq, h_last, rtol=0, atol=1e-10)
    torch.testing.assert_close(outputs, model.readout_layer(h_last), rtol=0, atol=1e-12)


def test_gru_step_matches_gru_cell():
    torch.manual_seed(1)
    model = TorchRNN(2, 4, 1, cell="gru").to(DT)
    cell = nn.GRUCell(2, 4).to(DT)
    with torch.no_grad():
        cell.weight_ih.copy_(model.rnn.weight_ih_l0)
        cell.weight_hh.copy_(model.rnn.weight_hh_l0)
        cell.bias_ih.copy_(model.rnn.bias_ih_l0)
        cell.bias_hh.copy_(model.rnn.bias_hh_l0)
    x, u = torch.randn(6, 4, dtype=DT), torch.randn(6, 2, dtype=DT)
    torch.testing.assert_close(model.step(x, u), cell(u, x), rtol=0, atol=1e-14)


def test_lstm_state_layout_is_h_then_c():
    torch.manual_seed(1)
    model = TorchRNN(2, 3, 1, cell="lstm", num_layers=2).to(DT)
    x, u = torch.randn(2, 12, dtype=DT), torch.randn(2, 2, dtype=DT)
    h0, c0 = model._to_hidden(x)
    _, (h1, c1) = model.rnn(u[:, None], (h0, c0))
    nxt = model.step(x, u)
    torch.testing.assert_close(nxt[:, :6], torch.cat([h1[0], h1[1]], -1), rtol=0, atol=1e-12)
    torch.testing.assert_close(nxt[:, 6:], torch.cat([c1[0], c1[1]], -1), rtol=0, atol=1e-12)


def test_check_module_rejects_bidirectional_and_projections():
    assert TorchRNN.check_module(nn.GRU(2, 3)) == "gru"
    assert TorchRNN.check_module(nn.RNN(2, 3, nonlinearity="relu")) == "rnn_relu"
    with pytest.raises(ValueError, match="bidirectional"):
        TorchRNN.check_module(nn.GRU(2, 3, bidirectional=True))
    with pytest.raises(ValueError, match="proj_size"):
        TorchRNN.check_module(nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(ValueError, match="not an nn.GRU"):
        TorchRNN.check_module(nn.Linear(2, 3))


# ----------------------------------------------------------------- build_model errors
def test_build_model_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown architecture 'transformer'.*leaky_rnn"):
        build_model("transformer")
    with pytest.raises(ValueError, match="does not take \\['hidden'\\]"):
        build_model("leaky_rnn", n_inputs=1, n_states=2, n_outputs=1, hidden=3)
    with pytest.raises(ValueError, match="needs rank"):
        build_model("low_rank_rnn", n_inputs=1, n_states=2, n_outputs=1)
    with pytest.raises(ValueError, match="contradicts"):
        build_model("gru", n_inputs=1, hidden_size=2, n_outputs=1, cell="lstm")
    with pytest.raises(ValueError, match="alpha"):
        LeakyRNN(1, 2, 1, alpha=0.0)
    with pytest.raises(ValueError, match="output"):
        LeakyRNN(1, 2, 1, output="softmax")
    with pytest.raises(ValueError, match="n_states"):
        LeakyRNN(1, 0, 1)
    with pytest.raises(ValueError, match="cell"):
        TorchRNN(1, 2, 1, cell="transformer")


def test_build_model_aliases():
    model = build_model("gru", n_inputs=1, n_states=5, n_outputs=1)
    assert model.hidden_size == 5 and model.cell == "gru"
    model = build_model("leaky_rnn", n_inputs=1, n_states=5, n_outputs=1, rank=2)
    assert model.architecture == "low_rank_rnn" and model.S_l.shape == (5, 2)


def test_forward_rejects_wrong_input_shape():
    model = make("leaky_rnn")
    with pytest.raises(ValueError, match=r"\(batch, time, 2\)"):
        model(torch.zeros(3, 2, dtype=DT))


def test_initialization_scales():
    torch.manual_seed(0)
    model = LeakyRNN(1, 400, 1, gain=1.5)
    assert math.isclose(float(model.W_rec.detach().std()), 1.5 / 20, rel_tol=0.02)
    model = LeakyRNN(1, 400, 1, rank=3)
    assert math.isclose(float(model.S_l.detach().std()), 1 / 20, rel_tol=0.05)
    assert math.isclose(float(model.S_r.detach().std()), 1.0, rel_tol=0.05)
    plr = PLRNN(1, 50, 1)
    assert np.allclose(np.diag(plr.W.detach().numpy()), 0)
