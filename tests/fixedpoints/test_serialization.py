"""The one JSON rule and the one atomic-write scheme (fixedpoints.serialization)."""
import dataclasses
import enum
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from fixedpoints import FixedPoints, systems
from fixedpoints.finder import find_fixed_points
from fixedpoints.serialization import (atomic_write, is_temporary, json_text, temporary_path,
                                       to_json, write_text)


class Colour(enum.Enum):
    RED = 1


def test_the_rule_for_each_kind_of_value():
    value = {1: float("nan"), "inf": -math.inf, "z": np.complex128(1 - 2j), "c": Colour.RED,
             "a": np.array([[1.5, np.nan]]), "t": (np.int32(3), np.bool_(True), None),
             "p": Path("/tmp/x"), "f": np.float32(0.25), "o": object}
    out = to_json(value)
    assert out == {"1": None, "inf": None, "z": [1.0, -2.0], "c": "RED", "a": [[1.5, None]],
                   "t": [3, True, None], "p": "/tmp/x", "f": 0.25, "o": str(object)}
    assert type(out["t"][0]) is int and type(out["t"][1]) is bool
    assert to_json(complex(math.inf, 1)) == [None, 1.0]
    # strict JSON: json.loads accepts it and no NaN token is written
    text = json_text(value)
    assert "NaN" not in text and "Infinity" not in text and json.loads(text)["z"] == [1.0, -2.0]


def test_the_fast_paths_for_float_arrays_and_lists_keep_the_rule():
    # finite float arrays and lists of Python floats skip the call per number; the rule holds
    finite = np.array([[0.1, -2.5e300], [3.0, 1e-320]])
    assert to_json(finite) == finite.tolist() and to_json(np.float32([0.5])) == [0.5]
    assert to_json(np.array([1.0, np.inf, np.nan])) == [1.0, None, None]
    assert to_json([1.5, math.nan, -math.inf, 2.0]) == [1.5, None, None, 2.0]
    assert to_json((0.25, 0.5)) == [0.25, 0.5] and to_json([]) == []
    mixed = to_json([1.0, np.float64(np.nan), 2])  # not all Python floats: element by element
    assert mixed == [1.0, None, 2] and type(mixed[2]) is int


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    path = tmp_path / "a.json"
    write_text(path, "{}")
    assert path.read_text() == "{}" and os.listdir(tmp_path) == ["a.json"]
    with pytest.raises(RuntimeError):
        def fail(handle):
            handle.write(b"half")
            raise RuntimeError("killed")
        atomic_write(tmp_path / "b.bin", fail)
    assert os.listdir(tmp_path) == ["a.json"]  # neither b.bin nor its temporary


def test_temporary_names_are_recognized():
    tmp = temporary_path("/x/epoch_0003.npz")
    assert tmp.name == f".epoch_0003.npz.{os.getpid()}.tmp" and is_temporary(tmp.name)
    assert not is_temporary("epoch_0003.npz") and not is_temporary(".hidden")
    assert not is_temporary("summary.json.tmp")


def test_a_result_round_trips_with_nan_in_a_float_field(tmp_path):
    dyn = systems.tanh_map(2.0, 0.4)
    points = find_fixed_points(dyn, np.linspace(-1, 1, 16)[:, None])
    odd = dataclasses.replace(points, q_fixed=math.nan)
    stem = odd.save(tmp_path / "r")
    assert "NaN" not in stem.with_suffix(".json").read_text()
    back = FixedPoints.load(stem)
    assert math.isnan(back.q_fixed) and back.scale == points.scale
    np.testing.assert_array_equal(back.x, points.x)
