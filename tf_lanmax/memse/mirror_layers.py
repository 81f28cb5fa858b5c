"""Mirror rules of the deterministic, reliable layers (pooling, BN, ReLU, reshapes, Add, ...).

Every node of a mirrored graph holds one rule. A rule evaluates its layer four ways:

- `moments`: the analytic propagation of means and variances (`moments.py`);
- `clean`: the noise-free value, the reference the MSE is measured against;
- `sample`: the value for a batch of ``D x B`` samples under D weight draws (Monte-Carlo);
- `adjoint`: the cotangent of its inputs from its output's, for the `"jacobian"` mode
  (`adjoints.py`), linearised at the mean state.

The rules of the noisy Dense / convolution layers are in `mapped_layers.py`.
"""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from tf_lanmax.memse import adjoints
from tf_lanmax.memse import moments as rules

OUTPUT_ONLY_ACTIVATIONS = ("softmax", "sigmoid")


class Moments(NamedTuple):
    """Per-sample moments of one tensor: mean, variance and (flat tensors, full mode) cov.

    `exact` marks a deterministic tensor (the model input): its variance is known to be 0.
    """

    mean: object
    var: object
    cov: object = None
    exact: bool = False


class Context:
    """What a pass needs besides the inputs: the crossbar, Gmax per layer, options, and the
    per-pass records (power, sampled kernels, saved states, output covariance)."""

    def __init__(
        self, crossbar, gmax, cov_mode="diagonal", maxpool="max_mean", power=None, kernels=None
    ):
        self.crossbar = crossbar
        self.gmax = gmax
        self.cov_mode = cov_mode
        self.maxpool = maxpool
        self.power = power
        self.kernels = kernels if kernels is not None else {}
        self.saved = None  # {node key: {...}} when a reverse pass follows
        self.node_key = None
        self.num_outputs = None
        self.output_cov = None
        self.contributions = {}
        self.need = ()
        self.skip_relu = False  # set by the graph when the ReLU runs after a max pool
        self.probe = False  # the reverse pass carries probes: accumulate (B, P) energies
        self.pool_first = {}  # {ReLU node key: max-pool node key} moved after the pool

    def save(self, **values):
        if self.saved is not None:
            self.saved.setdefault(self.node_key, {}).update(values)

    def add_output_variance(self, diagonal):
        """Adds a ``(B, O)`` contribution on the diagonal of the output covariance (jacobian
        mode) or to the ``(B, P)`` per-probe energies (probe mode)."""
        if not self.probe:
            diagonal = ops.expand_dims(diagonal, -1) * ops.eye(
                diagonal.shape[-1], dtype=diagonal.dtype
            )
        self.output_cov = diagonal if self.output_cov is None else self.output_cov + diagonal


def activation_name(layer):
    """The name of a Keras activation (or `keras.ops` function), else ``module.name``.

    A registry lookup, not `keras.activations.serialize`, which imports TensorFlow whenever it
    is installed, even on the JAX backend.
    """
    fn = layer.activation
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return repr(fn)
    try:
        builtin = keras.activations.get(name)
    except ValueError:  # not a Keras activation name
        builtin = None
    if fn is builtin or fn is getattr(keras.ops, name, None):
        return name
    return f"{getattr(fn, '__module__', '?')}.{name}"  # custom, even if it is called "relu"


def check_activation(name, layer):
    allowed = ("linear", "relu") + OUTPUT_ONLY_ACTIVATIONS
    if name not in allowed:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has activation '{name}', which MemSE "
            f"does not propagate. Allowed: {list(allowed)} (softmax/sigmoid only on the model "
            f"output, where MemSE measures the logits). Received: activation={name!r}"
        )
    return name


def check_channels_last(layer):
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}): MemSE supports channels_last "
            f"tensors only. Received: data_format={fmt!r}"
        )


def batchnorm_affine(layer):
    """Inference BatchNormalization as ``y = a x + d``: ``a = gamma / sqrt(var + eps)``."""
    a = ops.rsqrt(ops.convert_to_tensor(layer.moving_variance) + layer.epsilon)
    if layer.scale:
        a = a * layer.gamma
    d = -a * layer.moving_mean
    if layer.center:
        d = d + layer.beta
    return a, d


def relu_state(state, ctx=None):
    """ReLU on a state (diagonal or full covariance).

    With a `ctx` that saves states for a reverse pass, also saves the expected slope
    ``Phi(mu / s)`` and the variance the linearisation misses, ``Var[relu X] - Phi^2 s^2``.
    """
    if state.cov is not None:
        mean, cov = rules.relu_covariance(state.mean, state.cov)
        return Moments(mean, ops.diagonal(cov, axis1=-2, axis2=-1), cov)
    mean, var, slope = rules.relu_moments(state.mean, state.var)
    if ctx is not None and ctx.saved is not None:
        residual = ops.relu(var - ops.square(slope) * state.var)
        ctx.save(relu_slope=slope, relu_residual=residual)
    return Moments(mean, var)


