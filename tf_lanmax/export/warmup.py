"""TF Serving warm-up requests: a TFRecord of PredictionLog protos in assets.extra/."""

import numpy as np
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"


def write_warmup_requests(path, model_name, signature_name, input_name, examples):
    """Writes one PredictRequest per example batch to `path` (TF Serving replays them at load).

    Needs `tensorflow-serving-api` (install it with `pip install --no-deps
    tensorflow-serving-api`: its declared dependency on full `tensorflow` is not needed).

    Args:
        path: output file (`<export>/assets.extra/tf_serving_warmup_requests`).
        model_name: the model name TF Serving serves the export under.
        signature_name: the signature the requests call.
        input_name: the signature's input key.
        examples: list of float32 arrays, each one request's batch.

    Returns:
        The number of requests written.
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Writing TF Serving warm-up requests needs `tensorflow-serving-api`: "
            "pip install --no-deps tensorflow-serving-api"
        ) from error
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in examples:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
            )
            request.inputs[input_name].CopyFrom(
                tf.make_tensor_proto(np.asarray(batch, dtype=np.float32))
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return len(examples)


def read_warmup_requests(path):
    """Parses a warm-up file back into a list of `PredictRequest` protos."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests
