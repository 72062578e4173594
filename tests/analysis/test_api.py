"""The Python API: analyze_checkpoint and analyze_series on synthetic and trained series."""
import json
import math

import numpy as np
import pytest
import torch

from analysis import EpochAnalysis, SeriesAnalysis, analyze_checkpoint, analyze_series
from analysis.api import epoch_file_stem
from checkpoints import CheckpointError
from checkpoints.models import LeakyRNN
from fixedpoints import DiscreteDynamics, systems


def flipflop_series(epochs=3, eps=1e-6, n=12):
    """The rotated flip-flop map in weight form, with independent weight noise per epoch."""
    base = systems.rotated_flipflop(n, seed=0)
    out = []
    for e in range(epochs):
        rng = np.random.default_rng(e)
        A = torch.tensor(base.Q * base.D + eps * rng.standard_normal((n, n)))
        B = torch.tensor(base.Q.T + eps * rng.standard_normal((n, n)))
        out.append((e, DiscreteDynamics(lambda x, u, A=A, B=B: torch.tanh(x @ A) @ B, n,
                                        name=f"flipflop{e}")))
    return out


def test_analyze_checkpoint_on_dynamics_and_module():
    r = analyze_checkpoint(systems.rotated_flipflop(12, seed=1), epoch=7, n_initial=128)
    assert isinstance(r, EpochAnalysis) and r.epoch == 7
    assert r.fixed_points.index_counts() == {0: 8, 1: 12, 2: 6, 3: 1}
    assert r.signature.n_attractors == 8
    assert r.topology.info["n_unresolved"] == 0
    assert r.scale > 0 and r.seconds > 0 and math.isnan(r.loss)
    summary = r.summary()
    assert summary["counts"]["stable"] == 8 and summary["n_attractors"] == 8
    json.dumps(summary)

    torch.manual_seed(0)
    model = LeakyRNN(3, 16, 3, alpha=0.5)
    params_before = {k: (v.clone(), v.requires_grad) for k, v in model.named_parameters()}
    r = analyze_checkpoint(model, n_initial=64, input=(0.0, 0.0, 0.0))
    assert len(r.fixed_points) >= 1 and r.n_states == 16
    for k, v in model.named_parameters():   # the user's model is untouched
        assert torch.equal(v, params_before[k][0]) and v.requires_grad == params_before[k][1]


def test_bad_options_name_the_option_and_the_fix():
    dyn = systems.tanh_map(2.0, 0.4)
    with pytest.raises(ValueError, match="n_intial.*valid per-epoch options"):
        analyze_checkpoint(dyn, n_intial=10)
    with pytest.raises(ValueError, match="n_initial"):
        analyze_checkpoint(dyn, n_initial=0)
    with pytest.raises(ValueError, match="unknown finder option"):
        analyze_checkpoint(dyn, finder={"tol": 1})
    with pytest.raises(TypeError, match="cannot analyze"):
        analyze_checkpoint(42)
    with pytest.raises(ValueError, match="duplicate epochs"):
        analyze_series([(0, dyn), (0, dyn)])


def test_series_results_files_and_reload(tmp_path):
    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.45, 0.50, 0.60])]
    out = tmp_path / "run"
    result = analyze_series(series, n_initial=64,
                            log=(np.arange(4), np.array([1.0, 0.9, 0.8, 0.1])), run=dict(out=out))
    assert isinstance(result, SeriesAnalysis)
    assert result.epochs == [0, 1, 2, 3] and result.failed == ()
    assert [r.loss for r in result.results] == [1.0, 0.9, 0.8, 0.1]
    assert all(e.epoch_before == 2 and e.epoch_after == 3 for e in result.events)
    for name in ("summary.json", "events.csv", "events.json", "tracks.json"):
        assert (out / name).is_file(), name
    for e in result.epochs:
        assert (out / "epochs" / (epoch_file_stem(e) + ".json")).is_file()
        assert (out / "epochs" / (epoch_file_stem(e) + ".npz")).is_file()
    assert not list(out.rglob("*.tmp*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == [0, 1, 2, 3] and summary["n_events"] == len(result.events)
    header = (out / "events.csv").read_text().splitlines()[0]
    assert header == "epoch_before,epoch_after,kind,epoch,alpha,lead_time,points,detail"
    back = SeriesAnalysis.from_dir(out)
    assert back.epochs == result.epochs
    assert [e.kind for e in back.events] == [e.kind for e in result.events]
    for a, b in zip(back.results, result.results):
        np.testing.assert_array_equal(a.fixed_points.x, b.fixed_points.x)
        assert a.signature == b.signature and a.loss == b.loss
    # the stable point that survives is one track over all four epochs
    long = [t for t in result.tracks if t.family == "fixed" and len(t) == 4]
    assert len(long) == 1 and all(k == "stable" for k in long[0].kinds)


def test_resume_reuses_epochs_with_the_same_settings(tmp_path):
    series = flipflop_series(epochs=3)
    out = tmp_path / "run"
    first = analyze_series(series, n_initial=64, run=dict(out=out))
    assert first.options["reused_epochs"] == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "epochs").iterdir()}
    again = analyze_series(series, n_initial=64, run=dict(out=out))
    assert again.options["reused_epochs"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in (out / "epochs").iterdir()} == stamps
    assert [r.signature for r in again.results] == [r.signature for r in first.results]
    # other settings or force=True: recomputed
    assert analyze_series(series, n_initial=65, run=dict(out=out)).options["reused_epochs"] == 0
    forced = analyze_series(series, n_initial=64, run=dict(out=out, force=True))
    assert forced.options["reused_epochs"] == 0


