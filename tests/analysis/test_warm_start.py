"""Warm starts along a series: the same points as cold searches, found with less polishing."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from analysis import analyze_series
from analysis.epoch import points_differ
from fixedpoints import find_fixed_points, sample_initial_states, systems


def _matched(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a point of either set to the nearest point of the other."""
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    return float(max(d.min(1).max(), d.min(0).max()))


def test_finder_warm_starts_find_the_cold_roots_with_fewer_polished():
    """Roots of a flip-flop map at gain 2.0 warm-start the search at gain 2.1: every one of the
    27 exact roots is found as cold, and fewer candidates are polished."""
    before = systems.rotated_flipflop(n_states=10, gain=2.0)
    after = systems.rotated_flipflop(n_states=10, gain=2.1)
    init = sample_initial_states(after, 160, n_steps=30, noise=0.05, seed=0)
    cold = find_fixed_points(after, init, complete=False, certify=False)
    previous = find_fixed_points(before, init, complete=False, certify=False)
    warm = find_fixed_points(after, init, complete=False, certify=False,
                             warm_starts=previous.x[previous.kind != "slow"])
    exact = systems.flipflop_fixed_points(after, gain=2.1).x
    assert len(cold.x) == len(warm.x) == len(exact) == 27
    assert _matched(cold.x, exact) < 1e-9 and _matched(warm.x, exact) < 1e-9
    assert sorted(cold.n_unstable) == sorted(warm.n_unstable)
    assert warm.info["warm_starts"] == 27 and warm.info["warm_found"] == 27
    assert warm.info["warm_attributed"] > 0
    assert warm.info["polished"] < cold.info["polished"]
    assert "warm_starts" not in cold.info


def test_warm_starts_take_no_part_in_scales_or_box():
    """Far-away warm starts change neither the scales nor the search box: they are clipped
    into it and what they reach is kept only when it passes the same tests."""
    dyn = systems.rotated_flipflop(n_states=8, n_bits=2)
    init = sample_initial_states(dyn, 128, n_steps=30, noise=0.05, seed=1)
    cold = find_fixed_points(dyn, init, complete=False, certify=False)
    warm = find_fixed_points(dyn, init, complete=False, certify=False,
                             warm_starts=np.full((3, 8), 1e3))
    assert warm.info["scale"] == cold.info["scale"] and warm.info["sigma"] == cold.info["sigma"]
    assert len(warm.x) == len(cold.x) == 9 and _matched(warm.x, cold.x) < 1e-9


@pytest.fixture(scope="module")
def cue_run(tmp_path_factory):
    """A short real training trajectory: a rank-2 leaky RNN, one checkpoint per epoch."""
    from checkpoints.train import train

    out = tmp_path_factory.mktemp("cue")
    train("cue_discrimination", "leaky_rnn", out, epochs=3, lr=0.01, save_every=1,
          n_states=24, rank=2, seed=0, overwrite=True)
    return out


def _compare(warm, cold):
    assert warm.epochs == cold.epochs and not warm.failed and not cold.failed
    for a, b in zip(warm.results, cold.results):
        assert points_differ(a, b) is None, points_differ(a, b)


def test_warm_and_cold_series_find_the_same_points(cue_run):
    """On a real series, the start-based search (complete=False) warm-started from the previous
    epoch finds what cold searches find, with fewer candidates polished; chunks of 2 (each
    starting cold) give the same points as one chunk."""
    import analysis.api as api

    settings = dict(n_initial=64, finder={"complete": False, "certify": False}, topology=False)
    cold = analyze_series(cue_run, warm_start=False, continuation=False, **settings)
    warm = analyze_series(cue_run, continuation=False, **settings)
    _compare(warm, cold)
    assert warm.options["warm_start"] == {"chunks": 1, "warm_epochs": 3}
    assert cold.options["warm_start"]["warm_epochs"] == 0
    for r in warm.results[1:]:
        assert r.info["warm_start"]["from_epoch"] == r.epoch - 1
        assert r.info["warm_start"]["found"] >= 1
    assert all("warm_start" not in r.info for r in cold.results)
    polished_warm = sum(r.fixed_points.info["polished"] for r in warm.results[1:])
    polished_cold = sum(r.fixed_points.info["polished"] for r in cold.results[1:])
    assert polished_warm < polished_cold
    saved = api.CHUNK_SIZE
    try:
        api.CHUNK_SIZE = 2
        chunked = analyze_series(cue_run, continuation=False, **settings)
    finally:
        api.CHUNK_SIZE = saved
    assert chunked.options["warm_start"] == {"chunks": 2, "warm_epochs": 2}
    _compare(chunked, cold)


