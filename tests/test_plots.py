"""Tests of the matplotlib reports: valid PNGs, written atomically, figures closed."""

import os

import matplotlib.pyplot as plt
import pytest

from tf_lanmax.reports import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith(".tmp-"))


def _sensitivity_result():
    return {
        "baseline": {"accuracy": 0.9, "ci": [0.88, 0.92], "rates": {"a": 1e-3, "b": 1e-3}},
        "test_rate": 0.5,
        "layers": {
            "a": {
                "accuracy": 0.4,
                "ci": [0.35, 0.45],
                "drop": 0.5,
                "stored_bits": 256,
                "rate": 0.5,
            },
            "b": {"accuracy": 0.8, "ci": [0.78, 0.82], "drop": 0.1, "stored_bits": 96, "rate": 0.5},
        },
    }


def _trajectory():
    return [
        {"epoch": 0, "rates": {"a": 1e-2, "b": 1e-2}, "mean_energy": 0.5},
        {"epoch": 1, "rates": {"a": 2e-2, "b": 5e-3}, "mean_energy": 0.45},
    ]


def _energy_rows():
    return [
        {"name": "a", "stored_bits": 256, "fault_rate": 2e-2},
        {"name": "b", "stored_bits": 96, "fault_rate": 5e-3},
    ]


def _families():
    return {
        "fixed p": [
            {"energy": 0.8, "accuracy": 0.85, "ci": [0.84, 0.86]},
            {"energy": 0.4, "accuracy": 0.80, "ci": [0.78, 0.82]},
        ],
        "LaNMax": [{"energy": 0.5, "accuracy": 0.84, "ci": [0.83, 0.85]}],
    }


PLOTTERS = {
    "sensitivity": lambda path: plots.plot_sensitivity(_sensitivity_result(), path),
    "rate_trajectories": lambda path: plots.plot_rate_trajectories(_trajectory(), path),
    "rates_vs_size": lambda path: plots.plot_rates_vs_size(_energy_rows(), path),
    "energy_accuracy": lambda path: plots.plot_energy_accuracy(_families(), path),
    "energy_accuracy_reference": lambda path: plots.plot_energy_accuracy(
        _families(), path, reference=0.84, title="t"
    ),
}


@pytest.mark.parametrize("name", sorted(PLOTTERS))
def test_plot_writes_png_in_new_folder_and_closes_figure(tmp_path, name):
    folder = tmp_path / "new" / "sub"
    path = folder / f"{name}.png"
    before = plt.get_fignums()
    returned = PLOTTERS[name](path)
    assert returned == str(path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert os.path.getsize(path) > 1000
    assert _leftovers(folder) == []
    assert sorted(os.listdir(folder)) == [f"{name}.png"]
    assert plt.get_fignums() == before


def test_plot_replaces_existing_file(tmp_path):
    path = tmp_path / "s.png"
    path.write_bytes(b"old")
    plots.plot_sensitivity(_sensitivity_result(), path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert _leftovers(tmp_path) == []


def test_save_figure_writes_png_and_closes(tmp_path):
    before = plt.get_fignums()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = plots.save_figure(fig, str(tmp_path / "f.png"))
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert plt.get_fignums() == before
    assert _leftovers(tmp_path) == []


def test_save_figure_cleans_temp_and_reraises_when_savefig_fails(tmp_path, monkeypatch):
    before = plt.get_fignums()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    seen = []

    def failing_savefig(fname, *args, **kwargs):
        seen.append(fname)
        with open(fname, "wb") as f:  # a half-written file, as a full disk would leave
            f.write(b"\x89PN")
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", failing_savefig)
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        plots.save_figure(fig, path)
    assert len(seen) == 1 and os.path.dirname(seen[0]) == str(tmp_path)
    assert os.path.basename(seen[0]).startswith(".tmp-")
    assert not os.path.exists(seen[0])
    assert _leftovers(tmp_path) == []
    assert path.read_bytes() == b"old"
    assert plt.get_fignums() == before


def test_save_figure_failure_in_new_file_leaves_nothing(tmp_path, monkeypatch):
    fig, _ = plt.subplots()

    def failing_savefig(*args, **kwargs):
        raise OSError("no space")

    monkeypatch.setattr(fig, "savefig", failing_savefig)
    with pytest.raises(OSError):
        plots.save_figure(fig, tmp_path / "out" / "g.png")
    assert os.listdir(tmp_path / "out") == []
    assert not plt.fignum_exists(fig.number)


def test_plot_rate_trajectories_empty_is_value_error_without_leaking_a_figure(tmp_path):
    before = plt.get_fignums()
    try:
        with pytest.raises(ValueError, match="trajectory"):
            plots.plot_rate_trajectories([], tmp_path / "t.png")
    finally:
        leaked = [n for n in plt.get_fignums() if n not in before]
        for number in leaked:
            plt.close(number)
    assert leaked == []
    assert not os.path.exists(tmp_path / "t.png")


def test_png_has_the_mode_a_plain_savefig_gives(tmp_path):
    fig, _ = plt.subplots()
    fig.savefig(tmp_path / "plain.png")
    plt.close(fig)
    expected = os.stat(tmp_path / "plain.png").st_mode & 0o777
    path = plots.plot_rates_vs_size(_energy_rows(), tmp_path / "atomic.png")
    assert os.stat(path).st_mode & 0o777 == expected