def test_results_of_other_code_are_not_reused(tmp_path, monkeypatch):
    """The settings hash covers the code that computes an epoch: a newer finder recomputes."""
    from analysis import epoch

    series = flipflop_series(epochs=2)
    out = tmp_path / "run"
    analyze_series(series, n_initial=64, run=dict(out=out))
    assert analyze_series(series, n_initial=64, run=dict(out=out)).options["reused_epochs"] == 2
    monkeypatch.setattr(epoch, "_epoch_code_digest", lambda: "another version")
    assert analyze_series(series, n_initial=64, run=dict(out=out)).options["reused_epochs"] == 0


def test_weight_noise_only_gives_no_events():
    result = analyze_series(flipflop_series(epochs=4, eps=1e-6), n_initial=128)
    assert all(r.fixed_points.index_counts() == {0: 8, 1: 12, 2: 6, 3: 1} for r in result.results)
    assert result.events == ()
    assert len([t for t in result.tracks if t.family == "fixed" and len(t) == 4]) == 27


def test_failed_epochs_are_recorded_or_raised():
    def broken(x, u):
        raise RuntimeError("weights are corrupt")

    series = [(0, systems.tanh_map(2.0, 0.4)), (1, DiscreteDynamics(broken, 1, name="bad")),
              (2, systems.tanh_map(2.0, 0.41))]
    result = analyze_series(series, n_initial=32)
    assert result.epochs == [0, 2]
    assert len(result.failed) == 1
    assert result.failed[0].epoch == 1 and "weights are corrupt" in result.failed[0].reason
    with pytest.raises(RuntimeError, match="weights are corrupt"):
        analyze_series(series, n_initial=32, run=dict(strict=True))


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    from checkpoints.train import train

    out = tmp_path_factory.mktemp("flipflop")
    train({"name": "flipflop", "n_bits": 2, "trial_steps": 20}, "leaky_rnn", out, epochs=4,
          lr=1e-2, n_states=16, seed=0, batch_size=8)
    return out


def test_directory_series_with_log_and_a_bad_file(trained_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    (run / "model_epoch2.pt").write_bytes(b"not a checkpoint")
    result = analyze_series(run, n_initial=64, input=(0.0, 0.0))
    assert result.epochs == [0, 1, 3, 4]
    assert [f.epoch for f in result.failed] == [2]
    assert "model_epoch2.pt" in result.failed[0].source
    assert result.loss is not None and result.loss.source.endswith("train_log.csv")
    logged = result.loss
    for r in result.results:
        assert r.loss == pytest.approx(logged.at(r.epoch))
        assert r.source.endswith(f"model_epoch{r.epoch}.pt")
    with pytest.raises(CheckpointError):
        analyze_series(run, n_initial=64, run=dict(strict=True))


def test_two_jobs_give_the_same_results_as_one(trained_dir):
    one = analyze_series(trained_dir, n_initial=64)
    two = analyze_series(trained_dir, n_initial=64, run=dict(jobs=2))
    assert one.epochs == two.epochs
    for a, b in zip(one.results, two.results):
        np.testing.assert_allclose(np.sort(a.fixed_points.x, axis=0),
                                   np.sort(b.fixed_points.x, axis=0), atol=1e-8)
    assert [e.kind for e in one.events] == [e.kind for e in two.events]


def test_localize_through_the_api():
    b = {0: 0.50, 1: 0.56}
    series = [(e, systems.tanh_map(2.0, v)) for e, v in b.items()]

    def interpolate(e0, e1, alpha):
        return systems.tanh_map(2.0, b[e0] + alpha * (b[e1] - b[e0]))

    result = analyze_series(series, n_initial=64, interpolate=interpolate,
                            log=(np.arange(2), np.array([1.0, 1.0])), run=dict(localize=True))
    sn = [e for e in result.events if e.kind in ("saddle_node", "death")]
    assert sn, result.events
    alpha_true = (systems.tanh_saddle_node_b(2.0) - 0.50) / 0.06
    assert sn[0].alpha == pytest.approx(alpha_true, abs=5e-3)
    assert sn[0].epoch == pytest.approx(alpha_true, abs=5e-3)
    assert sn[0].detail["localization"]["converged"]


def test_unpicklable_models_fall_back_to_this_process():
    # tanh_map builds its Dynamics from closures, which cannot be pickled
    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.45])]
    result = analyze_series(series, n_initial=32, run=dict(jobs=2))
    assert result.epochs == [0, 1] and result.failed == ()


