"""Layerwise sensitivity: one layer at a time at a high fault rate, the others unchanged."""

from keras import ops

from tf_lanmax._validation import check_probability
from tf_lanmax.evaluation.monte_carlo import evaluate_under_faults
from tf_lanmax.layers import faulty_layers


def sensitivity(model, data, test_rate=0.5, draws=5, confidence=0.95, seed=0, verbose=0):
    """The LaNMax paper's layerwise analysis: accuracy with one layer at `test_rate`.

    The model (typically trained at a uniform p) is evaluated once at its current rates, then
    once per faulty layer with only that layer raised to `test_rate`. A layer whose accuracy
    barely moves can run at a much lower energy. Every rate is restored afterwards, even on error.

    Args:
        model: a compiled model with faulty layers and an accuracy metric.
        data: a `tf.data.Dataset` of (x, y) batches or an `(x, y)` tuple.
        test_rate: the rate of the layer under test, in (0, 0.5]. Defaults to `0.5`.
        draws: fault draws per evaluation. Defaults to `5`.
        confidence: interval coverage. Defaults to `0.95`.
        seed: base seed of the draws. Defaults to `0`.
        verbose: 0 or 1. Defaults to `0`.

    Returns:
        A dict: ``baseline`` (accuracy, ci, rates at the current p) and ``layers``, a dict
        {layer name: {accuracy, ci, drop, stored_bits, rate}} in model order.

    Example:
    >>> table = tl.sensitivity(model, test_ds, test_rate=0.5)
    >>> tl.reports.plot_sensitivity(table, "sensitivity.png")
    """
    test_rate = check_probability("test_rate", test_rate)
    layers = faulty_layers(model)
    if not layers:
        raise ValueError(f"Model '{model.name}' has no faulty layer to test.")
    saved = [float(ops.convert_to_numpy(layer.fault_rate.value)) for layer in layers]

    def evaluate():
        result = evaluate_under_faults(
            model, data, draws=draws, confidence=confidence, seed=seed, verbose=0
        )
        return {"accuracy": result.mean, "ci": list(result.ci)}

    try:
        baseline = evaluate()
        baseline["rates"] = {layer.name: p for layer, p in zip(layers, saved, strict=True)}
        table = {}
        for layer, rate in zip(layers, saved, strict=True):
            layer.fault_rate.assign(test_rate)
            try:
                row = evaluate()
            finally:
                layer.fault_rate.assign(rate)
            row.update(
                drop=baseline["accuracy"] - row["accuracy"],
                stored_bits=layer.stored_bits,
                rate=test_rate,
            )
            table[layer.name] = row
            if verbose:
                print(f"{layer.name}: accuracy {row['accuracy']:.4f} at p={test_rate:g}")
    finally:
        for layer, rate in zip(layers, saved, strict=True):
            layer.fault_rate.assign(rate)
    return {"baseline": baseline, "test_rate": test_rate, "layers": table}
