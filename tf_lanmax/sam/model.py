"""`SharpnessAwareModel`: wraps a Keras model so `fit` takes SAM / ASAM / SAMSON steps."""

import math

import keras

from tf_lanmax._validation import check_int, check_one_of, check_positive
from tf_lanmax.sam.perturbation import DEFAULT_RHO, RULES

#: Variable names of weight tensors, whatever their rank (BN/LayerNorm gamma is 1-D).
WEIGHT_NAMES = (
    "kernel",
    "gamma",
    "depthwise_kernel",
    "pointwise_kernel",
    "recurrent_kernel",
    "embeddings",
)
#: Offsets, never weight tensors even at rank 2 (GRU's bias is (2, 3 units) with reset_after).
OFFSET_NAMES = ("bias", "beta")


def _weight_flags(variables):
    # Weight matrices/filters get the adaptive scale T; biases and betas use T = 1.
    # The reference implementations scale every weight matrix: any tensor of rank >= 2 counts.
    flags = []
    for v in variables:
        name = v.path.split("/")[-1]
        flags.append(name not in OFFSET_NAMES and (name in WEIGHT_NAMES or len(v.shape) >= 2))
    return flags


@keras.saving.register_keras_serializable(package="tf_lanmax")
class SharpnessAwareModel(keras.Model):
    """Trains `model` with sharpness-aware steps: gradient at w + eps, applied at w.

    One step on a batch: (1) forward/backward at w in training mode (this pass updates
    BatchNorm statistics, advances the fault and dropout draws and gives the logged loss and
    metrics); (2) eps from the rule; (3) the gradient at w + eps, computed statelessly — the
    variables are never modified, so w is "restored" exactly and pass 2 leaves no state behind
    (its BatchNorm statistics are discarded); (4) the user's optimizer applies that gradient.
    With `num_batch_splits = k` (m-sharpness) each of k equal sub-batches gets its own eps and
    the k second-pass gradients are averaged. Faulty layers: pass 2 reuses pass 1's fault masks
    (and dropout masks) — common random numbers — unless `resample_faults=True`. Pass-1 batch
    loss is reported as `batch_loss` (LaNMax uses it). Under `tf.distribute` each replica
    computes its own eps from its own gradient (one eps per accelerator, as in SAM's code); on
    JAX the step is one program over the global batch, so there is one eps (as in optax's SAM).

    Args:
        model: the Keras model to train (its layers and variables are shared).
        rule: `"sam"`, `"asam"` or `"samson"`. Defaults to `"samson"`.
        rho: radius > 0. Defaults to the rule's: 0.05 (SAM), 0.5 (ASAM), 0.2 (SAMSON).
        eta: offset of the adaptive scale T (ASAM, SAMSON). Defaults to `0.01`.
        p: SAMSON's per-layer norm, 2 or inf. Defaults to `inf`.
        num_batch_splits: sub-batches per batch (must divide the batch). Defaults to `1`.
        resample_faults: draw fresh fault/dropout masks in pass 2. Defaults to `False`.

    Example:
    >>> sam = tl.SharpnessAwareModel(model, rule="samson", rho=0.2)
    >>> sam.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> sam.fit(train, epochs=10)   # then use (or export) `sam.inner`

    Reference: arXiv:2010.01412, arXiv:2102.11600, arXiv:2211.11561; ALGORITHMS.md §5.
    """

    def __init__(
        self,
        model,
        rule="samson",
        rho=None,
        eta=0.01,
        p=math.inf,
        num_batch_splits=1,
        resample_faults=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.inner = model
        self.rule = check_one_of("rule", rule, RULES)
        self.rho = check_positive("rho", DEFAULT_RHO[rule] if rho is None else rho)
        self.eta = check_positive("eta", eta, allow_zero=True)
        if p not in (2, math.inf):
            raise ValueError(f"`p` must be 2 or inf. Received: p={p!r}")
        self.p = p
        self.num_batch_splits = check_int("num_batch_splits", num_batch_splits, low=1)
        self.resample_faults = bool(resample_faults)

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)

    def build(self, input_shape):
        if not self.inner.built:
            self.inner.build(input_shape)

    def weight_flags(self):
        """Which trainable variables are weight tensors (scaled by T in ASAM/SAMSON): kernels,
        embeddings, recurrent/depthwise/pointwise kernels, gammas and any other tensor of rank
        >= 2; not biases (GRU's 2-D bias included) or BatchNorm betas."""
        return _weight_flags(self.trainable_variables)

    def train_step(self, *args, **kwargs):
        backend = keras.backend.backend()
        if backend == "tensorflow":
            from tf_lanmax.sam.tensorflow_step import sharpness_aware_train_step
        elif backend == "jax":
            from tf_lanmax.sam.jax_step import sharpness_aware_train_step
        else:
            raise NotImplementedError(
                "SharpnessAwareModel's train step is implemented for the TensorFlow and JAX "
                f"backends. Current backend: {backend!r}"
            )
        return sharpness_aware_train_step(self, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.inner),
                "rule": self.rule,
                "rho": self.rho,
                "eta": self.eta,
                "p": "inf" if self.p == math.inf else self.p,
                "num_batch_splits": self.num_batch_splits,
                "resample_faults": self.resample_faults,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        if config.get("p") == "inf":
            config["p"] = math.inf
        return cls(**config)
