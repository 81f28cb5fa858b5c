"""`tl.export.for_serving`: a versioned SavedModel for TF Serving through keras.export."""

import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tf_lanmax._io import write_json_atomic, write_text_atomic
from tf_lanmax._validation import check_int
from tf_lanmax.energy import EnergyModel, memory_energy
from tf_lanmax.export.warmup import WARMUP_FILE, write_warmup_requests
from tf_lanmax.layers import deployment_model, faulty_layers

METADATA_FILE = "tf_lanmax.json"
INPUT_NAME = "images"


def _next_version(base_path):
    versions = (
        [int(d) for d in os.listdir(base_path) if d.isdigit()] if os.path.isdir(base_path) else []
    )
    return max(versions, default=0) + 1


def _outputs(y):
    if len(y.shape) == 2 and y.shape[-1] and y.shape[-1] > 1:
        return {"probabilities": y, "class": tf.argmax(y, axis=-1, output_type=tf.int64)}
    return {"outputs": y}


def _single_input_shape(model, input_shape):
    if input_shape is not None:
        shape = tuple(input_shape)
        if not shape or any(d is not None and (not isinstance(d, int) or d < 1) for d in shape):
            raise ValueError(
                "`input_shape` must be the shape of one example, e.g. (28, 28, 1). "
                f"Received: input_shape={input_shape!r}"
            )
        return (None, *shape)
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "for_serving cannot read the input shape of this (subclassed) model: pass "
            "`input_shape`, e.g. input_shape=(28, 28, 1). Received: input_shape=None"
        )
    if len(inputs) != 1:
        raise ValueError(
            f"for_serving exports models with exactly one image input. Received a model with "
            f"{len(inputs)} inputs"
        )
    return tuple(inputs[0].shape)


def models_config(model_name, base_path):
    """A TF Serving `model_config_list` entry (text proto) serving every version in base_path."""
    return (
        "model_config_list {\n"
        "  config {\n"
        f'    name: "{model_name}"\n'
        f'    base_path: "{os.path.abspath(base_path)}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { all {} }\n"
        "  }\n"
        "}\n"
    )


