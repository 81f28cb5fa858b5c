"""TF Serving contract of `tl.export.for_serving`, checked without the C++ server.

TF Serving is not installable here, so the contract is checked from the outside,
the way the server sees an export:

- a separate Python process that imports only TensorFlow, numpy and TF Serving's protos loads
  each SavedModel and calls its signatures; its outputs must equal `model.predict` with faults
  off *exactly*;
- `saved_model_cli show --all` / `run`, TensorFlow's own tools;
- the warm-up file parsed back into `PredictRequest` protos that match the signature, and
  replayed against the signature it names in the separate process, as TF Serving does on load;
- TF Serving's REST bodies (row and columnar) built for the signatures.

Starting TensorFlow costs most of the time on 2 busy cores, so one module fixture exports every
model once and runs the three outside processes concurrently.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import finish

import tf_lanmax as tl
from tf_lanmax._io import default_file_mode

# A SavedModel for TF Serving is written from a TensorFlow process (for_serving refuses JAX).
pytestmark = pytest.mark.tensorflow_only

BATCH = 5
NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)
OUTPUTS = ("class", "probabilities")
TIMEOUT = 300
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

# The separate process: TensorFlow, numpy and the tensorflow_serving protos only (no tf_lanmax,
# no Keras import of ours). For every export in the spec it records the signatures' structured
# input/output specs, the op types reachable from serving_default, and the outputs of:
#   serving_default twice; predict_with_faults at p = 0.5 (seed 1 twice, seed 2) and at
#   p = 1e-12 (seed 1); serving_default again afterwards (predict_with_faults is stateless);
#   every warm-up request of assets.extra/, parsed from its PredictionLog TFRecord and run
#   against the signature it names, as TF Serving replays them before serving.
LOADER = r"""
import json
import os
import sys

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

spec_path, report_path = sys.argv[1:]
with open(spec_path) as f:
    spec = json.load(f)


def tensor_spec(s):
    return {"shape": s.shape.as_list(), "dtype": s.dtype.name}


def op_types(graph_def):
    # Op types of the graph and of every function it calls, transitively.
    library = {f.signature.name: f for f in graph_def.library.function}
    types, seen, stack = set(), set(), list(graph_def.node)
    while stack:
        node = stack.pop()
        types.add(node.op)
        for attr in node.attr.values():
            names = [attr.func.name] if attr.func.name else [g.name for g in attr.list.func]
            for name in names:
                if name in library and name not in seen:
                    seen.add(name)
                    stack.extend(library[name].node_def)
    return sorted(types)


def warmup_requests(export):
    # TF Serving's layout: a TFRecord of PredictionLog protos, one request per record.
    path = os.path.join(export, "assets.extra", "tf_serving_warmup_requests")
    for raw in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        assert log.WhichOneof("log_type") == "predict_log", log.WhichOneof("log_type")
        yield log.predict_log.request


report = {}
for name, job in spec.items():
    loaded = tf.saved_model.load(job["export"])
    signatures = {}
    for key, fn in loaded.signatures.items():
        args, kwargs = fn.structured_input_signature
        assert not args, args
        signatures[key] = {
            "inputs": {k: tensor_spec(s) for k, s in kwargs.items()},
            "outputs": {k: tensor_spec(s) for k, s in fn.structured_outputs.items()},
        }
    serve = loaded.signatures["serving_default"]
    images = tf.constant(np.load(job["images"]))
    outputs = {}

    def record(tag, result):
        for key, value in result.items():
            outputs[f"{tag}/{key}"] = value.numpy()

    record("serve_0", serve(images=images))
    record("serve_1", serve(images=images))
    if "predict_with_faults" in loaded.signatures:
        faulty = loaded.signatures["predict_with_faults"]
        n = signatures["predict_with_faults"]["inputs"]["fault_rates"]["shape"][0]
        for tag, p, seed in [("half_s1", 0.5, 1), ("half_s1_again", 0.5, 1),
                             ("half_s2", 0.5, 2), ("tiny_s1", 1e-12, 1)]:
            record(tag, faulty(images=images, fault_rates=tf.fill([n], tf.constant(p)),
                               seed=tf.constant(seed, tf.int64)))
    record("serve_after", serve(images=images))
    warmup = []
    for i, request in enumerate(warmup_requests(job["export"])):
        fn = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        record(f"warmup_{i}", fn(**inputs))
        for key, value in inputs.items():
            outputs[f"warmup_{i}/inputs/{key}"] = value.numpy()
        model_spec = request.model_spec
        warmup.append({"model_name": model_spec.name, "inputs": sorted(inputs),
                       "signature_name": model_spec.signature_name})
    np.savez(job["outputs"], **outputs)
    report[name] = {
        "signatures": signatures,
        "serving_default_ops": op_types(serve.graph.as_graph_def()),
        "warmup": warmup,
    }
