"""TF Serving warm-up requests: a TFRecord of PredictionLog protos in assets.extra/.

The requests are encoded here, in protobuf's wire format, from the TF Serving protos' field
numbers (tensorflow_serving/apis: `ModelSpec` name = 1, signature_name = 3; `PredictRequest`
model_spec = 1, inputs = 2, a map of string to `TensorProto`; `PredictLog` request = 1;
`PredictionLog` predict_log = 6), so writing them needs no `tensorflow-serving-api`, whose
declared dependency on the full `tensorflow` package conflicts with `tensorflow-cpu`. The
input tensor is TensorFlow's own `TensorProto`. The tests compare the bytes with the
package's protos. Reading them back (`read_warmup_requests`) uses the package.
"""

import numpy as np
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"
SERVING_API_HINT = (
    "pip install --no-deps tensorflow-serving-api (--no-deps: it declares the full `tensorflow` "
    "package, which would replace tensorflow-cpu)"
)


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    """One length-delimited field (wire type 2): a string, bytes or an embedded message."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def prediction_log(model_name, signature_name, inputs):
    """A serialised `PredictionLog` holding one `PredictRequest`.

    Args:
        model_name: the name TF Serving serves the model under.
        signature_name: the signature the request calls.
        inputs: {input name: array}.

    Returns:
        The message's bytes, as `PredictionLog.SerializeToString()` gives them.

    Example:
    >>> record = prediction_log("fmnist", "serving_default", {"images": np.zeros((1, 2))})
    >>> record[:1]  # field 6 (predict_log), length-delimited
    b'2'
    """
    spec = _field(1, model_name) + _field(3, signature_name)
    request = _field(1, spec)
    for name, value in sorted(inputs.items()):
        tensor = tf.make_tensor_proto(np.asarray(value)).SerializeToString()
        request += _field(2, _field(1, name) + _field(2, tensor))
    return _field(6, _field(1, request))


def write_warmup_requests(path, model_name, signature_name, input_name, examples):
    """Writes one PredictRequest per example batch to `path` (TF Serving replays them at load).

    Args:
        path: output file (`<export>/assets.extra/tf_serving_warmup_requests`).
        model_name: the model name TF Serving serves the export under.
        signature_name: the signature the requests call.
        input_name: the signature's input key.
        examples: list of float32 arrays, each one request's batch.

    Returns:
        The number of requests written.
    """
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in examples:
            batch = np.asarray(batch, dtype=np.float32)
            writer.write(prediction_log(model_name, signature_name, {input_name: batch}))
    return len(examples)


def read_warmup_requests(path):
    """Parses a warm-up file back into a list of `PredictRequest` protos.

    Raises:
        ImportError: without `tensorflow-serving-api`, saying how to install it.
    """
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"Reading TF Serving warm-up requests needs tensorflow-serving-api: {SERVING_API_HINT}"
        ) from error
    requests = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests
