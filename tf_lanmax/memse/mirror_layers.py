"""Mirror rules of the deterministic, reliable layers (pooling, BN, ReLU, reshapes, Add, ...).

Every node of a mirrored graph holds one rule. A rule evaluates its layer four ways:

- `moments`: the analytic propagation of means and variances (`moments.py`);
- `clean`: the noise-free value, the reference the MSE is measured against;
- `sample`: the value for a batch of ``D x B`` samples under D weight draws (Monte-Carlo);
- `adjoint`: the cotangent of its inputs from its output's, for the `"probe"` and
  `"jacobian"` modes (`adjoints.py`), linearised at the mean state.

`MirrorRule` documents the protocol (arguments in, results out: `context.py`), with a worked
example of a user rule. The rules of the noisy Dense / convolution layers are in
`mapped_layers.py`.
"""

import copy
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from tf_lanmax.memse import adjoints
from tf_lanmax.memse import moments as rules
from tf_lanmax.memse.context import Forward, Reverse

OUTPUT_ONLY_ACTIVATIONS = ("softmax", "sigmoid")


class Moments(NamedTuple):
    """Per-sample moments of one tensor: mean, variance and (flat tensors, full mode) cov.

    `exact` marks a deterministic tensor (the model input): its variance is known to be 0.
    """

    mean: object
    var: object
    cov: object = None
    exact: bool = False


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


def relu_forward(state, save=False):
    """ReLU on a state (diagonal or full covariance), as a rule's `Forward`.

    With `save` (a reverse pass follows), also saves the expected slope ``Phi(mu / s)`` and
    the variance the linearisation misses, ``Var[relu X] - Phi^2 s^2``.
    """
    if state.cov is not None:
        mean, cov = rules.relu_covariance(state.mean, state.cov)
        return Forward(Moments(mean, ops.diagonal(cov, axis1=-2, axis2=-1), cov))
    mean, var, slope = rules.relu_moments(state.mean, state.var)
    if not save:
        return Forward(Moments(mean, var))
    residual = ops.relu(var - ops.square(slope) * state.var)
    return Forward(Moments(mean, var), {"relu_slope": slope, "relu_residual": residual})


def relu_state(state):
    """ReLU on a state (diagonal or full covariance): the output `Moments`."""
    return relu_forward(state).state


def relu_adjoint(g, saved, ctx):
    """Reverse ReLU: the cotangent times the expected slope, and the output variance of the
    part of ``relu(X)`` that no linear map of ``X`` explains (uncorrelated with ``X`` by
    Price's theorem; taken independent across units; a second-order term, so added on the
    diagonal of the output covariance only)."""
    residual = saved["relu_residual"]
    num = ctx.num_outputs
    units = int(np.prod(residual.shape[1:]))
    per = ops.reshape(g, (num, -1, units))  # (O, B, U)
    variance = ops.transpose(ops.sum(ops.square(per) * ops.reshape(residual, (-1, units)), -1))
    return Reverse([scale_cotangent(g, saved["relu_slope"], num)], variance=variance)


def scale_cotangent(g, factor, num):
    """``g * factor`` with ``g`` ``(O * B, ...)`` and ``factor`` ``(B, ...)`` (per sample)."""
    return adjoints.flat_outputs(adjoints.per_output(g, num) * factor)