report["tf_lanmax_imported"] = "tf_lanmax" in sys.modules
with open(report_path, "w") as f:
    json.dump(report, f)
assert "tf_lanmax" not in sys.modules
"""


# ---------------------------------------------------------------------------------------------
# TF Serving REST bodies (https://www.tensorflow.org/tfx/serving/api_rest, "Predict API").
# They document the contract a client of the export relies on.
# ---------------------------------------------------------------------------------------------


def rest_request_row(signature_name, inputs):
    """`{"signature_name", "instances": [{input: value}, ...]}`: one object per example.

    The row format needs every input batched along axis 0 with the same batch size, so it fits
    `serving_default` (images only) but not `predict_with_faults` (unbatched `fault_rates`, `seed`).
    """
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in inputs.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(f"row format needs one batch size for all inputs; got {sizes}")
    n = next(iter(sizes.values()))
    instances = [{k: np.asarray(v)[i].tolist() for k, v in inputs.items()} for i in range(n)]
    return {"signature_name": signature_name, "instances": instances}


def rest_request_columnar(signature_name, inputs):
    """`{"signature_name", "inputs": {input: value}}`: each input whole (any shapes)."""
    return {
        "signature_name": signature_name,
        "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()},
    }


def rest_response_row(outputs):
    """The server's reply to a row request: `{"predictions": [{output: value}, ...]}`."""
    n = len(next(iter(outputs.values())))
    return {
        "predictions": [
            {k: np.asarray(v)[i].tolist() for k, v in outputs.items()} for i in range(n)
        ]
    }


