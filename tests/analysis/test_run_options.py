"""RunOptions: how a series analysis runs, validated on construction and built one way."""
from pathlib import Path

import numpy as np
import pytest

from analysis import RunOptions, analyze_series
from fixedpoints import systems


@pytest.mark.parametrize("field, value, fix", [
    ("jobs", 0, "-1 for all cores"),
    ("jobs", 1.5, "-1 for all cores"),
    ("device", "gpu0", "'cuda:1'"),
    ("strict", "yes", "True or False"),
    ("max_states", 0, "positive number of states"),
    ("log_offset", float("nan"), "finite number"),
    ("out", 3, "directory path"),
    ("load_options", {"patern": "*.pt"}, "valid keys"),
])
def test_a_bad_value_names_the_field_the_value_and_the_fix(field, value, fix):
    with pytest.raises(ValueError) as caught:
        RunOptions(**{field: value})
    message = str(caught.value)
    assert f"RunOptions.{field}" in message and fix in message


def test_made_one_way_from_none_an_instance_or_a_dict():
    assert RunOptions.make() == RunOptions()
    options = RunOptions(jobs=2, out="somewhere")
    assert RunOptions.make(options) is options
    assert RunOptions.make({"jobs": 2, "out": "somewhere"}) == options
    assert options.out == Path("somewhere")
    assert RunOptions.make(options, force=True).force
    with pytest.raises(ValueError, match="unknown run option.*jbos"):
        RunOptions.make({"jbos": 2})


def test_a_run_option_given_as_a_keyword_says_where_it_belongs():
    series = [(0, systems.tanh_map(2.0, 0.3))]
    with pytest.raises(TypeError, match=r"run options.*run=RunOptions\(jobs=\.\.\.\)"):
        analyze_series(series, jobs=2)


def test_run_options_do_not_change_the_results(tmp_path):
    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.3, 0.6])]
    plain = analyze_series(series, n_initial=32)
    written = analyze_series(series, n_initial=32, run={"out": tmp_path / "out"})
    assert [r.counts() for r in plain.results] == [r.counts() for r in written.results]
    for a, b in zip(plain.results, written.results):
        np.testing.assert_array_equal(a.fixed_points.x, b.fixed_points.x)
    assert (tmp_path / "out" / "summary.json").is_file()
    assert plain.settings.hash() == written.settings.hash()
