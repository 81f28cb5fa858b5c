"""Memristor conductance noise for evaluating trained models on analog hardware."""

from tf_lanmax.noise.conductance import ConductanceNoise, noisy_variables

__all__ = ["ConductanceNoise", "noisy_variables"]
