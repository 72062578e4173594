"""Conformance of every adapter: shapes, dtypes, Jacobian against finite differences, the
user's model untouched, and the dynamics equal to torch's own modules."""
import numpy as np
import pytest
import torch
from torch import nn

import fixedpoints as fp


class LeakyStep(nn.Module):
    """A custom discrete model: x <- (1-a) x + a tanh(W x + B u)."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(5, 5) * 0.8)
        self.B = nn.Parameter(torch.randn(5, 2))
        self.n_states, self.n_inputs = 5, 2
        self.dropout = nn.Dropout(0.5)

    def step(self, x, u):
        return 0.5 * x + 0.5 * torch.tanh(self.dropout(x @ self.W.T) + u @ self.B.T)


class Flow(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(4, 4))
        self.hidden_size = 4

    def velocity(self, x, u):
        return -x + torch.tanh(x @ self.W.T)

    def curvature(self, x, u, weights):  # Σ_k w_k ∇²f_k = Wᵀ diag(w tanh'') W
        t = torch.tanh(x @ self.W.T)
        return self.W.T @ ((weights * -2 * t * (1 - t ** 2)).unsqueeze(-1) * self.W)


def modules():
    torch.manual_seed(0)
    return [
        nn.RNN(3, 6), nn.RNN(3, 6, nonlinearity="relu", num_layers=2), nn.GRU(3, 6),
        nn.GRU(3, 6, num_layers=2),
        nn.LSTM(3, 5, num_layers=2), nn.RNNCell(3, 6), nn.GRUCell(3, 6), nn.LSTMCell(3, 5),
        LeakyStep(), Flow(),
    ]


@pytest.mark.parametrize("module", modules(), ids=lambda m: type(m).__name__)
def test_adapter_conformance_and_model_untouched(module):
    module.train()
    for p in module.parameters():
        p.grad = torch.ones_like(p)
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    flags = [p.requires_grad for p in module.parameters()]
    n_in = getattr(module, "input_size", getattr(module, "n_inputs", 0))
    u = np.linspace(-0.5, 0.5, n_in) if n_in else None
    dyn = fp.from_module(module, input=u)
    x = torch.randn(7, dyn.n_states, dtype=torch.float64) * 0.5
    v = dyn.velocity(x)
    assert v.shape == (7, dyn.n_states) and v.dtype == torch.float64
    J = dyn.jacobian(x)
    assert J.shape == (7, dyn.n_states, dyn.n_states)
    eps = 1e-6
    fd = torch.stack([(dyn.velocity(x + eps * e) - dyn.velocity(x - eps * e)) / (2 * eps)
                      for e in torch.eye(dyn.n_states, dtype=torch.float64)], dim=-1)
    torch.testing.assert_close(J, fd, atol=1e-7, rtol=1e-6)
    # Hessian of the speed (closed-form curvature where the adapter has one, else autograd)
    # against central differences of the autograd gradient of q
    def grad_q(states):
        states = states.clone().requires_grad_(True)
        return torch.autograd.grad(dyn.speed(states).sum(), states)[0]
    H = dyn.speed_hessian(x)
    assert H.shape == (7, dyn.n_states, dyn.n_states)
    fd_h = torch.stack([(grad_q(x + eps * e) - grad_q(x - eps * e)) / (2 * eps)
                        for e in torch.eye(dyn.n_states, dtype=torch.float64)], dim=-1)
    torch.testing.assert_close(H, fd_h, atol=1e-7, rtol=1e-6)
    fp.find_fixed_points(dyn, x.numpy())
    # untouched: weights, requires_grad, .grad, training mode
    assert module.training
    assert [p.requires_grad for p in module.parameters()] == flags
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in module.parameters())
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == before[k].dtype


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
def test_torch_recurrent_modules_step_like_torch(cls):
    torch.manual_seed(1)
    module = cls(3, 4, num_layers=2, batch_first=True).double()
    u = torch.randn(2, 5, 3, dtype=torch.float64)
    out, _ = module(u)
    dyn = fp.from_module(module)
    x = torch.zeros(2, dyn.n_states, dtype=torch.float64)
    for t in range(5):
        x = dyn.step(x, u[:, t])
    top_h = x[:, 4:8]  # layer 1's h is the second block
    torch.testing.assert_close(top_h, out[:, -1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("module", [nn.GRU(3, 7), nn.GRUCell(3, 7), nn.RNN(3, 7), nn.RNNCell(3, 7),
                                    nn.RNN(3, 7, nonlinearity="relu")],
                         ids=lambda m: f"{type(m).__name__}-{getattr(m, 'nonlinearity', '')}")
def test_closed_form_curvature_equals_double_backward(module):
    """The adapters' closed-form Σ_k v_k ∇²v_k gives the autograd Hessian of q to round-off."""
    dyn = fp.from_module(module, input=[0.3, -0.2, 0.5])
    assert dyn.curvature_fn is not None
    x = torch.randn(9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = dyn.speed_hessian(x)
    autograd = dyn._replace(curvature_fn=None).speed_hessian(x)
    torch.testing.assert_close(exact, autograd, atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(exact, exact.transpose(1, 2), atol=1e-14, rtol=0)


class TwoForms(nn.Module):
    """A map and a flow with different derivatives: each time type must get its own."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(4, 4, generator=torch.Generator().manual_seed(2)))
        self.n_states = 4

    def _t(self, x):
        return torch.tanh(x @ self.W.T)

    def step(self, x, u):
        return 0.5 * x + 0.5 * self._t(x)

    def velocity(self, x, u):
        return -x + self._t(x)

    def step_jacobian(self, x, u):
        slope = 1 - self._t(x) ** 2
        return 0.5 * torch.eye(4, dtype=x.dtype) + 0.5 * slope.unsqueeze(-1) * self.W

    def velocity_jacobian(self, x, u):
        return -torch.eye(4, dtype=x.dtype) + (1 - self._t(x) ** 2).unsqueeze(-1) * self.W

    def velocity_curvature(self, x, u, weights):
        t = self._t(x)
        return self.W.T @ ((weights * -2 * t * (1 - t ** 2)).unsqueeze(-1) * self.W)

    def step_curvature(self, x, u, weights):
        return 0.5 * self.velocity_curvature(x, u, weights)


class WrapsGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(2, 5, batch_first=True)
        self.n_states, self.n_inputs = 5, 2
        self.recurrent_module = self.rnn

    def step(self, x, u):
        return self.rnn(u.unsqueeze(1), x.unsqueeze(0))[1][0]


@pytest.mark.parametrize("time", ["discrete", "continuous"])
def test_each_time_type_uses_its_own_closed_forms(time):
    module = TwoForms()
    dyn = fp.from_module(module, time=time)
    assert dyn.jacobian_fn.__name__ == ("step" if time == "discrete" else "velocity") + "_jacobian"
    generic = dyn._replace(jacobian_fn=None, curvature_fn=None)
    x = torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(dyn.jacobian(x), generic.jacobian(x), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(dyn.speed_hessian(x), generic.speed_hessian(x),
                               rtol=1e-12, atol=1e-13)


def test_a_wrapper_of_a_torch_rnn_gets_its_closed_forms():
    module = WrapsGRU()
    dyn = fp.from_module(module, input=[0.2, -0.1])
    assert dyn.curvature_fn is not None and dyn.n_states == 5
    x = torch.randn(3, 5, dtype=torch.float64)
    u = torch.tensor([[0.2, -0.1]] * 3, dtype=torch.float64)
    torch.testing.assert_close(dyn.step(x), module.double().step(x, u), rtol=1e-12, atol=1e-13)


def test_speed_hessian_of_the_saddle_node_normal_form():
    """dx/dt = r + x²: q = ½(r + x²)², so q'' = 2r + 6x² (autograd path, no closed form)."""
    r = -0.3
    dyn = fp.ContinuousDynamics(lambda x, u: r + x ** 2, 1)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64).reshape(-1, 1)
    torch.testing.assert_close(dyn.speed_hessian(x)[:, 0, 0], 2 * r + 6 * x[:, 0] ** 2,
                               atol=1e-14, rtol=1e-14)


def test_bad_models_and_inputs_raise_clear_errors():
    gru = nn.GRU(3, 4)
    with pytest.raises(ValueError, match="input"):
        fp.from_module(gru, input=[1.0, 2.0])
    broken = nn.GRU(3, 4)
    with torch.no_grad():
        broken.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight_hh_l0.*non-finite"):
        fp.from_module(broken)
    with pytest.raises(ValueError, match="step|velocity"):
        fp.from_module(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="bidirectional"):
        fp.from_module(nn.GRU(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="discrete"):
        fp.from_module(gru, time="continuous")
    with pytest.raises(ValueError, match="Module"):
        fp.from_module(lambda x: x)


def stacked_modules():
    torch.manual_seed(4)
    return [nn.RNN(3, 5, num_layers=3), nn.RNN(3, 5, nonlinearity="relu", num_layers=2),
            nn.GRU(3, 5, num_layers=2), nn.GRU(3, 4, num_layers=3, bias=False),
            nn.LSTM(3, 5), nn.LSTM(3, 4, num_layers=2), nn.LSTM(3, 4, num_layers=3, bias=False),
            nn.LSTMCell(3, 5),
            # one layer and the cells too (their own closed forms, _one_layer_curvature)
            nn.RNN(3, 5), nn.RNN(3, 5, nonlinearity="relu"), nn.GRU(3, 5), nn.RNNCell(3, 5),
            nn.RNNCell(3, 5, nonlinearity="relu"), nn.GRUCell(3, 5), nn.LSTMCell(3, 4, bias=False)]


@pytest.mark.parametrize("module", stacked_modules(),
                         ids=lambda m: (f"{type(m).__name__}-{getattr(m, 'num_layers', 1)}"
                                        f"-{getattr(m, 'nonlinearity', '')}"))
def test_stacked_and_lstm_curvature_equals_autograd(module):
    """Closed-form Σ_k w_k ∇²F_k of multi-layer RNN/GRU and of LSTMs (state [h…, c…]) equals
    the autograd Hessian of w·F to 1e-12, at random states, weights and a nonzero input; so do
    the closed-form Jacobian (against jacfwd) and the Hessian of the speed."""
    dyn = fp.from_module(module, input=[0.3, -0.2, 0.5])
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, dyn.n_states, dtype=torch.float64, generator=gen)
    w = torch.randn(6, dyn.n_states, dtype=torch.float64, generator=gen)
    closed = dyn.curvature(x, w)
    autograd = dyn._replace(curvature_fn=None).curvature(x, w)
    assert float(autograd.abs().max()) > 0.05 or getattr(module, "nonlinearity", "") == "relu"
    torch.testing.assert_close(closed, autograd, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(dyn.jacobian(x), dyn._replace(jacobian_fn=None).jacobian(x),
                               atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(dyn.speed_hessian(x),
                               dyn._replace(curvature_fn=None).speed_hessian(x),
                               atol=1e-12, rtol=1e-12)


def test_torchrnn_wrapper_uses_the_closed_forms():
    """checkpoints.TorchRNN (2-layer LSTM) runs through the torch module's closed forms, and
    they agree with autograd on the wrapper's own step."""
    from checkpoints import TorchRNN
    torch.manual_seed(5)
    model = TorchRNN(2, 4, 1, cell="lstm", num_layers=2)
    dyn = fp.from_module(model, input=[0.4, -0.1])
    for p in model.parameters():
        p.requires_grad_(False)
    assert dyn.curvature_fn is not None and dyn.jacobian_fn is not None
    x = torch.randn(5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    w = torch.randn(5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    model = model.double()
    own = fp.DiscreteDynamics(model.step, 16, n_inputs=2, input=[0.4, -0.1])
    torch.testing.assert_close(dyn.curvature(x, w), own.curvature(x, w), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(dyn.jacobian(x), own.jacobian(x), atol=1e-12, rtol=1e-12)
