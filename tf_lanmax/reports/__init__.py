"""Reports: the memory-energy summary table and matplotlib figures."""

from tf_lanmax.reports.demo_plot import plot_demo_summary
from tf_lanmax.reports.memse_plots import plot_memse_layers, plot_mse_vs_power
from tf_lanmax.reports.plots import (
    plot_drift,
    plot_energy_accuracy,
    plot_noise_robustness,
    plot_rate_trajectories,
    plot_rates_vs_size,
    plot_sensitivity,
    save_figure,
)
from tf_lanmax.reports.summary import render_table, summary

__all__ = [
    "plot_demo_summary",
    "plot_drift",
    "plot_energy_accuracy",
    "plot_memse_layers",
    "plot_mse_vs_power",
    "plot_noise_robustness",
    "plot_rate_trajectories",
    "plot_rates_vs_size",
    "plot_sensitivity",
    "render_table",
    "save_figure",
    "summary",
]
