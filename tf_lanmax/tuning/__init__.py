"""Keras Tuner search of LaNMax's energy weight alpha, and the true energy/accuracy Pareto front.

Example:
>>> import keras_tuner
>>> hypermodel = tl.tuning.LaNMaxHyperModel(build_model, alpha_range=(0.01, 30.0))
>>> tuner = keras_tuner.RandomSearch(hypermodel, objective=hypermodel.objective, max_trials=8)
>>> tuner.search(train_ds, validation_data=test_ds)
>>> front = tl.tuning.pareto_front(tuner)  # non-dominated trials, energy ascending
>>> tl.tuning.hypervolume(front, reference=(front[-1]["total_bits"], 0.1))
>>> tl.tuning.plot_front(tuner, "front.png"); tl.tuning.export_json(tuner, "front.json")

The maths, with the papers it follows: docs/maths/pareto.md.
"""

from tf_lanmax.tuning.hypermodel import LaNMaxHyperModel, check_alpha_range, trial_seed
from tf_lanmax.tuning.pareto import front_indices, hypervolume, pareto_front
from tf_lanmax.tuning.report import export_json, front_report, plot_front
from tf_lanmax.tuning.sweep import alpha_sweep, geometric_alphas
from tf_lanmax.tuning.trials import trial_points

__all__ = [
    "LaNMaxHyperModel",
    "alpha_sweep",
    "check_alpha_range",
    "export_json",
    "front_report",
    "front_indices",
    "geometric_alphas",
    "hypervolume",
    "pareto_front",
    "plot_front",
    "trial_points",
    "trial_seed",
]
