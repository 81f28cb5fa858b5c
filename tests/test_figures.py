"""Every figure the package writes is readable: labelled axes, labelled settings, CIs drawn, and
no two tick labels overlapping (checked on matplotlib's Agg renderer, at representative inputs:
the measured results in docs/results/ and synthetic tables with many, long layer names).
"""

import json
import os
import pathlib
import subprocess
import sys

import matplotlib.figure
import numpy as np
import pytest

import tf_lanmax.reports as plots_package
from tf_lanmax.reports import memse_plots, plots
from tf_lanmax.tuning import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
LABEL = plots.POINT_LABEL


def _json(name):
    return json.loads((RESULTS / name).read_text())


def _lanmax_families():
    return _json("lanmax_fashion_mnist.json")["families"]


def _interval(mean, half):
    return {"mean": mean, "low": mean - half, "high": mean + half}


def _noise(times, sigmas):
    points = [
        {"sigma": s, "time": t, "accuracy": _interval(0.9 - 0.3 * (s or 0) - 0.01 * t**0.1, 0.01)}
        for s in sigmas
        for t in times
    ]
    return {"points": points}


def _sensitivity():
    names = [f"binary_conv2d_block{i}_with_a_long_name" for i in range(8)]
    return {
        "baseline": {"accuracy": 0.9, "ci": [0.88, 0.92]},
        "test_rate": 0.5,
        "layers": {
            n: {"accuracy": 0.1 * i, "ci": [0.1 * i - 0.02, 0.1 * i + 0.02]}
            for i, n in enumerate(names)
        },  # fmt: skip
    }


def _power():
    curve = [
        {
            "relative_budget": b,
            "single": {"predicted_mse": 0.3 / b},
            "per_layer": {"predicted_mse": 0.15 / b},
        }
        for b in (0.25, 0.5, 1.0, 2.0, 4.0)
    ]
    mc = {"mse": 0.14, "half_width": 0.01, "confidence": 0.95}
    return {
        "curve": curve,
        "power_budget": 1.0,
        "reference_gmax": 1.0,
        "steps": 20,
        "best_single": {"samples_predicted_mse": 0.3, "monte_carlo": dict(mc, mse=0.29)},
        "optimized": {"samples_predicted_mse": 0.15, "monte_carlo": mc},
    }


def _memse_summary():
    names = [f"sequential/conv2d_{i}/convolution_with_long_name" for i in range(12)]
    return {"layers": {n: {"mse": 10.0 ** (i - 6)} for i, n in enumerate(names)}}


def _demo_report():
    def energy(rates):
        bits = {"conv1": 288, "conv2": 18432, "dense1": 401408, "dense2": 1280}
        rows = [
            {"name": n, "energy": b * np.log(p) / np.log(2.76e-6), "fault_rate": p}
            for (n, b), p in zip(bits.items(), rates, strict=True)
        ]
        return {"layers": rows}

    def faulty(mean):
        return {"accuracy": _interval(mean, 0.002)}

    return {
        "fault_rate": 1e-3,
        "clean_test_accuracy": 0.8945,
        "energy": energy([1e-3] * 4),
        "faulty_test": faulty(0.8937),
        "lanmax": {
            "alpha": 1.0,
            "energy": energy([8e-3, 1e-2, 4e-2, 1e-2]),
            "faulty_test": faulty(0.8852),
        },  # fmt: skip
    }


PLOTTERS = {
    "demo_summary": lambda path: plots_package.plot_demo_summary(_demo_report(), path),
    "energy_accuracy": lambda path: plots.plot_energy_accuracy(
        _lanmax_families(), path, reference=0.909
    ),
    "rates_vs_size": lambda path: plots.plot_rates_vs_size(
        max(_lanmax_families()["LaNMax"], key=lambda p: p["accuracy"])["layers"], path
    ),
    "rate_trajectories": lambda path: plots.plot_rate_trajectories(
        _json("lanmax_fashion_mnist.json")["lanmax_trajectories"]["0.3"], path
    ),
    "sensitivity": lambda path: plots.plot_sensitivity(_sensitivity(), path),
    "noise_robustness": lambda path: plots.plot_noise_robustness(
        {"plain": _noise([1.0], np.linspace(0, 0.8, 9)), "SAMSON": _noise([1.0], [0, 0.4, 0.8])},
        path,
    ),
    "drift": lambda path: plots.plot_drift(
        {"pcm": _noise([0.0, 1.0, 60.0, 3600.0, 86400.0, 2.6e6], [None])}, path
    ),
    "memse_layers": lambda path: memse_plots.plot_memse_layers(
        _memse_summary(), path, {"mse": 0.1, "ci": [0.09, 0.11], "confidence": 0.95, "draws": 100}
    ),
    "mse_vs_power": lambda path: memse_plots.plot_mse_vs_power(_power(), path),
    "front": lambda path: report.plot_front(_json("tuning_alpha_front.json")["points"], path),
}


