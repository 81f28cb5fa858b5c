"""Memory energy: the law eta(p) = -ln(p)/a (or a tabulated curve) and the energy of a model.

`get(identifier)` resolves None (the law, a = 12.8), a technology name of `tl.memory`, a config
dict or any energy model: an object with `p0`, `eta(p)`, `rate(eta)` and `get_config()`.

The maths, with the papers it follows: docs/maths/energy.md.
"""

from tf_lanmax.energy.float_parameters import FLOAT_PARAMETERS, float_parameter_bits
from tf_lanmax.energy.model import DEFAULT_A, EnergyModel
from tf_lanmax.energy.profile import memory_energy
from tf_lanmax.energy.resolve import get, is_energy_model, names, register_name, serialize
from tf_lanmax.energy.tabulated import TabulatedEnergyModel

__all__ = [
    "DEFAULT_A",
    "FLOAT_PARAMETERS",
    "EnergyModel",
    "TabulatedEnergyModel",
    "float_parameter_bits",
    "get",
    "is_energy_model",
    "memory_energy",
    "names",
    "register_name",
    "serialize",
]