def test_epoch_save_load_with_and_without_ghosts_and_topology(tmp_path):
    full = analyze_checkpoint(systems.tanh_map(2.0, 0.55, n_states=3), epoch=5, n_initial=64,
                              loss=0.25)
    bare = analyze_checkpoint(systems.tanh_map(2.0, 0.40), n_initial=64, ghosts=False,
                              topology=False)
    for r, name in ((full, "full"), (bare, "bare")):
        back = EpochAnalysis.load(r.save(tmp_path / name))
        np.testing.assert_array_equal(back.fixed_points.x, r.fixed_points.x)
        np.testing.assert_array_equal(back.fixed_points.eigvals, r.fixed_points.eigvals)
        assert back.epoch == r.epoch and back.settings_hash == r.settings_hash
        assert (back.loss == r.loss) or (math.isnan(back.loss) and math.isnan(r.loss))
    back = EpochAnalysis.load(tmp_path / "full.json")
    assert len(back.ghosts.x) == len(full.ghosts.x) == 1
    np.testing.assert_allclose(back.ghosts.passage_time, full.ghosts.passage_time)
    assert back.signature == full.signature and back.topology.edges() == full.topology.edges()
    bare_back = EpochAnalysis.load(tmp_path / "bare")
    assert bare_back.ghosts is None and bare_back.topology is None and bare_back.signature is None
    text = (tmp_path / "full.json").read_text()
    assert "NaN" not in text and "Infinity" not in text     # strict JSON
    json.loads(text)


def test_settings_are_nested_validated_option_objects():
    """Each option object is validated once, when the settings are built, with a message that
    names the field, the value and the fix (a typo no longer fails in every worker)."""
    from analysis import EpochSettings, TopologyOptions, make_settings
    from analysis.portraits import PortraitOptions
    from fixedpoints import FinderOptions, GhostOptions

    s = make_settings(n_initial=64, finder={"max_iter": 500}, ghosts={"window": 5.0},
                      topology=False)
    assert isinstance(s.finder, FinderOptions) and s.finder.max_iter == 500
    assert s.ghosts == GhostOptions(window=5.0, max_starts=24) and s.topology is None
    assert make_settings(ghosts=False).ghosts is None
    assert make_settings(ghosts=True).ghosts == EpochSettings().ghosts
    assert make_settings(topology={"eps": 0.02}).topology == TopologyOptions(eps=0.02)
    with pytest.raises(ValueError, match=r"unknown ghost option\(s\) \['max_startz'\]"):
        make_settings(ghosts={"max_startz": 3})
    with pytest.raises(ValueError, match=r"TopologyOptions.eps=-1 is invalid; pass a positive"):
        make_settings(topology={"eps": -1})
    with pytest.raises(ValueError, match=r"max_iter=-1 is invalid"):
        make_settings(finder={"max_iter": -1})
    with pytest.raises(ValueError, match=r"finder=\{'max_iter': 5\} is invalid; pass a "
                                         r"FinderOptions"):
        EpochSettings(finder={"max_iter": 5})
    with pytest.raises(ValueError, match=r"PortraitOptions.grid=0 is invalid"):
        PortraitOptions(grid=0)
    with pytest.raises(ValueError, match=r"projection='pcaa' is invalid"):
        PortraitOptions.make({"projection": "pcaa"})
    # what summary.json stores builds the same settings again (same hash: epochs are reused)
    again = make_settings(None, **s.to_dict())
    assert again == s and again.hash() == s.hash()
