"""`HardwareAwareModel`: training with the analog device's noise in the forward pass.

Hardware-aware training (Joshi et al., Nat. Commun. 2020; aihwkit's noise-injected training)
reads every crossbar-held kernel through the device during training, so the network learns
weights whose noisy reads still classify. Each step draws one programmed chip
(`tl.analog.perturb_weights` at `t_inference`), takes the gradient there and applies it to
the clean weights: the one-pass step of `tf_lanmax.sam.one_pass_step` with
``eps = noise_scale * (noisy read - w)``. It is the baseline the SAMSON paper claims to match
"without hardware knowledge".
"""

import keras
from keras import ops

from tf_lanmax._seeds import seed_value
from tf_lanmax._validation import check_int, check_positive
from tf_lanmax.analog.mapping import perturb_weights
from tf_lanmax.analog.registry import get
from tf_lanmax.layers import faulty_layers
from tf_lanmax.sam.one_pass_step import one_pass_train_step
from tf_lanmax.sam.wrapper import SeededWrapper

#: The variables a crossbar holds (the kernels of Dense and convolution layers).
MAPPED = ("kernel", "depthwise_kernel", "pointwise_kernel")


@keras.saving.register_keras_serializable(package="tf_lanmax")
class HardwareAwareModel(SeededWrapper):
    """Trains `model` with the noise of an analog device injected into every forward pass.

    One step on a batch: draw one chip (every Dense / convolution kernel mapped onto `device`
    and read at `t_inference`: programming noise, drift, read noise), take one forward/backward
    pass at those noisy weights (the training pass: BatchNorm statistics come from it) and apply
    the gradient to the clean weights with the user's optimizer. Biases and BatchNorm
    parameters stay digital (noise-free). ``noise_scale = 0`` is the plain Keras step.

    Args:
        model: the float Keras model to train (its layers and variables are shared). Faulty
            layers are refused: their deployed weights are not their trainable kernels.
        device: a `tl.analog` preset name or `Device`. Defaults to `"pcm"`.
        t_inference: seconds after programming at which the training reads are taken, >= 0.
            Defaults to `1.0`.
        noise_scale: multiplies the drawn deviation (1: the device's own noise), >= 0.
            Defaults to `1.0`.
        seed: int >= 0 or None, the seed of the noise stream (saved with the weights).
            Defaults to `None`.
        num_batch_splits: sub-batches per batch, each with its own chip. Defaults to `1`.

    Example:
    >>> model = tl.models.float_cnn()  # plain Keras layers: the device reads their kernels
    >>> hwa = tl.analog.HardwareAwareModel(model, "pcm", seed=0)
    >>> hwa.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> hwa.fit(train, epochs=5)   # then evaluate (or export) `hwa.inner`

    Reference: Joshi et al., "Accurate deep neural network inference using computational
    phase-change memory", Nat. Commun. 11, 2473 (2020); Rasch et al., "Hardware-aware training
    for large-scale and diverse deep learning inference workloads using in-memory computing-based
    accelerators", Nat. Commun. 14, 5282 (2023).
    """

    def __init__(
        self,
        model,
        device="pcm",
        t_inference=1.0,
        noise_scale=1.0,
        seed=None,
        num_batch_splits=1,
        **kwargs,
    ):
        if faulty_layers(model):
            raise ValueError(
                f"Model '{model.name}' has faulty layers; hardware-aware training perturbs "
                "trainable float kernels, and a faulty layer deploys its stored values instead. "
                "Allowed: a model of plain Keras layers."
            )
        super().__init__(model, seed=seed, **kwargs)
        self.device = get(device)
        self.t_inference = check_positive("t_inference", t_inference, allow_zero=True)
        self.noise_scale = check_positive("noise_scale", noise_scale, allow_zero=True)
        self.num_batch_splits = check_int("num_batch_splits", num_batch_splits, low=1)

    def mapped_flags(self):
        """Which trainable variables the array holds (kernels), in `trainable_variables` order."""
        return [v.path.split("/")[-1] in MAPPED for v in self.trainable_variables]

    def device_perturbation(self, weights, seed):
        """eps of one step: ``noise_scale * (perturb_weights(device, w) - w)`` per kernel.

        Follows the `perturb` contract of `tf_lanmax.sam.one_pass_step.one_pass_train_step`:
        a pure function of `weights` and the (2,) seed tensor ``(s, n)``; kernel i reads its
        chip from ``(s + i + 1, n)``, so no kernel at any step shares another's draws (an offset
        in the counter word n made kernel i at step n + 1 read kernel i + 1's chip of step n).
        """
        eps = []
        for i, (w, mapped) in enumerate(zip(weights, self.mapped_flags(), strict=True)):
            if not mapped or self.noise_scale == 0:
                eps.append(None)
                continue
            offset = ops.convert_to_tensor([i + 1, 0], dtype=seed.dtype)
            noisy = perturb_weights(
                self.device, w, t_inference=self.t_inference, seed=seed_value(seed + offset)
            )
            eps.append(self.noise_scale * (ops.cast(noisy, "float32") - ops.cast(w, "float32")))
        return eps

    def train_step(self, *args, **kwargs):
        return one_pass_train_step(
            self,
            *args,
            perturb=self.device_perturbation,
            seed_generator=self.seed_generator,
            num_batch_splits=self.num_batch_splits,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "device": keras.saving.serialize_keras_object(self.device),
                "t_inference": self.t_inference,
                "noise_scale": self.noise_scale,
                "num_batch_splits": self.num_batch_splits,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["device"] = keras.saving.deserialize_keras_object(
            config["device"], custom_objects=custom_objects
        )
        return super().from_config(config, custom_objects=custom_objects)
