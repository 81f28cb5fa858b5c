"""One training forward pass and its loss from explicit variable values: the part of a
sharpness-aware pass that the TensorFlow and torch steps share (each wraps it in its own
gradient machinery)."""


def stateless_loss(model, values, state, metrics_values, x, y, sample_weight):
    """The training loss of `model` at trainable `values` and non-trainable `state`.

    Forward-pass losses (`add_loss`, activity regularisers) are included: Keras'
    `stateless_compute_loss` reads them from the model's `_losses_override`, which is set for
    this call only.

    Returns:
        (loss, y_pred, the non-trainable values after the pass).
    """
    y_pred, state_after, losses = model.stateless_call(
        values, state, x, training=True, return_losses=True
    )
    model._losses_override = list(losses)
    try:
        loss, _ = model.stateless_compute_loss(
            values,
            state_after,
            metrics_values,
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=True,
        )
    finally:
        model._losses_override = []
    return loss, y_pred, state_after