def rest_response_columnar(outputs):
    """The server's reply to a columnar request: `{"outputs": {output: value}}`."""
    return {"outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()}}


def _json_round_trip(body):
    # What goes over the wire: strict JSON (no NaN / Infinity), parsed back.
    return json.loads(json.dumps(body, allow_nan=False))


# ---------------------------------------------------------------------------------------------
# Models (tiny) and the shared fixture
# ---------------------------------------------------------------------------------------------


def _images(n=BATCH, seed=0):
    return np.random.default_rng(seed).random((n, *INPUT_SHAPE), dtype=np.float32)


def _functional():
    inputs = keras.Input(INPUT_SHAPE)
    x = tl.FaultyConv2D(
        4, 3, strides=2, weight_format="fixed_point", fault_rate=2e-3, seed=11, name="conv"
    )(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = tl.FaultyDense(NUM_CLASSES, fault_rate=3e-3, seed=12, name="dense")(x)
    outputs = keras.layers.Softmax()(x)
    return keras.Model(inputs, outputs, name="functional_net")


class FunctionalSubclass(keras.Model):
    """A subclassed model built through the functional constructor (Keras cannot clone it)."""

    def __init__(self, **kwargs):
        inputs = keras.Input(INPUT_SHAPE)
        x = tl.FaultyConv2D(4, 3, strides=2, fault_rate=1e-3, seed=21, name="sub_conv")(inputs)
        x = keras.layers.Flatten()(x)
        x = tl.FaultyDense(NUM_CLASSES, fault_rate=4e-3, seed=22, name="sub_dense")(x)
        super().__init__(inputs, keras.layers.Softmax()(x), **kwargs)


class CallSubclass(keras.Model):
    """A subclassed model with its own `call` (no `inputs` attribute)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = tl.FaultyConv2D(4, 3, strides=2, seed=31)
        self.flatten = keras.layers.Flatten()
        self.dense = tl.FaultyDense(NUM_CLASSES, activation="softmax", seed=32)

    def call(self, x, training=None):
        return self.dense(self.flatten(self.conv(x)))


def _lanmax_trained():
    # Enough batches in one epoch (warm-up 0) for LaNMax to move p away from its initial 1e-2.
    model = tl.models.binary_cnn(width_multiplier=0.25, fault_rate=1e-2, seed=1, name="lanmax_cnn")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    x, y = _images(18, seed=1), np.arange(18) % NUM_CLASSES
    lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=0)
    model.fit(x, y, batch_size=2, epochs=1, callbacks=[lanmax], verbose=0)
    return model, lanmax


def _sam_wrapper():
    inner = tl.models.binary_cnn(width_multiplier=0.25, seed=2, name="sam_cnn")
    sam = tl.SharpnessAwareModel(inner, rule="samson")
    sam.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    sam.fit(_images(4, seed=2), np.arange(4), batch_size=4, epochs=1, verbose=0)
    return sam


def _saved_model_cli():
    return shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))


def _start(args):
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


def _finish(process):
    return finish(process, TIMEOUT)


class Served:
    """What the fixture built: models, export paths and the outside processes' results."""


def _warmup_rows(s, kind):
    """The rows of `kind`'s warm-up requests: the examples given, else one zero image."""
    return s.warmup if kind == "binary_cnn" else np.zeros((1, *INPUT_SHAPE), np.float32)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    s = Served()
    s.root = root
    s.images = _images()
    s.images_path = str(root / "images.npy")
    np.save(s.images_path, s.images)

    # The plain binary CNN first, so saved_model_cli starts while the others are exported.
    cnn = tl.models.binary_cnn(width_multiplier=0.25, seed=0)
    s.models = {"binary_cnn": cnn}
    s.warmup = _images(3, seed=7)
    s.exports = {
        "binary_cnn": tl.export.for_serving(cnn, str(root / "binary_cnn"), warmup_examples=s.warmup)
    }
    cli = _saved_model_cli()
    s.cli_outdir = str(root / "cli_out")
    processes = {}
    if cli:
        path = s.exports["binary_cnn"]
        processes["show"] = _start([cli, "show", "--dir", path, "--all"])
        processes["run"] = _start(
            [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def"]
            + ["serving_default", "--inputs", f"images={s.images_path}", "--outdir", s.cli_outdir]
        )

    s.models["functional"] = _functional()
    s.models["functional_subclass"] = FunctionalSubclass(name="functional_subclass")
    s.models["lanmax"], s.lanmax = _lanmax_trained()
    s.models["sam"] = _sam_wrapper()
    for name, model in s.models.items():
        if name not in s.exports:
            s.exports[name] = tl.export.for_serving(model, str(root / name))

    spec = {
        name: {"export": path, "images": s.images_path, "outputs": str(root / f"{name}.npz")}
        for name, path in s.exports.items()
    }
    spec_path, report_path = root / "spec.json", root / "report.json"
    spec_path.write_text(json.dumps(spec))
    processes["loader"] = _start([sys.executable, "-c", LOADER, str(spec_path), str(report_path)])

    # Reference predictions in this process, with faults off, while the others run; the
    # warm-up rows one request (one predict call) at a time, as the process replays them.
    s.expected, s.deployed, s.warmup_expected = {}, {}, {}
    for name, model in s.models.items():
        inner = getattr(model, "inner", model)
        with tl.faults_disabled(inner):
            s.expected[name] = inner.predict(s.images, verbose=0)
            s.warmup_expected[name] = [
                inner.predict(row[None], verbose=0) for row in _warmup_rows(s, name)
            ]
        clean = tl.export.deployment_model(inner)
        s.deployed[name] = None if clean is None else clean.predict(s.images, verbose=0)

    s.results = {key: _finish(p) for key, p in processes.items()}
    loader = s.results["loader"]
    assert loader.returncode == 0, loader.stderr[-3000:]
    s.report = json.loads(report_path.read_text())
    s.outputs = {name: dict(np.load(job["outputs"])) for name, job in spec.items()}
    return s


KINDS = ("binary_cnn", "functional", "functional_subclass", "lanmax", "sam")


# ---------------------------------------------------------------------------------------------
# serving_default and predict_with_faults, loaded in a separate process
# ---------------------------------------------------------------------------------------------


def test_loader_process_did_not_import_tf_lanmax(served):
    assert served.report["tf_lanmax_imported"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_serving_default_equals_predict_with_faults_off_exactly(served, kind):
    out, expected = served.outputs[kind], served.expected[kind]
    assert out["serve_0/probabilities"].dtype == np.float32
    np.testing.assert_array_equal(out["serve_0/probabilities"], expected)
    np.testing.assert_array_equal(out["serve_0/class"], np.argmax(expected, axis=-1))
    assert out["serve_0/class"].dtype == np.int64


@pytest.mark.parametrize("kind", KINDS)
def test_serving_default_equals_the_deployment_model(served, kind):
    deployed = served.deployed[kind]
    if kind == "functional_subclass":
        assert deployed is None  # Keras cannot clone it: served through the faulty model at p = 0
        return
    np.testing.assert_array_equal(served.outputs[kind]["serve_0/probabilities"], deployed)


@pytest.mark.parametrize("kind", KINDS)
def test_serving_default_is_deterministic_and_unchanged_by_faulty_calls(served, kind):
    out = served.outputs[kind]
    for key in OUTPUTS:
        np.testing.assert_array_equal(out[f"serve_1/{key}"], out[f"serve_0/{key}"])
        np.testing.assert_array_equal(out[f"serve_after/{key}"], out[f"serve_0/{key}"])


@pytest.mark.parametrize("kind", ["binary_cnn", "functional", "lanmax", "sam"])
def test_serving_default_graph_has_no_random_op(served, kind):
    ops = served.report[kind]["serving_default_ops"]
    assert "Conv2D" in ops and "MatMul" in ops  # the walk reached the model's functions
    assert not [op for op in ops if "Random" in op], ops


@pytest.mark.parametrize("kind", KINDS)
def test_predict_with_faults_at_half_differs_and_at_tiny_p_equals(served, kind):
    out = served.outputs[kind]
    clean = out["serve_0/probabilities"]
    assert not np.array_equal(out["half_s1/probabilities"], clean)
    np.testing.assert_array_equal(out["tiny_s1/probabilities"], clean)
    np.testing.assert_array_equal(out["tiny_s1/class"], out["serve_0/class"])
    # The faulty outputs are still distributions with their argmax as class.
    np.testing.assert_allclose(out["half_s1/probabilities"].sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        out["half_s1/class"], np.argmax(out["half_s1/probabilities"], axis=-1)
    )


@pytest.mark.parametrize("kind", KINDS)
def test_predict_with_faults_seed_fixes_the_draw(served, kind):
    out = served.outputs[kind]
    np.testing.assert_array_equal(out["half_s1_again/probabilities"], out["half_s1/probabilities"])
    assert not np.array_equal(out["half_s2/probabilities"], out["half_s1/probabilities"])


@pytest.mark.parametrize("kind", KINDS)
def test_signatures_have_stable_names_shapes_and_dtypes(served, kind):
    signatures = served.report[kind]["signatures"]
    assert sorted(signatures) == ["predict_with_faults", "serving_default"]
    model = served.models[kind]
    n_layers = len(tl.faulty_layers(getattr(model, "inner", model)))
    images = {"shape": [None, *INPUT_SHAPE], "dtype": "float32"}
    outputs = {
        "class": {"shape": [None], "dtype": "int64"},
        "probabilities": {"shape": [None, NUM_CLASSES], "dtype": "float32"},
    }
    assert signatures["serving_default"] == {"inputs": {"images": images}, "outputs": outputs}
    assert signatures["predict_with_faults"] == {
        "inputs": {
            "images": images,
            "fault_rates": {"shape": [n_layers], "dtype": "float32"},
            "seed": {"shape": [], "dtype": "int64"},
        },
        "outputs": outputs,
    }


def test_export_keeps_the_learned_rates(served):
    model, lanmax = served.models["lanmax"], served.lanmax
    rates = {layer.name: float(layer.fault_rate.numpy()) for layer in tl.faulty_layers(model)}
    assert rates == pytest.approx(lanmax.rates, rel=1e-6)
    # LaNMax updated p (from 1e-2) at the end of the epoch, and the export kept it.
    assert all(not math.isclose(p, 1e-2, rel_tol=1e-4) for p in rates.values()), rates


def test_call_subclassed_model_exports_with_an_input_shape(tmp_path):
    model = CallSubclass(name="call_subclass")
    x = _images(2)
    model(x)
    with pytest.raises(ValueError, match="input_shape"):
        tl.export.for_serving(model, str(tmp_path / "call_subclass"))
    path = tl.export.for_serving(model, str(tmp_path / "call_subclass"), input_shape=x.shape[1:])
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](images=tf.constant(x))
    with tl.faults_disabled(model):
        np.testing.assert_array_equal(out[next(iter(out))].numpy().shape[0], 2)


# ---------------------------------------------------------------------------------------------
# Metadata, warm-up requests, models.config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_describes_every_faulty_layer(served, kind):
    model = served.models[kind]
    inner = getattr(model, "inner", model)
    layers = tl.faulty_layers(inner)
    meta = tl.export.load_metadata(served.exports[kind])
    assert meta["package_version"] == tl.__version__
    # TF Serving's name is the base_path folder's, not a (maybe made-up) Keras model name.
    assert meta["model_name"] == kind
    assert meta["version"] == 1
    assert meta["input"] == {"name": "images", "shape": [None, *INPUT_SHAPE], "dtype": "float32"}
    assert meta["faulty_layers"] == [layer.name for layer in layers]
    rows = meta["energy"]["layers"]
    assert [row["name"] for row in rows] == meta["faulty_layers"]
    a = meta["energy"]["energy_model"]["a"]
    for row, layer in zip(rows, layers, strict=True):
        p = float(layer.fault_rate.numpy())
        assert row["fault_rate"] == pytest.approx(p, rel=1e-7)
        assert row["eta"] == pytest.approx(-math.log(p) / a, rel=1e-9)  # eta(p) = -ln(p) / a
        assert row["energy"] == pytest.approx(row["stored_bits"] * row["eta"], rel=1e-9)
        assert row["stored_bits"] == layer.stored_bits
        assert row["format"] == repr(layer.weight_format)
    assert meta["energy"]["total_energy"] == pytest.approx(sum(r["energy"] for r in rows))


def test_metadata_of_the_lanmax_model_holds_the_learned_rates(served):
    rows = tl.export.load_metadata(served.exports["lanmax"])["energy"]["layers"]
    learned = served.lanmax.rates
    assert {row["name"]: row["fault_rate"] for row in rows} == pytest.approx(learned, rel=1e-6)


def test_warmup_requests_match_the_serving_signature(served):
    path = os.path.join(served.exports["binary_cnn"], "assets.extra", "tf_serving_warmup_requests")
    requests = tl.export.read_warmup_requests(path)
    signature = served.report["binary_cnn"]["signatures"]["serving_default"]["inputs"]
    assert len(requests) == len(served.warmup)
    for request, row in zip(requests, served.warmup, strict=True):
        assert request.model_spec.signature_name == "serving_default"
        assert request.model_spec.name == "binary_cnn"
        assert sorted(request.inputs) == sorted(signature) == ["images"]
        tensor = request.inputs["images"]
        assert tf.dtypes.as_dtype(tensor.dtype).name == signature["images"]["dtype"]
        array = tf.make_ndarray(tensor)
        assert array.shape == (1, *INPUT_SHAPE)
        spec_shape = signature["images"]["shape"]
        assert len(array.shape) == len(spec_shape)
        assert all(s is None or s == d for s, d in zip(spec_shape, array.shape, strict=True))
        np.testing.assert_array_equal(array[0], row)


@pytest.mark.parametrize("kind", KINDS)
def test_warmup_requests_run_in_the_separate_process_and_equal_predict(served, kind):
    # The outside process parsed each request itself and ran it against the signature it names.
    requests = served.report[kind]["warmup"]
    rows, out = _warmup_rows(served, kind), served.outputs[kind]
    assert len(requests) == len(rows) == len(served.warmup_expected[kind])
    for i, (request, row) in enumerate(zip(requests, rows, strict=True)):
        assert request == {
            "model_name": kind,
            "signature_name": "serving_default",
            "inputs": ["images"],
        }
        np.testing.assert_array_equal(out[f"warmup_{i}/inputs/images"], row[None])
        expected = served.warmup_expected[kind][i]
        np.testing.assert_array_equal(out[f"warmup_{i}/probabilities"], expected)
        np.testing.assert_array_equal(out[f"warmup_{i}/class"], np.argmax(expected, axis=-1))


def test_default_warmup_is_one_zero_image(served):
    path = os.path.join(served.exports["functional"], "assets.extra", "tf_serving_warmup_requests")
    (request,) = tl.export.read_warmup_requests(path)
    np.testing.assert_array_equal(
        tf.make_ndarray(request.inputs["images"]), np.zeros((1, *INPUT_SHAPE), np.float32)
    )


def test_models_config_names_the_model_and_absolute_base_path(served):
    base = os.path.dirname(served.exports["sam"])
    text = open(os.path.join(base, "models.config")).read()
    assert 'name: "sam"' in text  # the folder's name, not the inner model's (sam_cnn)
    assert f'base_path: "{os.path.abspath(base)}"' in text
    assert 'model_platform: "tensorflow"' in text
    assert text == tl.export.models_config("sam", base)


# ---------------------------------------------------------------------------------------------
# saved_model_cli (TensorFlow's tool, in its own process)
# ---------------------------------------------------------------------------------------------


def _signature_sections(text):
    """{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}, "method": str}}."""
    sections = {}
    for block in re.split(r"\n(?=signature_def\[)", text):
        head = re.match(r"signature_def\['([^']+)'\]", block)
        if not head:
            continue
        found = {"inputs": {}, "outputs": {}}
        for kind, name, dtype, shape in re.findall(
            r"(inputs|outputs)\['([^']+)'\] tensor_info:\s*dtype: (\w+)\s*shape: ([^\n]+)", block
        ):
            found[kind][name] = (dtype, shape.strip())
        method = re.search(r"Method name is: ([^\n]*)", block)
        found["method"] = method.group(1).strip() if method else None
        sections[head.group(1)] = found
    return sections


def _cli_result(served, key):
    if key not in served.results:
        pytest.skip("saved_model_cli is not installed next to this Python")
    result = served.results[key]
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_saved_model_cli_show_lists_both_signatures(served):
    sections = _signature_sections(_cli_result(served, "show").stdout)
    images = ("DT_FLOAT", "(-1, 28, 28, 1)")
    outputs = {"class": ("DT_INT64", "(-1)"), "probabilities": ("DT_FLOAT", "(-1, 10)")}
    assert sections["serving_default"] == {
        "inputs": {"images": images},
        "outputs": outputs,
        "method": "tensorflow/serving/predict",
    }
    assert sections["predict_with_faults"] == {
        "inputs": {
            "images": images,
            "fault_rates": ("DT_FLOAT", "(4)"),
            "seed": ("DT_INT64", "()"),
        },
        "outputs": outputs,
        "method": "tensorflow/serving/predict",
    }


def test_saved_model_cli_run_equals_predict(served):
    _cli_result(served, "run")
    probabilities = np.load(os.path.join(served.cli_outdir, "probabilities.npy"))
    classes = np.load(os.path.join(served.cli_outdir, "class.npy"))
    np.testing.assert_array_equal(probabilities, served.expected["binary_cnn"])
    np.testing.assert_array_equal(classes, np.argmax(served.expected["binary_cnn"], axis=-1))


# ---------------------------------------------------------------------------------------------
# TF Serving REST bodies for the signatures
# ---------------------------------------------------------------------------------------------


def test_rest_row_request_matches_the_serving_signature(served):
    signature = served.report["binary_cnn"]["signatures"]["serving_default"]
    body = _json_round_trip(rest_request_row("serving_default", {"images": served.images}))
    assert body["signature_name"] == "serving_default"
    assert len(body["instances"]) == BATCH
    for instance, image in zip(body["instances"], served.images, strict=True):
        assert sorted(instance) == sorted(signature["inputs"])
        array = np.asarray(instance["images"], dtype=np.float32)
        assert list(array.shape) == signature["inputs"]["images"]["shape"][1:]
        np.testing.assert_array_equal(array, image)  # float32 survives JSON exactly


def test_rest_columnar_request_for_predict_with_faults(served):
    signature = served.report["binary_cnn"]["signatures"]["predict_with_faults"]["inputs"]
    n = signature["fault_rates"]["shape"][0]
    inputs = {"images": served.images, "fault_rates": np.full(n, 0.5, np.float32), "seed": 1}
    body = _json_round_trip(rest_request_columnar("predict_with_faults", inputs))
    assert sorted(body["inputs"]) == sorted(signature)
    assert np.asarray(body["inputs"]["images"]).shape == served.images.shape
    assert len(body["inputs"]["fault_rates"]) == n
    assert body["inputs"]["seed"] == 1
    with pytest.raises(ValueError, match="batch size"):
        rest_request_row("predict_with_faults", inputs)  # unbatched inputs need columnar


def test_rest_responses_from_a_signature_call(served):
    out = served.outputs["binary_cnn"]
    outputs = {key: out[f"serve_0/{key}"] for key in OUTPUTS}
    body = _json_round_trip(rest_response_row(outputs))
    assert len(body["predictions"]) == BATCH
    for prediction, probabilities in zip(
        body["predictions"], served.expected["binary_cnn"], strict=True
    ):
        assert sorted(prediction) == sorted(OUTPUTS)
        assert isinstance(prediction["class"], int)
        assert prediction["class"] == int(np.argmax(probabilities))
        np.testing.assert_array_equal(np.float32(prediction["probabilities"]), probabilities)
    columnar = _json_round_trip(rest_response_columnar(outputs))
    assert columnar["outputs"]["class"] == [p["class"] for p in body["predictions"]]
    assert np.asarray(columnar["outputs"]["probabilities"]).shape == (BATCH, NUM_CLASSES)


# ---------------------------------------------------------------------------------------------
# Versions and atomic writes (a tiny Dense-only model: cheap to trace)
# ---------------------------------------------------------------------------------------------


def _tiny():
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Flatten()(inputs)
    outputs = tl.FaultyDense(NUM_CLASSES, activation="softmax", seed=5)(x)
    return keras.Model(inputs, outputs, name="tiny")


def _leftovers(base):
    return [name for name in os.listdir(base) if name.startswith(".tmp")]


def test_versions_count_up_and_are_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _tiny()
    base = os.path.join("models", "tiny")  # relative: models.config still gets it absolute
    first = tl.export.for_serving(model, base)
    second = tl.export.for_serving(model, base)
    assert (first, second) == (os.path.join(base, "1"), os.path.join(base, "2"))
    assert tl.export.load_metadata(second)["version"] == 2
    before = sorted(os.listdir(first))
    with pytest.raises(ValueError, match="version"):
        tl.export.for_serving(model, base, version=1)
    with pytest.raises(ValueError, match="version"):
        tl.export.for_serving(model, base, version=0)
    assert sorted(os.listdir(first)) == before
    assert sorted(os.listdir(base)) == ["1", "2", "models.config"]  # no .tmp-* left behind
    text = open(os.path.join(base, "models.config")).read()
    assert f'base_path: "{tmp_path / "models" / "tiny"}"' in text
    assert 'name: "tiny"' in text


def test_models_config_is_readable_like_any_new_file(served):
    base = os.path.dirname(served.exports["binary_cnn"])
    mode = os.stat(os.path.join(base, "models.config")).st_mode & 0o777
    assert mode == default_file_mode()


def test_failed_write_leaves_no_version_folder(tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    # ExportArchive() builds a backend-specific subclass: patch the class `for_serving` gets.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", broken)
    base = tmp_path / "tiny"
    with pytest.raises(RuntimeError, match="disk full"):
        tl.export.for_serving(_tiny(), str(base))
    assert not (base / "1").exists()
    assert _leftovers(base) == []
    assert not (base / "models.config").exists()
