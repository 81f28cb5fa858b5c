"""`MemSEPenaltyModel`: train a network to be robust to its memory noise with `fit`.

The mirror's predicted MSE is differentiable in the model's weights (the kernels are read
live, the crossbar's ``Wmax`` and quantiser pass gradients straight through), so it can be a
loss term: ``loss = task loss + weight * predicted MSE of the batch``.
"""

import keras

from tf_lanmax._validation import check_one_of, check_positive
from tf_lanmax.memse.crossbar import Crossbar
from tf_lanmax.memse.graph import _Handle
from tf_lanmax.memse.mirror import COV_MODES, REDUCTIONS, MemSE


@keras.saving.register_keras_serializable(package="tf_lanmax")
class MemSEPenaltyModel(keras.Model):
    """Wraps a model; in training its loss gains ``weight x`` the MemSE-predicted MSE.

    The penalty is the mirror's predicted MSE of the outputs (logits) under the crossbar's
    noise (or the faulty layers' digital faults) on the training batch, averaged over samples
    and outputs (`reduction="mean"`) or the mean over samples of the worst output (`"max"`).
    Evaluation and prediction return the wrapped model's outputs unchanged.

    Args:
        model: a built Sequential or Functional model (its weights are the ones trained).
        crossbar: the `Crossbar`. Defaults to `Crossbar()`.
        weight: the penalty's weight, > 0. Defaults to `1.0`.
        cov_mode: the mirror's covariance mode. Defaults to `"probe"` (one reverse pass,
            weight sharing included; `"diagonal"` is cheaper but blind to it).
        reduction: `"mean"` or `"max"`. Defaults to `"mean"`.
        **kwargs: `keras.Model` arguments.

    Example:
    >>> robust = MemSEPenaltyModel(model, Crossbar(sigma=0.02, gmax=1.0), weight=0.1)
    >>> robust.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> robust.fit(x_train, y_train, epochs=2)   # trains `model`'s weights
    """

    def __init__(
        self, model, crossbar=None, weight=1.0, cov_mode="probe", reduction="mean", **kwargs
    ):
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        if isinstance(crossbar, dict):
            crossbar = keras.saving.deserialize_keras_object(crossbar)
        self.inner = model
        self.crossbar = Crossbar() if crossbar is None else crossbar
        self.weight = check_positive("weight", weight)
        self.cov_mode = check_one_of("cov_mode", cov_mode, COV_MODES)
        self.reduction = check_one_of("reduction", reduction, REDUCTIONS)
        # Not tracked: the mirror holds no weights of its own that training should see.
        self._mirror = _Handle(MemSE(model, self.crossbar, cov_mode=cov_mode))

    @property
    def mirror(self):
        return self._mirror.value

    def call(self, inputs, training=None):
        outputs = self.inner(inputs, training=training)
        if training:
            self.add_loss(self.weight * self.mirror.penalty(inputs, self.reduction))
        return outputs

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.inner),
            "crossbar": keras.saving.serialize_keras_object(self.crossbar),
            "weight": self.weight,
            "cov_mode": self.cov_mode,
            "reduction": self.reduction,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
