"""Analog (memristor) device models with published presets, and the weight mapping onto them.

A `Device` turns normalised target conductances ``g = G / g_max`` in [0, 1] into noisy readouts
at an inference time (`sample`) and gives their mean and variance (`moments`). The presets are
published statistical models: `"multiplicative"` (SAMSON), `"additive"` (MemSE), `"pcm"`
(Nandakumar et al. / aihwkit `PCMLikeNoiseModel`), `"hermes"` (Le Gallo et al. 2023),
`"reram_wan2022"` (Wan et al. 2022) and `"reram_cmo"` (IBM Zurich CMO/HfOx).
`perturb_weights` / `weight_moments` map a kernel onto devices and back.

Everything is written in `keras.ops` / `keras.random`, so it runs inside compiled steps on every
backend.

Example:
>>> import tf_lanmax as tl
>>> pcm = tl.analog.get("pcm", drift_compensation=True)
>>> noisy = tl.analog.perturb_weights(pcm, kernel, t_inference=86400.0, seed=0)
>>> mean, var = tl.analog.weight_moments(pcm, kernel, t_inference=86400.0)

The maths, with the papers it follows: docs/maths/analog.md.
"""

from tf_lanmax.analog.additive import Additive
from tf_lanmax.analog.device import Device
from tf_lanmax.analog.hardware_aware import HardwareAwareModel
from tf_lanmax.analog.hermes import Hermes
from tf_lanmax.analog.mapping import (
    conductances,
    perturb_weights,
    sample_weights,
    weight_moments,
)
from tf_lanmax.analog.multiplicative import Multiplicative
from tf_lanmax.analog.pcm import PCM
from tf_lanmax.analog.pcm_like import PCMLike
from tf_lanmax.analog.registry import PRESETS, deserialize, get, names, serialize
from tf_lanmax.analog.reram_cmo import ReRamCMO
from tf_lanmax.analog.reram_wan2022 import ReRamWan2022

__all__ = [
    "HardwareAwareModel",
    "PRESETS",
    "PCM",
    "Additive",
    "Device",
    "Hermes",
    "Multiplicative",
    "PCMLike",
    "ReRamCMO",
    "ReRamWan2022",
    "conductances",
    "deserialize",
    "get",
    "names",
    "perturb_weights",
    "sample_weights",
    "serialize",
    "weight_moments",
]