@pytest.fixture
def saved_figures(monkeypatch):
    """The `Figure` objects saved during a test (the plotters return only the path)."""
    figures = []
    savefig = matplotlib.figure.Figure.savefig

    def capture(self, *args, **kwargs):
        figures.append(self)
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    return figures


def tick_label_boxes(figure):
    """{(axes index, "x" or "y"): window boxes of the tick labels drawn, major and minor}."""
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    boxes = {}
    for index, axes in enumerate(figure.axes):
        for name, axis in (("x", axes.xaxis), ("y", axes.yaxis)):
            rows = plots.visible_tick_labels(axis, renderer, minor=False)
            rows += plots.visible_tick_labels(axis, renderer, minor=True)
            boxes[index, name] = [box for _, _, box in rows]
    return boxes


def overlapping_pairs(boxes):
    return [
        (i, j)
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]


@pytest.mark.parametrize("name", sorted(PLOTTERS))
def test_figure_is_readable(name, tmp_path, saved_figures):
    PLOTTERS[name](tmp_path / f"{name}.png")
    (figure,) = saved_figures
    for (index, axis), boxes in tick_label_boxes(figure).items():
        assert boxes, f"{name}: axes {index} has no {axis} tick labels"
        assert not overlapping_pairs(boxes), f"{name}: overlapping {axis} tick labels"
    renderer = figure.canvas.get_renderer()
    for axes in figure.axes:
        labels = [t.get_window_extent(renderer) for t in axes.texts if t.get_gid() == LABEL]
        assert not overlapping_pairs(labels), f"{name}: overlapping point labels"
        assert axes.get_xlabel() and axes.get_ylabel(), name
        assert "(" in axes.get_xlabel() + axes.get_ylabel(), f"{name}: no units"


def test_the_overlap_check_sees_overlapping_labels():
    # The oracle can fail: a log axis over one decade crowds its minor labels.
    figure, axes = plots.new_figure(2.0, 2.0)
    axes.plot([2.6e4, 4.2e5], [0, 1])
    axes.set_xscale("log")
    crowded = tick_label_boxes(figure)[0, "x"]
    assert overlapping_pairs(crowded)
    plots.declutter_tick_labels(figure)
    assert not overlapping_pairs(tick_label_boxes(figure)[0, "x"])


def test_settings_are_labelled_and_intervals_drawn(tmp_path, saved_figures):
    PLOTTERS["energy_accuracy"](tmp_path / "a.png")
    PLOTTERS["front"](tmp_path / "b.png")
    energy, front = (figure.axes[0] for figure in saved_figures)
    texts = {text.get_text() for text in energy.texts}
    assert {"p=0.001", "α=0.3", "width ×0.5"} <= texts, texts
    assert any(text.get_text().startswith("α=") for text in front.texts)
    # Error bars: one LineCollection of CI bars per family with intervals.
    assert len(energy.collections) >= 2


def test_setting_label():
    assert plots.setting_label({"alpha": 0.3}) == "α=0.3"
    assert plots.setting_label({"p": 1e-3}) == "p=0.001"
    assert plots.setting_label({"label": "chip 3", "p": 1e-3}) == "chip 3"
    assert plots.setting_label({"energy": 1.0}) is None


def _backend_after(statement):
    """The matplotlib backend setting after `statement`, in a fresh process with MPLBACKEND=svg."""
    code = (
        f"import matplotlib\n{statement}\n"
        "print(dict.__getitem__(matplotlib.rcParams, 'backend'))"  # read without resolving it
    )
    env = dict(os.environ, MPLBACKEND="svg", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1].lower()


def test_importing_the_package_leaves_the_matplotlib_backend_alone():
    # A notebook's inline backend survives `import tf_lanmax` (keras imports pyplot, which
    # does not pick a backend by itself); only scripts (CLI, experiments) choose one.
    assert _backend_after("import tf_lanmax") == "svg"
    assert _backend_after("matplotlib.use('Agg')") == "agg"  # what the check would catch
