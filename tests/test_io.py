"""Tests of `write_json_atomic`: valid JSON, numpy values, replace, no temp file left on failure."""

import json
import os

import numpy as np
import pytest

from tf_lanmax._io import write_json_atomic


def _leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith(".tmp-"))


def test_writes_valid_json(tmp_path):
    payload = {"a": 1, "b": [1.5, "x", None], "c": {"d": True}}
    path = tmp_path / "out.json"
    returned = write_json_atomic(path, payload)
    assert returned == str(path)
    assert json.loads(path.read_text()) == payload
    assert _leftovers(tmp_path) == []


def test_accepts_str_path_and_creates_missing_folders(tmp_path):
    path = os.path.join(tmp_path, "x", "y", "out.json")
    write_json_atomic(path, [1, 2])
    with open(path) as f:
        assert json.load(f) == [1, 2]
    assert _leftovers(os.path.dirname(path)) == []


def _reject(constant):
    raise ValueError(f"not JSON: {constant}")


def test_non_finite_floats_are_written_as_null_so_strict_parsers_read_the_file(tmp_path):
    payload = {
        "nan": float("nan"),
        "inf": [float("inf"), -np.inf, 1.5],
        "f32": np.float32("nan"),
        "array": np.array([[0.5, np.nan], [np.inf, 2.0]]),
        "nested": ({"x": np.float64("-inf")},),
    }
    path = write_json_atomic(tmp_path / "nan.json", payload)
    loaded = json.loads(open(path).read(), parse_constant=_reject)  # no NaN / Infinity tokens
    assert loaded == {
        "nan": None,
        "inf": [None, None, 1.5],
        "f32": None,
        "array": [[0.5, None], [None, 2.0]],
        "nested": [{"x": None}],
    }


def test_numpy_arrays_and_scalars_serialise(tmp_path):
    payload = {
        "array": np.arange(6, dtype=np.int64).reshape(2, 3),
        "float_array": np.array([0.5, 0.25], dtype=np.float32),
        "f64": np.float64(0.125),
        "f32": np.float32(0.5),
        "i64": np.int64(7),
        "bool": np.bool_(True),
    }
    path = write_json_atomic(tmp_path / "np.json", payload)
    with open(path) as f:
        loaded = json.load(f)
    assert loaded == {
        "array": [[0, 1, 2], [3, 4, 5]],
        "float_array": [0.5, 0.25],
        "f64": 0.125,
        "f32": 0.5,
        "i64": 7,
        "bool": True,
    }


def test_objects_with_to_dict_serialise(tmp_path):
    class Result:
        def to_dict(self):
            return {"mean": 0.5}

    path = write_json_atomic(tmp_path / "r.json", {"result": Result()})
    with open(path) as f:
        assert json.load(f) == {"result": {"mean": 0.5}}


def test_replaces_existing_file(tmp_path):
    path = tmp_path / "out.json"
    path.write_text('{"old": "a much longer old content than the new one"}\n')
    write_json_atomic(path, {"new": 1})
    assert json.loads(path.read_text()) == {"new": 1}
    assert _leftovers(tmp_path) == []


def test_failed_serialisation_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.json"
    old = '{"old": 1}\n'
    path.write_text(old)
    with pytest.raises(TypeError, match="object"):
        write_json_atomic(path, {"fine": 1, "bad": object()})
    assert path.read_text() == old
    assert _leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_failed_serialisation_creates_no_file(tmp_path):
    path = tmp_path / "new.json"
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": {1, 2}})
    assert os.listdir(tmp_path) == []


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_written_file_has_the_mode_a_plain_open_gives(tmp_path):
    expected = 0o666 & ~_umask()
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert os.stat(plain).st_mode & 0o777 == expected
    path = write_json_atomic(tmp_path / "new.json", {})
    assert os.stat(path).st_mode & 0o777 == expected
    write_json_atomic(plain, {"replaced": True})
    assert os.stat(plain).st_mode & 0o777 == expected
