"""SRAM technologies: measured (voltage, BER, energy) points, their source, their faults.

`get(name)` returns a `Technology`; `names()` lists the presets. A technology gives the energy
model LaNMax and `tl.summary` use (`energy_model()`), the fault model of its failing cells
(`fault_model()`) and voltage <-> BER <-> energy conversions (`voltage(p)`, `rate(voltage)`,
`eta(p)`). Importing this package also makes every preset name an identifier of
`tl.energy.get`.

Example:
>>> tech = tl.memory.get("yang_murmann_28nm")
>>> tech.voltage(1e-2)                               # ~0.69 V
>>> tl.summary(model, technology="yang_murmann_28nm")  # the table, with each layer's voltage

The maths, with the papers it follows: docs/maths/sram.md.
"""

from tf_lanmax import energy as _energy
from tf_lanmax._validation import check_name
from tf_lanmax.memory.presets import DEFAULT, PRESETS
from tf_lanmax.memory.technology import OperatingPoint, Technology


def names():
    """The preset names, default first."""
    return list(PRESETS)


def get(identifier=None):
    """Resolves a technology.

    Args:
        identifier: a preset name (`names()`), a `Technology` (returned as is), or None for
            the default, the exponential law. Defaults to `None`.

    Returns:
        A `Technology`.

    Raises:
        UnknownNameError: for an unknown name (a `ValueError`), listing the names.
        ArgumentTypeError: for anything else that is not a `Technology` (a `TypeError`).

    Example:
    >>> get("salami_fpga_bram").rate(0.56)  # BER of the VC707's BRAMs at 0.56 V
    """
    if identifier is None:
        identifier = DEFAULT
    if isinstance(identifier, Technology):
        return identifier
    also = "or a tl.memory.Technology"
    return PRESETS[check_name("technology", identifier, names(), also)]()


def _register_energy_names():
    for name in PRESETS:
        _energy.register_name(name, lambda name=name: get(name).energy_model())


_register_energy_names()

__all__ = ["DEFAULT", "OperatingPoint", "PRESETS", "Technology", "get", "names"]