def test_complete_checkpoints_skip_continuation_and_match_cold(cue_run, tmp_path):
    """With the exhaustive low-rank search (the default for rank 2), continuation has nothing
    to add at complete checkpoints and skips them; warm and cold agree (the candidates are the
    latent minima: nothing is warm-started); the per-epoch files of a warm run are reused by a
    second run."""
    cold = analyze_series(cue_run, n_initial=64, warm_start=False)
    warm = analyze_series(cue_run, n_initial=64, run=dict(out=tmp_path / "out"))
    _compare(warm, cold)
    assert all(r.fixed_points.complete for r in warm.results)
    # rank 2: the candidates are the latent minima, so no epoch is warm-started
    assert all(r.fixed_points.info["latent_starts"] >= 1 for r in warm.results)
    assert warm.options["warm_start"]["warm_epochs"] == 0
    assert all("warm_start" not in r.info for r in warm.results)
    assert warm.options["continuation"]["skipped_complete"] == len(warm.results)
    assert warm.options["continuation"]["reanalyzed_epochs"] == []
    again = analyze_series(cue_run, n_initial=64, run=dict(out=tmp_path / "out"))
    assert again.options["reused_epochs"] == len(warm.results)
    _compare(again, cold)


def test_failed_epoch_in_a_chunk_is_recorded_and_the_chunk_goes_on(cue_run, tmp_path):
    """A damaged checkpoint in the middle of a chunk fails alone (recorded in .failed); the
    next one is warm-started from the last that succeeded (the start-based candidates:
    warm starts would spare the latent minima nothing)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cue_run, run)
    (run / "model_epoch2.pt").write_bytes(b"not a checkpoint")
    result = analyze_series(run, n_initial=48, ghosts=False, topology=False,
                            continuation=False, finder={"latent_starts": False})
    assert len(result.failed) == 1 and "model_epoch2" in result.failed[0].source
    assert 2 not in result.epochs and 3 in result.epochs
    assert result.result_at(3).info["warm_start"]["from_epoch"] == 1


def test_no_warm_start_flag_reaches_the_settings(tmp_path):
    from analysis.cli import _settings_options, build_parser

    out = str(tmp_path / "out")
    args = build_parser().parse_args(["analyze", str(tmp_path), "-o", out, "--no-warm-start"])
    assert _settings_options(args)["warm_start"] is False
    args = build_parser().parse_args(["analyze", str(tmp_path), "-o", out])
    assert "warm_start" not in _settings_options(args)


class _KillsItsWorker:
    """A model that ends any process other than the one that made it, as it is unpickled."""

    def __init__(self):
        self.parent = os.getpid()

    def __setstate__(self, state):
        if state["parent"] != os.getpid():
            os._exit(3)
        self.__dict__.update(state)


@pytest.mark.slow
def test_a_chunk_whose_worker_dies_is_rerun_one_checkpoint_at_a_time():
    """Only the checkpoint that kills its worker fails; the others of its chunk are analyzed."""
    from checkpoints.models import build_model

    torch.manual_seed(0)
    models = [build_model("leaky_rnn", n_states=6, n_inputs=1, n_outputs=1) for _ in range(4)]
    series = [(e, m) for e, m in enumerate(models)]
    series[2] = (2, _KillsItsWorker())
    result = analyze_series(series, n_initial=32, ghosts=False, topology=False,
                            continuation=False, run=dict(jobs=2))
    assert result.epochs == [0, 1, 3]
    assert len(result.failed) == 1 and result.failed[0].epoch == 2
    assert "WorkerDied" in result.failed[0].reason