def relu_adjoint(g, saved, ctx):
    """Reverse ReLU: the cotangent times the expected slope, and the output variance of the
    part of ``relu(X)`` that no linear map of ``X`` explains (uncorrelated with ``X`` by
    Price's theorem; taken independent across units; a second-order term, so added on the
    diagonal of the output covariance only)."""
    residual = saved["relu_residual"]
    num = ctx.num_outputs
    units = int(np.prod(residual.shape[1:]))
    per = ops.reshape(g, (num, -1, units))  # (O, B, U)
    # Second order: added on the diagonal of the output covariance only.
    diagonal = ops.transpose(ops.sum(ops.square(per) * ops.reshape(residual, (-1, units)), -1))
    ctx.add_output_variance(diagonal)
    return scale_cotangent(g, saved["relu_slope"], num)


def scale_cotangent(g, factor, num):
    """``g * factor`` with ``g`` ``(O * B, ...)`` and ``factor`` ``(B, ...)`` (per sample)."""
    return adjoints.flat_outputs(adjoints.per_output(g, num) * factor)


class MirrorRule:
    """Base rule: a deterministic, reliable layer that the sampled pass calls as is."""

    mapped = False
    output_only = False

    def __init__(self, op):
        self.op = op

    @property
    def name(self):
        return getattr(self.op, "name", type(self.op).__name__)

    def moments(self, inputs, ctx):
        raise NotImplementedError

    def clean(self, values, node, ctx):
        return node.call_original(values)

    def sample(self, values, node, ctx):
        return node.call_original(values)

    def adjoint(self, g, saved, ctx):
        raise ValueError(
            f"Layer '{self.name}' ({type(self.op).__name__}) has no reverse rule, so "
            "cov_mode='jacobian' cannot pass through it. Use cov_mode='diagonal'."
        )


class IdentityRule(MirrorRule):
    """Dropout and friends at inference, or an output softmax that MemSE measures before."""

    def moments(self, inputs, ctx):
        return inputs[0]

    def clean(self, values, node, ctx):
        return values[0]

    sample = clean

    def adjoint(self, g, saved, ctx):
        return [g]


class ReLURule(MirrorRule):
    """ReLU by Gaussian moment matching."""

    def __init__(self, op):
        super().__init__(op)
        if isinstance(op, keras.layers.ReLU):
            args = {
                "max_value": op.max_value,
                "negative_slope": float(op.negative_slope),
                "threshold": float(op.threshold),
            }
            if args["max_value"] is not None or args["negative_slope"] or args["threshold"]:
                raise ValueError(
                    f"Layer '{op.name}' (ReLU): MemSE supports the plain ReLU only "
                    f"(max_value=None, negative_slope=0, threshold=0). Received: {args}"
                )

    def moments(self, inputs, ctx):
        return inputs[0] if ctx.skip_relu else relu_state(inputs[0], ctx)

    def adjoint(self, g, saved, ctx):
        return [g] if ctx.skip_relu else [relu_adjoint(g, saved, ctx)]


class ActivationRule(ReLURule):
    """`keras.layers.Activation`: relu or linear (softmax/sigmoid on the output only)."""

    def __init__(self, op):
        MirrorRule.__init__(self, op)
        self.activation = check_activation(activation_name(op), op)
        self.output_only = self.activation in OUTPUT_ONLY_ACTIVATIONS

    def moments(self, inputs, ctx):
        if self.activation == "relu" and not ctx.skip_relu:
            return relu_state(inputs[0], ctx)
        return inputs[0]

    def adjoint(self, g, saved, ctx):
        return super().adjoint(g, saved, ctx) if self.activation == "relu" else [g]


class SoftmaxRule(MirrorRule):
    """`keras.layers.Softmax`: allowed on the output only (MemSE measures the logits)."""

    output_only = True

    def moments(self, inputs, ctx):
        return inputs[0]


class BatchNormRule(MirrorRule):
    """Inference BatchNormalization kept as a reliable digital affine map (not folded)."""

    def _affine(self, rank):
        axis = self.op.axis if isinstance(self.op.axis, int) else None
        if axis is None or axis % rank != rank - 1:
            raise ValueError(
                f"Layer '{self.op.name}' (BatchNormalization): MemSE supports normalisation "
                f"over the last axis only. Received: axis={self.op.axis!r}"
            )
        return batchnorm_affine(self.op)

    def moments(self, inputs, ctx):
        state = inputs[0]
        a, d = self._affine(len(state.mean.shape))
        if state.cov is not None:
            mean, cov = rules.affine_covariance(state.mean, state.cov, a, d)
            return Moments(mean, ops.diagonal(cov, axis1=-2, axis2=-1), cov)
        return Moments(*rules.affine_moments(state.mean, state.var, a, d))

    def adjoint(self, g, saved, ctx):
        return [g * self._affine(len(g.shape))[0]]


