"""TF Serving warm-up requests written without `tensorflow-serving-api`: the bytes equal the
package's own `PredictionLog.SerializeToString()`, so TF Serving parses them as it would its
own (the end-to-end replay against the signature is in tests/test_export.py)."""

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only


@pytest.mark.parametrize("shape", [(1, 28, 28, 1), (3, 4), (2, 200)])
def test_prediction_log_bytes_equal_the_serving_api_protos(shape):
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tensorflow_serving.apis")
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from tf_lanmax.export.warmup import prediction_log

    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="fmnist", signature_name="serving_default")
    )
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    ours = prediction_log("fmnist", "serving_default", {"images": x})
    assert ours == log.SerializeToString()
    # ... and it is not a constant: another name gives other bytes.
    assert prediction_log("other", "serving_default", {"images": x}) != ours
    parsed = prediction_log_pb2.PredictionLog.FromString(ours).predict_log.request
    np.testing.assert_array_equal(tf.make_ndarray(parsed.inputs["images"]), x)
