"""`SharpnessAwareModel`: wraps a Keras model so `fit` takes SAM / ASAM / SAMSON / RWP steps."""

import math

import keras

from tf_lanmax._validation import check_int, check_name, check_positive
from tf_lanmax.sam.lookbehind import check_lookbehind
from tf_lanmax.sam.one_pass_step import one_pass_train_step
from tf_lanmax.sam.perturbation import DEFAULT_RHO, RULES
from tf_lanmax.sam.rwp import rwp_perturbation
from tf_lanmax.sam.wrapper import SeededWrapper

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
    # Weight matrices/filters get the adaptive scale T (and RWP noise); biases and betas do not.
    # The reference implementations scale every weight matrix: any tensor of rank >= 2 counts.
    flags = []
    for v in variables:
        name = v.path.split("/")[-1]
        flags.append(name not in OFFSET_NAMES and (name in WEIGHT_NAMES or len(v.shape) >= 2))
    return flags


@keras.saving.register_keras_serializable(package="tf_lanmax")
class SharpnessAwareModel(SeededWrapper):
    """Trains `model` with sharpness-aware steps: gradient at w + eps, applied at w.

    Gradient rules (`"sam"`, `"asam"`, `"samson"`), one step on a batch: (1) forward/backward at
    w in training mode (this pass updates BatchNorm statistics, advances the fault and dropout
    draws and gives the logged loss and metrics); (2) eps from the rule; (3) the gradient at
    w + eps, computed statelessly — the variables are never modified, so w is "restored" exactly
    and pass 2 leaves no state behind (its BatchNorm statistics are discarded); (4) the user's
    optimizer applies that gradient. With `num_batch_splits = k` (m-sharpness) each of k equal
    sub-batches gets its own eps and the k second-pass gradients are averaged. Faulty layers:
    pass 2 reuses pass 1's fault masks (and dropout masks) — common random numbers — unless
    `resample_faults=True`. Pass-1 batch loss is reported as `batch_loss` (LaNMax uses it).
    Under `tf.distribute` each replica computes its own eps from its own gradient (one eps per
    accelerator, as in SAM's code); on JAX the step is one program over the global batch, so
    there is one eps (as in optax's SAM). On torch pass 1 is the model's training call and the
    perturbed passes are `stateless_call`s differentiated with `torch.autograd.grad`.

    Lookbehind (`lookbehind_steps = k > 1`, gradient rules only): on each batch, k ascent steps
    from w, each eps computed by the rule at the previous perturbed point from the gradient
    there, and after each one the optimizer steps the fast weights (starting at w) with the
    gradient at the new perturbed point; then ``w <- w + alpha (phi_k - w)``. The optimizer
    therefore takes k steps per batch (its `iterations` counts them), as in the paper's code.
    Per batch this costs k + 1 gradient passes (the official code spends 2k: it recomputes the
    gradient at each perturbed point for the next ascent; the values are the same up to dropout
    and fault draws). BatchNorm statistics are updated once, by pass 1 at w; the k perturbed
    passes are stateless and reuse pass 1's draw state (common random numbers).

    Random weight perturbation (`"rwp"`): no ascent pass. eps is Gaussian with, per weight
    tensor W, sd ``rho * ||W||_2 / sqrt(numel W)`` (rho relative to the tensor's RMS; biases
    and BatchNorm beta get eps = 0; see `tf_lanmax.sam.rwp_perturbation`), drawn fresh every
    step (and sub-batch) from `seed`. One forward/backward pass at w + eps — the training pass:
    it updates BatchNorm statistics and gives the logged loss, metrics and `batch_loss`, all of
    the perturbed network — and the gradient is applied at w (`one_pass_train_step`). It costs
    about one plain step. Subclasses change eps by overriding `random_perturbation`.

    Args:
        model: the Keras model to train (its layers and variables are shared).
        rule: `"sam"`, `"asam"`, `"samson"` or `"rwp"`. Defaults to `"samson"`.
        rho: radius > 0. Defaults to the rule's: 0.05 (SAM), 0.5 (ASAM), 0.2 (SAMSON); for
            RWP the relative noise level 0.05 (sd of eps = 5 % of each weight tensor's RMS).
        eta: offset of the adaptive scale T (ASAM, SAMSON). Defaults to `0.01`.
        p: SAMSON's per-layer norm, 2 or inf. Defaults to `inf`.
        num_batch_splits: sub-batches per batch (must divide the batch). Defaults to `1`.
        resample_faults: draw fresh fault/dropout masks in the perturbed passes of the gradient
            rules (RWP has one pass). Defaults to `False`.
        seed: int >= 0 or None: the seed of the perturbation stream (`seed_generator`, whose
            state is a non-trainable variable of this model and is saved with it). None picks
            a random seed. Used by RWP (and `random_perturbation`). Defaults to `None`.
        lookbehind_steps: k, the Lookbehind ascent/descent steps per batch (gradient rules).
            1 is the plain rule. Defaults to `1`.
        lookbehind_alpha: the interpolation alpha in (0, 1], or `"adaptive"` (the paper's
            per-tensor ``(cos(phi_1 - w, phi_k - w) + 1) / 2``). None means 1 for k = 1 (the
            plain rule) and 0.5 for k > 1. An explicit alpha < 1 with k = 1 is the paper's
            algorithm with one step: the rule's step shrunk by alpha. Defaults to `None`.

    Example:
    >>> sam = tl.SharpnessAwareModel(model, rule="samson", rho=0.2)
    >>> sam.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> sam.fit(train, epochs=10)   # then use (or export) `sam.inner`

    Reference: Foret et al. arXiv:2010.01412 (SAM); Kwon et al. arXiv:2102.11600 (ASAM);
    Mordido et al. arXiv:2211.11561 (SAMSON) and arXiv:2307.16704 (Lookbehind-SAM); Bisla et
    al. arXiv:2201.08025 (random weight perturbation).
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
        seed=None,
        lookbehind_steps=1,
        lookbehind_alpha=None,
        **kwargs,
    ):
        super().__init__(model, seed=seed, **kwargs)
        self.rule = check_name("rule", rule, RULES)
        self.rho = check_positive("rho", DEFAULT_RHO[rule] if rho is None else rho)
        self.eta = check_positive("eta", eta, allow_zero=True)
        if p not in (2, math.inf):
            raise ValueError(f"`p` must be 2 or inf. Received: p={p!r}")
        self.p = p
        self.num_batch_splits = check_int("num_batch_splits", num_batch_splits, low=1)
        self.resample_faults = bool(resample_faults)
        self.lookbehind_steps, self.lookbehind_alpha = check_lookbehind(
            lookbehind_steps, lookbehind_alpha
        )
        if rule == "rwp" and self.lookbehind_steps > 1:
            raise ValueError(
                "`lookbehind_steps` > 1 needs a gradient rule (sam, asam, samson); rwp has no "
                f"ascent step. Received: lookbehind_steps={lookbehind_steps}, rule='rwp'"
            )

    def weight_flags(self):
        """Which trainable variables are weight tensors (scaled by T in ASAM/SAMSON, perturbed by
        RWP): kernels, embeddings, recurrent/depthwise/pointwise kernels, gammas and any other
        tensor of rank >= 2; not biases (GRU's 2-D bias included) or BatchNorm betas."""
        return _weight_flags(self.trainable_variables)

    def random_perturbation(self, weights, seed):
        """eps of the one-pass step (`rule="rwp"`): RWP's per-tensor-RMS Gaussian noise.

        Override it in a subclass to train at another random perturbation; the contract
        (arguments, purity, seeds) is that of `perturb` in
        `tf_lanmax.sam.one_pass_step.one_pass_train_step`.

        Args:
            weights: values of `self.trainable_variables`, in that order.
            seed: a seed tensor of shape (2,), fresh for every sub-batch of every step.

        Returns:
            One eps (tensor or None) per weight.
        """
        return rwp_perturbation(weights, self.rho, seed, self.weight_flags())

    def train_step(self, *args, **kwargs):
        if self.rule == "rwp":
            return one_pass_train_step(
                self,
                *args,
                perturb=self.random_perturbation,
                seed_generator=self.seed_generator,
                num_batch_splits=self.num_batch_splits,
                **kwargs,
            )
        backend = keras.backend.backend()
        if backend == "tensorflow":
            from tf_lanmax.sam.tensorflow_step import sharpness_aware_train_step
        elif backend == "jax":
            from tf_lanmax.sam.jax_step import sharpness_aware_train_step
        elif backend == "torch":
            from tf_lanmax.sam.torch_step import sharpness_aware_train_step
        else:
            raise NotImplementedError(
                "SharpnessAwareModel's train step is implemented for the TensorFlow, JAX and "
                f"torch backends. Current backend: {backend!r}"
            )
        return sharpness_aware_train_step(self, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rule": self.rule,
                "rho": self.rho,
                "eta": self.eta,
                "p": "inf" if self.p == math.inf else self.p,
                "num_batch_splits": self.num_batch_splits,
                "resample_faults": self.resample_faults,
                "lookbehind_steps": self.lookbehind_steps,
                "lookbehind_alpha": self.lookbehind_alpha,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if config.get("p") == "inf":
            config["p"] = math.inf
        return super().from_config(config, custom_objects=custom_objects)
