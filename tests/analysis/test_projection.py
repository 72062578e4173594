"""One projection for all epochs: streamed PCA, latent coordinates, identity."""
import numpy as np
import pytest
import torch

from analysis.projection import Projection, ProjectionFitter, latent_basis


def _plane_data(seed=0, n=6, m=400, shift=0.0):
    """States on a known 2-D plane (+ tiny noise) in n dimensions."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((n, 2)))
    z = rng.standard_normal((m, 2)) * np.array([3.0, 1.0])
    return z @ basis.T + shift + 1e-6 * rng.standard_normal((m, n)), basis


def test_streamed_pca_equals_pca_of_everything():
    rng = np.random.default_rng(1)
    epochs = [rng.standard_normal((50 + 10 * k, 5)) @ rng.standard_normal((5, 5)) + k
              for k in range(6)]
    fitter = ProjectionFitter(kind="pca")
    for states in epochs:
        fitter.add(states)
    projection = fitter.fit()
    everything = np.vstack(epochs)
    centred = everything - everything.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(projection.mean, everything.mean(axis=0), atol=1e-12)
    for k in range(2):  # same axes up to sign
        assert abs(abs(projection.components[k] @ vt[k]) - 1) < 1e-9
    np.testing.assert_allclose(projection.explained_variance_ratio, (s ** 2 / (s ** 2).sum())[:2],
                               rtol=1e-9)
    assert projection.labels[0].startswith("PC1 (")


def test_pca_recovers_a_plane_and_lift_inverts_transform():
    states, basis = _plane_data(shift=2.0)
    fitter = ProjectionFitter()
    fitter.add(states[:200])
    fitter.add(states[200:])
    projection = fitter.fit()
    # the fitted plane is the true one: projecting its axes onto the basis keeps their length
    np.testing.assert_allclose(np.linalg.norm(projection.components @ basis, axis=1), 1,
                               atol=1e-6)
    assert projection.explained_variance_ratio.sum() > 0.999999
    z = projection.transform(states)
    np.testing.assert_allclose(projection.lift(z), states, atol=1e-4)  # states lie on the plane
    lo, hi = projection.limits.T
    assert np.all(z.min(axis=0) >= lo - 1e-9) or np.mean((z >= lo) & (z <= hi)) > 0.99


def test_limits_always_contain_the_points_and_ignore_a_runaway_state():
    rng = np.random.default_rng(2)
    states = rng.standard_normal((3000, 3)) * [1.0, 3.0, 0.3]
    states[0] = [1e6, 0, 0]  # one diverging state
    far_point = np.array([[9.0, 0.0, 0.0]])
    fitter = ProjectionFitter(kind="pca")
    fitter.add(states, points=far_point)
    projection = fitter.fit()
    z_point = projection.transform(far_point)[0]
    for k in range(2):
        assert projection.limits[k, 0] < z_point[k] < projection.limits[k, 1]
    assert np.all(np.abs(projection.limits) < 100)  # not stretched to 1e6
    assert abs(projection.components[0, 1]) > 0.99  # PC1 is the data's, not the runaway's


def test_reservoir_keeps_memory_bounded():
    fitter = ProjectionFitter(reservoir=500)  # every state kept with the same probability
    rng = np.random.default_rng(3)
    for _ in range(40):
        fitter.add(rng.standard_normal((300, 10)))
    assert fitter._rows.shape == (500, 10)
    assert fitter._count == 40 * 300
    fitter.fit()


def test_identity_for_small_systems_and_auto_choice():
    fitter = ProjectionFitter()
    fitter.add(np.random.default_rng(0).standard_normal((100, 2)))
    projection = fitter.fit()
    assert projection.kind == "identity" and projection.exact
    x = np.array([[0.3, -0.2]])
    np.testing.assert_allclose(projection.transform(x), x)
    one = ProjectionFitter()
    one.add(np.linspace(-1, 1, 50)[:, None])
    p1 = one.fit()
    assert p1.kind == "identity" and p1.n_components == 1 and p1.labels == ("x",)


def test_latent_basis_of_low_rank_models():
    from checkpoints.models import LeakyRNN, RankOneRNN

    torch.manual_seed(0)
    low = LeakyRNN(2, 20, 1, rank=2).double()
    np.testing.assert_array_equal(latent_basis(low), low.S_r.detach().numpy())
    one = RankOneRNN(30).double()
    np.testing.assert_array_equal(latent_basis(one), one.n.detach().numpy()[None])
    assert latent_basis(LeakyRNN(2, 20, 1).double()) is None  # full rank: no latent space
    assert latent_basis(torch.nn.GRU(2, 5)) is None


def test_latent_projection_is_exact_and_shares_limits():
    from checkpoints.models import LeakyRNN

    torch.manual_seed(1)
    models = [LeakyRNN(1, 25, 1, rank=2).double() for _ in range(3)]
    fitter = ProjectionFitter()
    rng = np.random.default_rng(4)
    for m in models:
        fitter.add(rng.standard_normal((200, 25)) * 0.5, latent_basis(m))
    projection = fitter.fit()
    assert projection.kind == "latent" and projection.n_components == 2
    assert projection.labels == ("κ₁", "κ₂")
    basis = latent_basis(models[1])
    x = rng.standard_normal((7, 25))
    kappa = projection.transform(x, basis)
    np.testing.assert_allclose(kappa, x @ basis.T)
    np.testing.assert_allclose(projection.transform(projection.lift(kappa, basis), basis), kappa,
                               atol=1e-10)
    with pytest.raises(ValueError, match="latent basis"):
        projection.transform(x)


def test_mixed_epochs_fall_back_to_pca():
    fitter = ProjectionFitter()
    rng = np.random.default_rng(5)
    fitter.add(rng.standard_normal((50, 8)), rng.standard_normal((2, 8)))
    fitter.add(rng.standard_normal((50, 8)))  # no basis for this one
    assert fitter.resolved_kind() == "pca"
    with pytest.raises(ValueError, match="low-rank"):
        forced = ProjectionFitter(kind="latent")
        forced.add(rng.standard_normal((50, 8)))
        forced.fit()


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="projection kind 'tsne' is unknown"):
        ProjectionFitter(kind="tsne")
    fitter = ProjectionFitter()
    fitter.add(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="one state size"):
        fitter.add(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="no finite states"):
        ProjectionFitter().fit()


def test_round_trip_and_key():
    states, _ = _plane_data()
    fitter = ProjectionFitter()
    fitter.add(states)
    projection = fitter.fit()
    again = Projection.from_dict(projection.to_dict())
    np.testing.assert_allclose(again.transform(states), projection.transform(states))
    assert again.key() == projection.key()
    other = ProjectionFitter()
    other.add(states + 1.0)
    assert other.fit().key() != projection.key()
