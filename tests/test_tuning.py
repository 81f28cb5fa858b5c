"""Pareto front and hypervolume against brute force and hand-computed cases."""

import json
import os

import numpy as np
import pytest

from tf_lanmax import tuning
from tf_lanmax._io import default_file_mode
from tf_lanmax.tuning import (
    LaNMaxHyperModel,
    check_alpha_range,
    export_json,
    geometric_alphas,
    hypervolume,
    pareto_front,
    plot_front,
)

# ---------------------------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------------------------


def brute_force_front(points):
    """Every distinct point that no other point dominates (the definition, O(n^2))."""
    points = [tuple(p) for p in np.asarray(points, dtype=np.float64)]
    front = set()
    for e, a in points:
        dominated = any(
            (e2 <= e and a2 >= a) and (e2 < e or a2 > a) for e2, a2 in points if (e2, a2) != (e, a)
        )
        if not dominated:
            front.add((e, a))
    return np.array(sorted(front), dtype=np.float64).reshape(-1, 2)


def grid_hypervolume(points, reference):
    """Area dominated inside the box, by counting unit cells (exact for integer coordinates)."""
    e_ref, a_ref = reference
    points = np.asarray(points, dtype=np.float64)
    area = 0
    for i in range(int(min(points[:, 0].min(), e_ref)), int(e_ref)):
        for j in range(int(a_ref), int(max(points[:, 1].max(), a_ref))):
            ce, ca = i + 0.5, j + 0.5
            if np.any((points[:, 0] <= ce) & (points[:, 1] >= ca)):
                area += 1
    return float(area)