class MirrorRule:
    """How MemSE evaluates one layer: the protocol a rule implements.

    A rule is built from the layer (or functional operation) it mirrors, `op`, once per call
    of it in the model's graph, and never changes afterwards: graph rewrites (`passes.py`)
    build new rules. It takes its inputs as arguments and returns what it produces:

    - ``moments(inputs, ctx)``: the input `Moments` (one per input tensor) to the output's.
      Returns a `Moments`, or a `Forward` that also holds the values `adjoint` will need
      (``saved``; the graph adds the inputs as ``saved["inputs"]``) and, for a mapped layer,
      its crossbar power. Required.
    - ``clean(values, ctx)`` and ``sample(values, ctx)``: the noise-free output, and the
      output of ``D x B`` tiled examples under D weight draws (Monte-Carlo). Both default to
      calling the layer itself (``ctx.call(values)``): right for any layer without noisy
      weights.
    - ``adjoint(g, saved, ctx)``: the cotangents ``(O * B, ...)`` of the inputs from the
      output's, linearised at the mean state, for the `"probe"` and `"jacobian"` modes.
      Returns a list (one per input) or a `Reverse` that also holds the output variance the
      rule adds. Defaults to an error naming the layer (then only `"diagonal"` and
      `"full"` can pass through it).

    `ctx` is a read-only `NodeContext` (the node's key, the `PassConfig`, the pass's flags).
    The class attributes say how passes treat the rule: `mapped` (a layer whose weights are
    in noisy memory: `LinearRule`), `activation` (the elementwise nonlinearity the rule
    ends with: ``"relu"`` lets a ReLU move after a following max pool, ``"softmax"`` or
    ``"sigmoid"`` are allowed on the model output only, where MemSE skips them).

    Example (a custom layer ``y = a x`` and its rule, registered with `register_mirror`):

    >>> class Scale(keras.layers.Layer):
    ...     def __init__(self, factor, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.factor = factor
    ...
    ...     def call(self, x):
    ...         return self.factor * x
    >>> class ScaleRule(MirrorRule):
    ...     def moments(self, inputs, ctx):  # E[aX] = a E[X], Var[aX] = a^2 Var[X]
    ...         state, a = inputs[0], self.op.factor
    ...         return Moments(a * state.mean, a * a * state.var)
    ...
    ...     def adjoint(self, g, saved, ctx):  # d(a x) / dx = a
    ...         return [self.op.factor * g]
    >>> register_mirror(Scale, ScaleRule)
    >>> dense = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    >>> scaled = keras.Sequential([dense, Scale(2.0)])
    >>> crossbar = Crossbar(sigma=0.01, gmax=1.0)
    >>> inputs = np.random.default_rng(0).random((4, 8), dtype="float32")
    >>> mse = MemSE(scaled, crossbar).mse(inputs)  # (4, 3): the probe mode, by the adjoint
    >>> bool(np.allclose(mse, 4.0 * MemSE(dense, crossbar).mse(inputs)))  # a^2 times
    True
    """

    mapped = False
    activation = None

    def __init__(self, op):
        self.op = op

    @property
    def name(self):
        return getattr(self.op, "name", type(self.op).__name__)

    @property
    def output_only(self):
        """Whether the layer is allowed on the model output only (softmax, sigmoid)."""
        return self.activation in OUTPUT_ONLY_ACTIVATIONS

    def replace(self, **changes):
        """A copy of this rule with some attributes changed (graph passes build new rules)."""
        rule = copy.copy(self)
        rule.__dict__.update(changes)
        return rule

    def without_activation(self):
        """This rule without its final nonlinearity (`activation`), as a new rule.

        For a rule that is only its activation (ReLU, Activation, Softmax), the identity; a
        rule that does more before its activation overrides it (as `LinearRule` does).
        """
        return IdentityRule(self.op)

    def moments(self, inputs, ctx):
        raise NotImplementedError(
            f"{type(self).__name__} must implement moments(inputs, ctx) (see MirrorRule)."
        )

    def clean(self, values, ctx):
        return ctx.call(values)

    def sample(self, values, ctx):
        return ctx.call(values)

    def adjoint(self, g, saved, ctx):
        raise ValueError(
            f"Layer '{self.name}' ({type(self.op).__name__}) has no reverse rule, so "
            "cov_mode='jacobian' or 'probe' cannot pass through it. Use cov_mode='diagonal'."
        )


class IdentityRule(MirrorRule):
    """Dropout and friends at inference, or an output softmax that MemSE measures before."""

    def moments(self, inputs, ctx):
        return inputs[0]

    def clean(self, values, ctx):
        return values[0]

    sample = clean

    def adjoint(self, g, saved, ctx):
        return [g]


class ReLURule(MirrorRule):
    """ReLU by Gaussian moment matching."""

    activation = "relu"

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
        return relu_forward(inputs[0], ctx.save)

    def adjoint(self, g, saved, ctx):
        return relu_adjoint(g, saved, ctx)


class ActivationRule(MirrorRule):
    """`keras.layers.Activation`: relu or linear (softmax/sigmoid on the output only)."""

    def __init__(self, op):
        super().__init__(op)
        self.activation = check_activation(activation_name(op), op)

    def moments(self, inputs, ctx):
        if self.activation == "relu":
            return relu_forward(inputs[0], ctx.save)
        return inputs[0]

    def adjoint(self, g, saved, ctx):
        return relu_adjoint(g, saved, ctx) if self.activation == "relu" else [g]


class SoftmaxRule(MirrorRule):
    """`keras.layers.Softmax`: allowed on the output only (MemSE measures the logits)."""

    activation = "softmax"

    def moments(self, inputs, ctx):
        return inputs[0]


class ReLUAfterRule(MirrorRule):
    """A (global) max pool whose input's ReLU was moved after it (`passes.relu_after_max_pool`):
    ``relu(maxpool(x)) = maxpool(relu(x))``.

    Args:
        pool: the max pool's own rule.
    """

    def __init__(self, pool):
        super().__init__(pool.op)
        self.pool = pool

    def moments(self, inputs, ctx):
        pooled = Forward.of(self.pool.moments(inputs, ctx))
        out = relu_forward(pooled.state, ctx.save)
        return Forward(out.state, {**pooled.saved, **out.saved}, pooled.power)

    def clean(self, values, ctx):
        return ops.relu(self.pool.clean(values, ctx))

    def sample(self, values, ctx):
        return ops.relu(self.pool.sample(values, ctx))

    def adjoint(self, g, saved, ctx):
        relu = relu_adjoint(g, saved, ctx)  # the slope first, then the pool's routing
        pooled = Reverse.of(self.pool.adjoint(relu.cotangents[0], saved, ctx))
        return pooled._replace(variance=_add(relu.variance, pooled.variance))


def _add(a, b):
    return b if a is None else a if b is None else a + b


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
                s.mean,
                s.var,
                self.op.pool_size,
                self.op.strides,
                self.op.padding,
                ctx.config.maxpool,
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
        return Moments(
            *rules.global_max_pool_moments(s.mean, s.var, self.op.keepdims, ctx.config.maxpool)
        )

    def adjoint(self, g, saved, ctx):
        mean = saved["inputs"][0].mean
        return [adjoints.global_max_pool_adjoint(g, mean, self.op.keepdims, ctx.num_outputs)]