def for_serving(
    model,
    base_path,
    version=None,
    model_name=None,
    warmup_examples=None,
    energy_model=None,
    input_shape=None,
    verbose=False,
):
    """Exports `model` as `<base_path>/<version>/`, a SavedModel TF Serving loads.

    Signatures (input `images`: float32 ``(batch, *input_shape)``):

    - `serving_default`: deterministic — the stored binary / fixed-point weights with faults off
      (what the hardware holds), through plain Keras layers with no random op. Outputs
      `probabilities` and `class` for a classifier, else `outputs`.
    - `predict_with_faults`: also takes `fault_rates` (float32, one p per faulty layer, in model
      order) and `seed` (int64); draws fresh faults from those rates for hardware emulation.
      Stateless: it never changes the model's variables.

    `assets.extra/` holds `tf_lanmax.json` (per-layer format, p, eta, memory energy, package
    version, signature layout) and `tf_serving_warmup_requests`; `<base_path>/models.config` holds
    a `model_config_list` entry. The export is written to a temp folder in `base_path` and renamed
    into place, so a version folder is never half-written; an existing version is never
    overwritten.

    Args:
        model: a built single-input Keras model (Sequential, Functional or subclassed). For a
            `SharpnessAwareModel`, its `inner` model is exported.
        base_path: folder of the versions.
        version: a positive int, or None for the next free version. Defaults to `None`.
        model_name: name for TF Serving. Defaults to the name of the `base_path` folder, as TF
            Serving's own layout `/models/<model_name>/<version>` has it (not the model's
            name, which Keras may have made up, e.g. `sequential_3`).
        warmup_examples: float32 array of inputs for the warm-up requests (one request per row,
            at most 8). Defaults to `None` (zeros of the input shape).
        energy_model: a `tl.EnergyModel` for the metadata. Defaults to `EnergyModel()`.
        input_shape: shape of one example, needed only for subclassed models that do not
            expose `model.inputs`. Defaults to `None`.
        verbose: print the exported variables. Defaults to `False`.

    Returns:
        The path of the written version folder.

    Raises:
        ValueError: for an existing version, a bad version or a model with several inputs.
        NotImplementedError: on a backend other than TensorFlow.

    Example:
    >>> path = tl.export.for_serving(model, "models/fmnist")   # -> models/fmnist/1
    """
    from tf_lanmax._version import __version__

    if keras.backend.backend() != "tensorflow":
        # predict_with_faults is a tf.function over the layers' variables; a JAX model would
        # go through jax2tf, which this exporter does not do.
        raise NotImplementedError(
            "tl.export.for_serving needs the TensorFlow backend (KERAS_BACKEND=tensorflow). "
            f"Current backend: {keras.backend.backend()!r}. Save the model as .keras and export "
            "it from a TensorFlow process."
        )

    model = getattr(model, "inner", model)
    model_name = model_name or os.path.basename(os.path.normpath(os.path.abspath(base_path)))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", model_name):
        raise ValueError(
            f"`model_name` must match [A-Za-z0-9_.-]+. Received: model_name={model_name!r}"
        )
    os.makedirs(base_path, exist_ok=True)
    version = _next_version(base_path) if version is None else check_int("version", version, low=1)
    final = os.path.join(base_path, str(version))
    if os.path.exists(final):
        raise ValueError(
            f"`version` {version} already exists in {base_path}: versions are never "
            f"overwritten. Received: version={version}"
        )
    shape = _single_input_shape(model, input_shape)
    layers = faulty_layers(model)
    clean = deployment_model(model)

    archive = keras.export.ExportArchive()
    archive.track(model)
    images = tf.TensorSpec((None, *shape[1:]), tf.float32, name=INPUT_NAME)
    rate_vars = [layer.fault_rate for layer in layers]
    seed_vars = [layer.seed_generator.state for layer in layers]

    def stateless_predict(x, rates, seed):
        mapping = {id(v): r for v, r in zip(rate_vars, rates, strict=True)}
        for i, v in enumerate(seed_vars):
            mapping[id(v)] = tf.cast(tf.stack([seed, tf.constant(i, tf.int64)]), v.dtype)
        values = [mapping.get(id(v), v.value) for v in model.non_trainable_variables]
        y, _ = model.stateless_call(
            [v.value for v in model.trainable_variables], values, x, training=False
        )
        return y

    if clean is not None:
        archive.track(clean)

        def serve(images):
            return _outputs(clean(images, training=False))
    else:  # subclassed: the faulty model itself at p = 0, which reads exactly the stored weights

        def serve(images):
            zeros = tf.zeros((len(layers),), tf.float32)
            return _outputs(stateless_predict(images, tf.unstack(zeros), tf.constant(0, tf.int64)))

    archive.add_endpoint("serving_default", serve, input_signature=[images])
    if layers:

        def predict_with_faults(images, fault_rates, seed):
            rates = tf.unstack(fault_rates, num=len(layers))
            return _outputs(stateless_predict(images, rates, seed))

        archive.add_endpoint(
            "predict_with_faults",
            predict_with_faults,
            input_signature=[
                images,
                tf.TensorSpec((len(layers),), tf.float32, name="fault_rates"),
                tf.TensorSpec((), tf.int64, name="seed"),
            ],
        )

    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_path)
    try:
        export_dir = os.path.join(tmp, "export")
        archive.write_out(export_dir, verbose=verbose)
        extra = os.path.join(export_dir, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        metadata = {
            "package": "tf_lanmax",
            "package_version": __version__,
            "model_name": model_name,
            "version": version,
            "input": {"name": INPUT_NAME, "shape": [None, *shape[1:]], "dtype": "float32"},
            "signatures": {
                "serving_default": "stored weights, faults off (deterministic)",
                "predict_with_faults": "inputs + fault_rates (one per faulty layer) + seed",
            },
            "faulty_layers": [layer.name for layer in layers],
            "energy": memory_energy(model, energy_model or EnergyModel()) if layers else None,
        }
        write_json_atomic(os.path.join(extra, METADATA_FILE), metadata)
        if warmup_examples is None:
            warmup_examples = np.zeros((1, *shape[1:]), np.float32)
        rows = np.asarray(warmup_examples, np.float32)[:8]
        write_warmup_requests(
            os.path.join(extra, WARMUP_FILE),
            model_name,
            "serving_default",
            INPUT_NAME,
            [row[None] for row in rows],
        )
        os.replace(export_dir, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_text_atomic(
        os.path.join(base_path, "models.config"), models_config(model_name, base_path)
    )
    return final


def load_metadata(export_path):
    """Reads `assets.extra/tf_lanmax.json` of an export."""
    with open(os.path.join(export_path, "assets.extra", METADATA_FILE)) as f:
        return json.load(f)