def random_sets(seed, count, low=0, high=8):
    """Small integer coordinates: many ties and exact duplicates."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 25))
        yield rng.integers(low, high, size=(n, 2)).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# pareto_front
# ---------------------------------------------------------------------------------------------


def test_front_matches_brute_force_on_random_sets_with_ties_and_duplicates():
    for points in random_sets(seed=0, count=400):
        front = pareto_front(points)
        np.testing.assert_array_equal(front, brute_force_front(points))


def test_front_matches_brute_force_on_continuous_points():
    rng = np.random.default_rng(1)
    for _ in range(100):
        points = rng.uniform(size=(int(rng.integers(1, 60)), 2))
        points = np.vstack([points, points[: int(rng.integers(0, 5))]])  # exact duplicates
        np.testing.assert_array_equal(pareto_front(points), brute_force_front(points))


def test_front_is_sorted_strictly_increasing_in_both_coordinates():
    for points in random_sets(seed=2, count=200):
        front = pareto_front(points)
        assert np.all(np.diff(front[:, 0]) > 0)
        assert np.all(np.diff(front[:, 1]) > 0)


def test_front_is_invariant_to_order_and_duplicates():
    rng = np.random.default_rng(3)
    for points in random_sets(seed=3, count=100):
        shuffled = rng.permutation(np.vstack([points, points]), axis=0)
        np.testing.assert_array_equal(pareto_front(shuffled), pareto_front(points))


def test_front_by_hand():
    points = [(1.0, 0.90), (0.5, 0.80), (0.7, 0.70), (0.5, 0.80), (0.3, 0.50), (0.3, 0.40)]
    np.testing.assert_array_equal(pareto_front(points), [[0.3, 0.50], [0.5, 0.80], [1.0, 0.90]])
    assert tuning.front_indices(points).tolist() == [4, 1, 0]  # first duplicate kept
    np.testing.assert_array_equal(pareto_front(iter(points)), pareto_front(points))
    np.testing.assert_array_equal(pareto_front([(2.0, 0.5)]), [[2.0, 0.5]])


def test_front_of_dicts_returns_the_dicts_and_skips_unfinished_trials():
    points = [
        {"trial_id": "0", "energy": 3.0, "accuracy": 0.9, "alpha": 0.1, "status": "COMPLETED"},
        {"trial_id": "1", "energy": 1.0, "accuracy": 0.8, "alpha": 3.0},
        {"trial_id": "2", "energy": 2.0, "accuracy": 0.7, "alpha": 1.0},
        {"trial_id": "3", "status": "FAILED", "message": "boom"},
    ]
    front = pareto_front(points)
    assert [p["trial_id"] for p in front] == ["1", "0"]
    assert front[0] is points[1]
    robust = pareto_front(
        [
            {"energy": 1.0, "accuracy": 0.80, "accuracy_ci_low": 0.70},
            {"energy": 2.0, "accuracy": 0.85, "accuracy_ci_low": 0.65},
        ],
        accuracy_key="accuracy_ci_low",
    )
    assert len(robust) == 1 and robust[0]["energy"] == 1.0


@pytest.mark.parametrize(
    "points, match",
    [
        ([], "at least one"),
        (np.zeros((0, 2)), "at least one"),
        ([(float("nan"), 0.5)], "energy"),
        ([(1.0, 0.5), (float("nan"), 0.7)], "energy"),
        ([(1.0, float("inf"))], "accuracy"),
        ([(1.0, 0.5, 3.0)], "shape"),
        ([[{"energy": 1.0}]], "points"),
        ([{"energy": 1.0}], "accuracy"),
        ([{"energy": float("nan"), "accuracy": 0.5}], "energy"),
        ([{"status": "FAILED"}], "completed"),
        ("/no/such/project", "folder"),
    ],
)
def test_bad_points_raise_value_error(points, match):
    with pytest.raises(ValueError, match=match):
        pareto_front(points)


# ---------------------------------------------------------------------------------------------
# hypervolume
# ---------------------------------------------------------------------------------------------


def test_hypervolume_by_hand():
    # One point: (E_ref - E)(A - A_ref).
    assert hypervolume([(2.0, 0.7)], reference=(5.0, 0.1)) == pytest.approx(3.0 * 0.6, abs=1e-15)
    # Three points on a staircase, reference (10, 0):
    # (4 - 1) * 0.5 + (7 - 4) * 0.8 + (10 - 7) * 0.9 = 1.5 + 2.4 + 2.7.
    front = [(1.0, 0.5), (4.0, 0.8), (7.0, 0.9)]
    assert hypervolume(front, reference=(10.0, 0.0)) == pytest.approx(6.6, abs=1e-12)
    # Dominated points and duplicates do not change it.
    more = [*front, (5.0, 0.6), (8.0, 0.85), (4.0, 0.8), (9.0, 0.1)]
    assert hypervolume(more, (10.0, 0.0)) == pytest.approx(6.6, abs=1e-12)
    # Points outside the box are dropped: energy above E_ref, accuracy below A_ref.
    outside = [*front, (11.0, 0.99), (0.5, -0.2)]
    assert hypervolume(outside, (10.0, 0.0)) == pytest.approx(6.6, abs=1e-12)
    # A point on the box edge adds nothing; no point inside gives 0.
    assert hypervolume([*front, (10.0, 1.0)], (10.0, 0.0)) == pytest.approx(6.6, abs=1e-12)
    assert hypervolume([(11.0, 0.5)], (10.0, 0.0)) == 0.0
    # The docstring example.
    assert hypervolume([(0.5, 0.8), (1.0, 0.9)], reference=(2.0, 0.0)) == pytest.approx(1.3)


def test_hypervolume_matches_cell_counting_on_random_integer_sets():
    for points in random_sets(seed=4, count=150, low=0, high=10):
        for reference in [(10.0, 0.0), (7.0, 2.0)]:
            assert hypervolume(points, reference) == grid_hypervolume(points, reference)


def test_hypervolume_is_order_invariant_and_monotone_under_improvement():
    rng = np.random.default_rng(5)
    reference = (1.0, 0.0)
    for _ in range(200):
        points = rng.uniform(0.05, 0.95, size=(int(rng.integers(1, 12)), 2))
        base = hypervolume(points, reference)
        assert hypervolume(rng.permutation(points, axis=0), reference) == pytest.approx(
            base, rel=1e-12, abs=1e-15
        )
        better = points.copy()
        k = int(rng.integers(len(points)))
        better[k, 0] -= rng.uniform(0, better[k, 0])  # less energy
        better[k, 1] += rng.uniform(0, 1 - better[k, 1])  # more accuracy
        assert hypervolume(better, reference) >= base - 1e-15
        assert hypervolume(np.vstack([points, [[0.01, 0.99]]]), reference) >= base


def test_hypervolume_accepts_dicts():
    points = [{"energy": 1.0, "accuracy": 0.5}, {"energy": 4.0, "accuracy": 0.8}]
    assert hypervolume(points, (10.0, 0.0)) == pytest.approx(3 * 0.5 + 6 * 0.8)


@pytest.mark.parametrize(
    "reference", [None, (1.0,), (1.0, 2.0, 3.0), (float("nan"), 0.0), (1.0, float("inf")), "ab"]
)
def test_bad_reference_raises_value_error(reference):
    with pytest.raises(ValueError, match="reference"):
        hypervolume([(0.5, 0.5)], reference)


def test_hypervolume_rejects_bad_points():
    with pytest.raises(ValueError, match="at least one"):
        hypervolume([], (1.0, 0.0))
    with pytest.raises(ValueError, match="energy"):
        hypervolume([(float("nan"), 0.5)], (1.0, 0.0))


# ---------------------------------------------------------------------------------------------
# alpha range and hypermodel arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alpha_range",
    [(1.0, 1.0), (2.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0), (0.1, float("inf"))],
)
def test_bad_alpha_range_raises_value_error(alpha_range):
    with pytest.raises(ValueError, match="alpha_range"):
        check_alpha_range(alpha_range)
    with pytest.raises(ValueError, match="alpha_range"):
        LaNMaxHyperModel(lambda hp: None, alpha_range=alpha_range)
    with pytest.raises(ValueError, match="alpha_range"):
        geometric_alphas(alpha_range, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha_range": 1.0}, "alpha_range"),
        ({"alpha_range": (0.1, 1.0, 10.0)}, "alpha_range"),
        ({"alpha_step": 1.0}, "alpha_step"),
        ({"alphas": [1.0]}, "alphas"),
        ({"alphas": [1.0, 1.0]}, "alphas"),
        ({"alphas": [0.0, 1.0]}, "alphas"),
        ({"alphas": [1.0, float("inf")]}, "alphas"),
        ({"alphas": "0.1,1"}, "alphas"),
        ({"alphas": [0.1, 1.0], "alpha_range": (0.1, 1.0)}, "not both"),
        ({"alphas": [0.1, 1.0], "alpha_step": 10.0}, "not both"),
        ({"epochs": 0}, "epochs"),
        ({"draws": 1}, "draws"),
        ({"energy_weight": -1.0}, "energy_weight"),
        ({"objective": "loss"}, "objective"),
        ({"lanmax_kwargs": {"alpha": 2.0}}, "lanmax_kwargs"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_hypermodel_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LaNMaxHyperModel(lambda hp: None, **kwargs)
    with pytest.raises(ValueError, match="build_model"):
        LaNMaxHyperModel("not callable")


def test_hypermodel_objective_and_alpha_hyperparameter():
    import keras_tuner

    hypermodel = LaNMaxHyperModel(lambda hp: None, alpha_range=(0.01, 10.0), alpha_step=10)
    assert hypermodel.objective.name == "score" and hypermodel.objective.direction == "max"
    energy = LaNMaxHyperModel(lambda hp: None, objective="energy").objective
    assert energy.direction == "min"
    hp = keras_tuner.HyperParameters()
    hypermodel.alpha(hp)
    (space,) = hp.space
    assert space.sampling == "log"
    np.testing.assert_allclose(list(space.values), [0.01, 0.1, 1.0, 10.0], rtol=1e-12)
    # A fixed list: a Choice, sorted, exactly those values; the range spans them.
    listed = LaNMaxHyperModel(lambda hp: None, alphas=[10, 0.3, 1.0])
    hp = keras_tuner.HyperParameters()
    assert listed.alpha(hp) == 0.3  # the Choice's default: its first value
    (space,) = hp.space
    assert type(space).__name__ == "Choice"
    assert list(space.values) == [0.3, 1.0, 10.0] and listed.alpha_range == (0.3, 10.0)
    np.testing.assert_allclose(geometric_alphas((0.01, 10.0), 4), [0.01, 0.1, 1.0, 10.0])
    assert tuning.trial_seed(0, 0.5) == tuning.trial_seed(0, 0.5) != tuning.trial_seed(1, 0.5)


# ---------------------------------------------------------------------------------------------
# Figure and JSON from plain points
# ---------------------------------------------------------------------------------------------


def test_plot_and_json_from_points(tmp_path):
    points = [
        {"trial_id": "0", "energy": 3.0, "accuracy": 0.9, "ci": [0.88, 0.92], "alpha": 0.1},
        {"trial_id": "1", "energy": 1.0, "accuracy": 0.8, "ci": [0.78, 0.82], "alpha": 3.0},
        {"trial_id": "2", "energy": 2.0, "accuracy": 0.7, "ci": [0.65, 0.75], "alpha": 1.0},
        {"trial_id": "3", "status": "FAILED", "alpha": 5.0, "message": "ValueError: boom"},
    ]
    png = plot_front(points, tmp_path / "front.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.stat(png).st_mode & 0o777 == default_file_mode()  # not mkstemp's 0o600
    payload = export_json(points, tmp_path / "front.json", reference=(4.0, 0.0), metadata={"a": 1})
    saved = json.loads((tmp_path / "front.json").read_text())
    assert saved == json.loads(json.dumps(payload))
    assert saved["front_trial_ids"] == ["1", "0"]
    assert saved["num_trials"] == 4 and saved["num_failed"] == 1 and saved["a"] == 1
    assert saved["hypervolume"] == pytest.approx((3 - 1) * 0.8 + (4 - 3) * 0.9)
    assert [p["trial_id"] for p in saved["points"]] == ["0", "1", "2", "3"]
    array_payload = export_json(np.array([[1.0, 0.5], [2.0, 0.4]]), tmp_path / "a.json")
    assert array_payload["front"] == [{"energy": 1.0, "accuracy": 0.5}]
    assert array_payload["hypervolume"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "front.json", "front.png"]