class ReshapeRule(MirrorRule):
    """Flatten, Reshape, Permute, zero padding, cropping, concatenation: they only move
    entries (or add exact zeros), so the same layer maps the variances."""

    def moments(self, inputs, ctx):
        if len(inputs) == 1:
            mean, var = self.op(inputs[0].mean), self.op(inputs[0].var)
            if inputs[0].cov is not None and tuple(mean.shape) == tuple(inputs[0].mean.shape):
                return Moments(mean, var, inputs[0].cov)
            return Moments(mean, var)
        return Moments(self.op([s.mean for s in inputs]), self.op([s.var for s in inputs]))

    def adjoint(self, g, saved, ctx):
        shapes = [tuple(s.mean.shape[1:]) for s in saved["inputs"]]
        op, layers = self.op, keras.layers
        if isinstance(op, (layers.Flatten, layers.Reshape)):
            return [ops.reshape(g, (-1,) + shapes[0])]
        if isinstance(op, layers.Permute):
            inverse = np.argsort((0,) + tuple(op.dims))
            return [ops.transpose(g, tuple(int(i) for i in inverse))]
        if isinstance(op, (layers.ZeroPadding1D, layers.ZeroPadding2D)):
            pads = _pairs(op.padding, len(shapes[0]) - 1)
            index = [slice(None)] + [slice(b, b + n) for (b, _), n in zip(pads, shapes[0])]
            return [g[tuple(index + [slice(None)])]]
        if isinstance(op, (layers.Cropping1D, layers.Cropping2D)):
            crops = _pairs(op.cropping, len(shapes[0]) - 1)
            return [ops.pad(g, [[0, 0]] + [list(c) for c in crops] + [[0, 0]])]
        if isinstance(op, layers.Concatenate):
            axis = op.axis if op.axis >= 0 else len(g.shape) + op.axis
            sizes = np.cumsum([s[axis - 1] for s in shapes])[:-1]
            return list(ops.split(g, [int(s) for s in sizes], axis=axis))
        return super().adjoint(g, saved, ctx)


def _pairs(value, rank):
    if rank == 1:
        value = (value,) if isinstance(value[0], int) else value
        if isinstance(value[0], int):
            value = (tuple(value),)
    return tuple(tuple(int(v) for v in pair) for pair in value)


class AddRule(MirrorRule):
    """Residual Add with independent branches: ``Var = Var_a + Var_b`` (Cov_ab = 0).

    The `"jacobian"` mode keeps the branches' correlation: the cotangent reaches both."""

    def moments(self, inputs, ctx):
        mean, var = rules.add_moments([s.mean for s in inputs], [s.var for s in inputs])
        if any(s.cov is not None for s in inputs):
            cov = sum(
                s.cov if s.cov is not None else rules.diagonal_covariance(s.var) for s in inputs
            )
            return Moments(mean, var, cov)
        return Moments(mean, var)

    def adjoint(self, g, saved, ctx):
        return [g] * len(saved["inputs"])


class AveragePoolRule(MirrorRule):
    def moments(self, inputs, ctx):
        check_channels_last(self.op)
        s = inputs[0]
        return Moments(
            *rules.average_pool_moments(
                s.mean, s.var, self.op.pool_size, self.op.strides, self.op.padding
            )
        )

    def adjoint(self, g, saved, ctx):
        shape = saved["inputs"][0].mean.shape
        return [
            adjoints.average_pool_adjoint(
                g, shape, self.op.pool_size, self.op.strides, self.op.padding
            )
        ]


class MaxPoolRule(MirrorRule):
    def moments(self, inputs, ctx):
        check_channels_last(self.op)
        s = inputs[0]
        return Moments(
            *rules.max_pool_moments(
                s.mean, s.var, self.op.pool_size, self.op.strides, self.op.padding, ctx.maxpool
            )
        )

    def adjoint(self, g, saved, ctx):
        mean = saved["inputs"][0].mean
        return [
            adjoints.max_pool_adjoint(
                g, mean, self.op.pool_size, self.op.strides, self.op.padding, ctx.num_outputs
            )
        ]


class GlobalAveragePoolRule(MirrorRule):
    def moments(self, inputs, ctx):
        check_channels_last(self.op)
        s = inputs[0]
        return Moments(*rules.global_average_pool_moments(s.mean, s.var, self.op.keepdims))

    def adjoint(self, g, saved, ctx):
        shape = saved["inputs"][0].mean.shape
        return [adjoints.global_average_pool_adjoint(g, shape, self.op.keepdims)]


class GlobalMaxPoolRule(MirrorRule):
    def moments(self, inputs, ctx):
        check_channels_last(self.op)
        s = inputs[0]
        return Moments(*rules.global_max_pool_moments(s.mean, s.var, self.op.keepdims, ctx.maxpool))

    def adjoint(self, g, saved, ctx):
        mean = saved["inputs"][0].mean
        return [adjoints.global_max_pool_adjoint(g, mean, self.op.keepdims, ctx.num_outputs)]
