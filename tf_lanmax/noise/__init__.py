"""Memristor conductance noise for evaluating trained models on analog hardware.

The maths, with the papers it follows: docs/maths/analog.md.
"""

from tf_lanmax.noise.conductance import ConductanceNoise, noisy_variables

__all__ = ["ConductanceNoise", "noisy_variables"]
