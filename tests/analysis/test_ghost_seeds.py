"""Ghosts that do not depend on the seed: the ghost paper's rank-one RNN swept through its fold.

The built-in ``RankOneRNN`` (100 units, SCIENCE.md) with the weights of the RankOne network of
tests/fixedpoints/test_ghosts.py, at biases β = β_c + δ from just before the saddle-node to far
past it. Each seed draws other initial states; the ghosts found (count, and their latent κ = n·x)
must be the same for every seed, and equal to the exact 1-D reduction's minimum of |dκ/dt|.
"""
import warnings

import pytest
import torch

from analysis import analyze_series
from checkpoints.models import RankOneRNN
from tests.fixedpoints.test_ghosts import RankOne

DELTAS = (-0.05, 0.01, 0.1, 0.3, 1.0)


def _fold_series():
    ref = RankOne(N=100, delta=0.0, seed=40, time="discrete", coupling=4.0)
    series, truth = [], []
    for epoch, delta in enumerate(DELTAS):
        model = RankOneRNN(n_states=100).double()
        with torch.no_grad():
            model.m.copy_(torch.as_tensor(ref.m))
            model.n.copy_(torch.as_tensor(ref.n))
            model.b.copy_(torch.as_tensor((ref.beta + delta) * ref.bdir))
        series.append((epoch, model))
        exact = RankOne(N=100, delta=delta, seed=40, time="discrete", coupling=4.0)
        truth.append(exact.kappa if delta > 0 else None)
    return ref, series, truth


@pytest.mark.slow
def test_the_rank_one_fold_series_gives_the_same_ghosts_for_five_seeds():
    ref, series, truth = _fold_series()
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = analyze_series(series, seed=seed)
        for epoch, (analysis, kappa) in enumerate(zip(result.results, truth)):
            ghosts = analysis.ghosts
            if kappa is None:     # before the fold: the node-saddle pair, no ghost
                assert len(ghosts) == 0, (seed, epoch)
                continue
            assert len(ghosts) == 1, (seed, epoch, ghosts.info["rejected"])
            assert ref.n @ ghosts.x[0] == pytest.approx(kappa, abs=1e-8), (seed, epoch)
        assert [e.epoch_after for e in result.events_of("saddle_node")] == [1], seed
