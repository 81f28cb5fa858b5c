"""Published SRAM operating points as `Technology` presets, each with what is measured in it.

Numbers come from the cited sources; where a source gives only part of the curve the preset
says which part, and what fills the rest is labelled derived (computed from a stated rule) or
assumed (a value the source does not give).
"""

import math

from tf_lanmax.energy import DEFAULT_A, EnergyModel
from tf_lanmax.memory.technology import Technology

_HENWOOD = (
    "Henwood, Leduc-Primeau, Savaria, 'Layerwise noise maximisation to train low-energy deep "
    "neural networks', arXiv:1912.10764 (AICAS 2020)"
)


def _law_energy(ber, a=DEFAULT_A):
    return -math.log(ber) / a


def _law_ber(energy, a=DEFAULT_A):
    return math.exp(-a * energy)


def exponential_law():
    """The exponential energy-reliability law eta(p) = -ln(p)/a, a = 12.8 (the default).

    Reference: Henwood, Leduc-Primeau, Savaria, arXiv:1912.10764.
    """
    bers = (_law_ber(1.0), 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5)
    return Technology(
        name="exponential_law",
        points=[(None, p, _law_energy(p)) for p in bers],
        source=f"{_HENWOOD}; a = 12.8 as in the authors' public training code",
        provenance=(
            "No measured points: the curve is the law eta(p) = -ln(p)/a with a = 12.8, "
            "normalised so that the reliable rate p0 = exp(-a) ~ 2.76e-6 costs 1; the points "
            "listed are the law at a few rates (derived) and the energy model is the law itself, "
            "valid on [p0, 0.5]. No voltages. Faults are bit flips drawn afresh at every read "
            "(the law's training model): stuck_at_0_fraction None, not persistent."
        ),
        stuck_at_0_fraction=None,
        persistent=False,
        energy_law=EnergyModel(a=DEFAULT_A),
    )


#: BERs of the profiled chip (8192 x 128-bit banks), one per supply setting, lowest first.
PROFILED_BERS = (1.31e-5, 4.07e-5, 1.26e-4, 1.55e-4, 1.21e-3, 3.98e-3, 1.21e-2)


def profiled_sram():
    """A profiled SRAM chip's measured BERs; voltages not given; energy from the law.

    Reference: Chandramoorthy et al., HPCA 2019 (profiling); Henwood et al., arXiv:1912.10764.
    """
    bers = (_law_ber(1.0), *PROFILED_BERS)
    return Technology(
        name="profiled_sram",
        points=[(None, p, _law_energy(p)) for p in bers],
        source=(
            "Bit error rates profiled on an SRAM chip with 8192 x 128-bit banks, from public "
            "research code on low-voltage DNN accelerators (profiles as in Chandramoorthy et "
            "al., 'Resilient low voltage accelerators for high energy efficiency', HPCA 2019); "
            f"energy from {_HENWOOD}"
        ),
        provenance=(
            "Measured: the 7 BERs 1.31e-5 ... 1.21e-2. Not given by the source: the supply "
            "voltages (None) and the energies. Derived: every energy is the exponential law "
            "eta = -ln(p)/12.8, and the first point (p0 = exp(-12.8), energy 1) is the law's "
            "reliable point, added so that energy 1 means reliable memory. Above 1.21e-2 the "
            "energy is held at the last point: no saving beyond the profile is claimed. Faults "
            "persist (a profile maps the failing cells of one chip) and split about evenly "
            "between cells that read 0 and 1, as profiled chips do (stuck_at_0_fraction 0.5)."
        ),
        stuck_at_0_fraction=0.5,
        persistent=True,
    )


#: Yang & Murmann's measured supply reductions (V below nominal) and access-power ratios.
YANG_MURMANN_REDUCTIONS = ((0.0, 1.0), (0.280, 2.6), (0.310, 2.9))
#: Assumption: the nominal supply of the 28 nm FD-SOI SRAM (the paper states reductions).
YANG_MURMANN_NOMINAL_V = 1.0


