"""The torch sharpness-aware steps against the TensorFlow step and the plain torch step."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_lanmax as tl

BACKEND = keras.backend.backend()
pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="compares the torch step")

# One SAM step of a small conv net with BatchNorm and faulty layers per case (rule/splits),
# from weights drawn by numpy, on the backend of the process; prints the variables after each
# step. p = 1e-9: the faulty layers run their whole read path (encode, draw, decode,
# straight-through), and no bit faults in either process (checked), since TensorFlow and torch
# draw from different generators.
STEP_SCRIPT = """
import json, sys
import keras, numpy as np
from keras import ops
import tf_lanmax as tl

def step(rule, splits):
    inner = keras.Sequential([
        keras.Input((6, 6, 2)),
        tl.FaultyConv2D(4, 3, fault_rate=1e-9, seed=0, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        tl.FaultyDense(3, weight_format=tl.formats.FixedPoint(8, 5), fault_rate=1e-9, seed=1,
                       name="dense"),
    ])
    rng = np.random.default_rng(0)
    for v in inner.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.5)
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 3, size=8)
    clean = [
        np.array_equal(ops.convert_to_numpy(l.read_stored(ops.convert_to_tensor(l.kernel))),
                       ops.convert_to_numpy(l.stored_kernel()))
        for l in (inner.get_layer("conv"), inner.get_layer("dense"))
    ]
    model = tl.SharpnessAwareModel(inner, rule=rule, num_batch_splits=splits, seed=0)
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = model.train_on_batch(x, y, return_dict=True)
    floats = [v for v in inner.variables if "float" in str(v.dtype)]
    return {
        "clean": clean,
        "loss": float(logs["loss"]),
        "variables": {v.path: ops.convert_to_numpy(v.value).ravel().tolist() for v in floats},
    }

print(json.dumps({f"{rule}/{splits}": step(rule, int(splits)) for rule, splits in
                  (case.split("/") for case in sys.argv[1:])}))
"""
CASES = ("sam/1", "asam/1", "samson/2")


def _steps(backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", STEP_SCRIPT, *CASES],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def steps_on_both_backends():
    # One process per backend for all cases: starting TensorFlow costs most of the time.
    return _steps("tensorflow"), _steps("torch")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow")
@pytest.mark.parametrize("case", CASES)
def test_the_torch_step_equals_the_tensorflow_step(steps_on_both_backends, case):
    tf_result, torch_result = (results[case] for results in steps_on_both_backends)
    assert tf_result["clean"] == torch_result["clean"] == [True, True]
    assert tf_result["loss"] == pytest.approx(torch_result["loss"], rel=1e-5)
    assert tf_result["variables"].keys() == torch_result["variables"].keys()
    for path, values in tf_result["variables"].items():
        np.testing.assert_allclose(torch_result["variables"][path], values, rtol=1e-5, atol=1e-5)


def _faulty_net(seed=0):
    inner = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            tl.FaultyConv2D(4, 3, fault_rate=0.05, seed=seed, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            tl.FaultyDense(3, fault_rate=0.05, seed=seed + 1, name="dense"),
        ]
    )
    rng = np.random.default_rng(0)
    for v in inner.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.5)
    return inner


def _batch():
    rng = np.random.default_rng(1)
    return rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, size=8)


def _values(model):
    return [keras.ops.convert_to_numpy(v.value) for v in model.variables]


@pytest.mark.parametrize("rule", ["sam", "asam", "samson"])
def test_rho_to_zero_is_the_plain_step_with_the_same_fault_masks(rule):
    # At p = 0.05 the faults change the gradient: only pass 2 reading pass 1's fault masks (and
    # BatchNorm state) makes the step at rho -> 0 the plain step.
    x, y = _batch()
    plain = _faulty_net()
    plain.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    plain.train_on_batch(x, y)
    inner = _faulty_net()
    sam = tl.SharpnessAwareModel(inner, rule=rule, rho=1e-9)
    sam.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    sam.train_on_batch(x, y)
    for a, b in zip(_values(plain), _values(inner), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Fresh masks in pass 2 give another gradient: the comparison can fail.
    resampled = _faulty_net()
    other = tl.SharpnessAwareModel(resampled, rule=rule, rho=1e-9, resample_faults=True)
    other.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    other.train_on_batch(x, y)
    kernel = resampled.get_layer("conv").kernel
    assert not np.allclose(keras.ops.convert_to_numpy(kernel.value), _values(plain)[0], atol=1e-6)


def test_the_perturbed_pass_leaves_no_state_behind():
    x, y = _batch()
    plain = _faulty_net()
    plain.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(True))
    plain.train_on_batch(x, y)
    inner = _faulty_net()
    sam = tl.SharpnessAwareModel(inner, rule="samson", rho=0.5)
    sam.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(True))
    sam.train_on_batch(x, y)
    # lr = 0: the weights stay; BatchNorm statistics and the draw counters moved once (pass 1).
    for a, b in zip(_values(plain), _values(inner), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rule", ["sam", "rwp"])
def test_sub_batches_lookbehind_and_rwp_train(rule):
    x, y = _batch()
    inner = _faulty_net()
    kwargs = {"lookbehind_steps": 2} if rule == "sam" else {}
    sam = tl.SharpnessAwareModel(inner, rule=rule, num_batch_splits=2, seed=0, **kwargs)
    sam.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    history = sam.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["batch_loss"]))
    with pytest.raises(ValueError, match="num_batch_splits"):
        bad = tl.SharpnessAwareModel(_faulty_net(), rule=rule, num_batch_splits=3)
        bad.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
        bad.train_on_batch(x, y)