def yang_murmann_28nm():
    """Yang & Murmann's 8 KB 28 nm FD-SOI SRAM: measured voltage and access-power points.

    Reference: L. Yang, B. Murmann, ISQED 2017.
    """
    points = []
    for reduction, power_ratio in YANG_MURMANN_REDUCTIONS:
        energy = 1.0 / power_ratio
        voltage = round(YANG_MURMANN_NOMINAL_V - reduction, 3)
        points.append((voltage, _law_ber(energy), energy))
    return Technology(
        name="yang_murmann_28nm",
        points=points,
        source=(
            "Yang & Murmann, 'SRAM voltage scaling for energy-efficient convolutional neural "
            "networks', ISQED 2017 (8 KB SRAM, 28 nm UTBB FD-SOI)"
        ),
        provenance=(
            "Measured: supply reductions of 280 mV and 310 mV below nominal cut the memory "
            "access power 2.6x and 2.9x (energies 1/2.6 and 1/2.9, nominal = 1; leakage fell "
            "4.8x and 5.4x, not modelled); at -310 mV a ConvNet trained with bit errors kept 99 "
            "% of its floating-point accuracy. Assumed: a 1.0 V nominal supply, which gives "
            "1.00, 0.72 and 0.69 V. Derived: the BERs, from the exponential law at each "
            "measured energy (p = exp(-12.8 eta)): the BER at these voltages is not in the "
            "sources accessible here; replace it with the paper's measurement when at hand. "
            "Assumed: faults persist and split evenly between 0 and 1, as profiled undervolted "
            "SRAM does (stuck_at_0_fraction 0.5)."
        ),
        stuck_at_0_fraction=0.5,
        persistent=True,
    )


#: Total BRAM faults of the Xilinx VC707 per VCCBRAM voltage, Vmin 0.60 V to Vcrash 0.54 V.
SALAMI_VC707_FAULTS = (
    (0.60, 4),
    (0.59, 24),
    (0.58, 146),
    (0.57, 772),
    (0.56, 2732),
    (0.55, 7520),
    (0.54, 23706),
)
#: The fault rate reached at Vcrash and the BRAM power saved from Vmin to Vcrash.
SALAMI_BER_AT_VCRASH = 6e-4
SALAMI_POWER_SAVING = 0.361


def salami_fpga_bram():
    """Undervolted FPGA BRAMs (Xilinx VC707): measured fault counts per voltage.

    Reference: Salami, Unsal, Cristal Kestelman, MICRO 2018, doi:10.1109/MICRO.2018.00064.
    """
    v_min, v_crash = SALAMI_VC707_FAULTS[0][0], SALAMI_VC707_FAULTS[-1][0]
    crash_faults = SALAMI_VC707_FAULTS[-1][1]
    points = []
    for voltage, faults in SALAMI_VC707_FAULTS:
        ber = SALAMI_BER_AT_VCRASH * faults / crash_faults
        energy = 1.0 - SALAMI_POWER_SAVING * (v_min - voltage) / (v_min - v_crash)
        points.append((voltage, ber, energy))
    return Technology(
        name="salami_fpga_bram",
        points=points,
        source=(
            "Salami, Unsal, Cristal Kestelman, 'Comprehensive evaluation of supply voltage "
            "underscaling in FPGA on-chip memories', MICRO 2018, doi:10.1109/MICRO.2018.00064 "
            "(VC707 fault counts from the authors' public data release), and 'Fault "
            "characterization through FPGA undervolting' (2018)"
        ),
        provenance=(
            "Measured: total BRAM faults of a Xilinx VC707 at VCCBRAM 0.60 ... 0.54 V (4 ... "
            "23706; nominal 1 V, no fault above Vmin), the fault rate 0.06 % reached at Vcrash, "
            "and the BRAM power saved from Vmin to Vcrash (36.1 %, averaged over the boards). "
            "Derived: each BER is 0.06 % times the fault count relative to the count at Vcrash "
            "(the fault counts give the shape, the paper's rate the scale; assumed to hold for "
            "this board). Energy is BRAM power relative to Vmin = 0.60 V (1 at Vmin: the lowest "
            "fault-free supply is the reliable point, so savings of the 1 V guardband are not "
            "counted); 0.639 at Vcrash is measured, the points between are derived linearly in "
            "voltage (assumption). Faults persist (the paper finds them deterministic). "
            "Assumed: a failing cell reads 0 (stuck_at_0_fraction 1), since the data release "
            "records faults as 1-to-0 flips."
        ),
        stuck_at_0_fraction=1.0,
        persistent=True,
    )


#: Preset factories by name; the first is the default.
PRESETS = {
    "exponential_law": exponential_law,
    "profiled_sram": profiled_sram,
    "yang_murmann_28nm": yang_murmann_28nm,
    "salami_fpga_bram": salami_fpga_bram,
}
DEFAULT = "exponential_law"
