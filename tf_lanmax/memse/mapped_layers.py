"""Mirror rules of the noisy Dense / convolution layers (the *mapped* layers).

Plain Keras layers are mapped onto the memristor crossbar (`Crossbar`), optionally with the
BatchNorm that follows folded into their kernel. The faulty layers of `tf_lanmax.layers` keep
their own digital fault model: the closed-form moments of the faulty stored weights
(`layer.kernel_moments()`) replace the crossbar's, and the same propagation
rules give the MSE of bit flips, masking or stuck-at faults.
"""

import keras
import numpy as np
from keras import ops

from tf_lanmax import faults
from tf_lanmax.layers.base import FaultyKernelMixin
from tf_lanmax.memse import adjoints, windows
from tf_lanmax.memse import moments as rules
from tf_lanmax.memse.context import Forward, Reverse
from tf_lanmax.memse.crossbar import Crossbar
from tf_lanmax.memse.mirror_layers import (
    MirrorRule,
    Moments,
    activation_name,
    batchnorm_affine,
    check_activation,
    check_channels_last,
    relu_adjoint,
    relu_forward,
)
from tf_lanmax.memse.power import crossbar_power


class LinearRule(MirrorRule):
    """A Dense or convolution whose kernel is stored in noisy memory."""

    mapped = True

    def __init__(self, op):
        super().__init__(op)
        check_channels_last(op)
        self.activation = check_activation(activation_name(op), op)
        self.bn = None  # the BatchNorm folded into the kernel (`passes.fold_batchnorm`)
        self.digital = False  # the "digital" mapping (`passes.keep_digital_faults`)

    def without_activation(self):
        return self.replace(activation="linear")

    @property
    def faulty(self):
        """Whether the layer keeps its digital faults (a faulty layer under the `"digital"`
        mapping); otherwise its stored kernel is mapped onto the crossbar."""
        return self.digital and isinstance(self.op, FaultyKernelMixin)

    def weights(self):
        """Clean weights ``(W, b)`` of the stored kernel (BN folded when it is): a faulty
        layer's deployed (quantised, fault-free) values, a plain layer's kernel."""
        layer = self.op
        if isinstance(layer, FaultyKernelMixin):
            kernel = layer.stored_kernel()
        else:
            kernel = ops.convert_to_tensor(layer.kernel)
        bias = ops.convert_to_tensor(layer.bias) if layer.use_bias else None
        if self.bn is not None:
            a, d = batchnorm_affine(self.bn)
            kernel = kernel * self._fold_shape(a, kernel)
            bias = d if bias is None else a * bias + d
        return kernel, bias

    def _fold_shape(self, scale, kernel):
        return scale

    def weight_moments(self, config):
        """``(W, b, M, S2)``: clean kernel and bias, mean kernel and weight variance, under
        the `PassConfig` `config`."""
        kernel, bias = self.weights()
        if self.faulty:
            mean, var = self.op.kernel_moments()
            if isinstance(self.op.fault_model, faults.BitFlip):
                # Flip variances do not depend on the weight: one value per output channel
                # lets the convolution use a box sum instead of a full convolution.
                var = ops.mean(var, axis=tuple(range(len(var.shape) - 1)))
            return kernel, bias, ops.cast(mean, kernel.dtype), ops.cast(var, kernel.dtype)
        mean, var = config.crossbar.kernel_moments(kernel, config.gmax[self.op.name])
        return kernel, bias, mean, var

    def sample_kernels(self, config, draws, seed):
        """``draws`` effective kernels ``(D, ...)`` (digital faults or crossbar noise) under
        the `PassConfig` `config`."""
        if self.faulty:
            layer = self.op
            fmt, model = layer.weight_format, layer.fault_model
            latent = ops.convert_to_tensor(layer.kernel)
            codes = fmt.encode(latent)
            codes = ops.repeat(ops.expand_dims(codes, 0), draws, axis=0)
            errors = faults.draw_error_bits(codes.shape, fmt.bits, layer.fault_rate, seed)
            codes, keep = model.apply(codes, errors, fmt.bits)
            values = fmt.decode(codes, latent)
            values = values if keep is None else values * keep
            return ops.cast(values, latent.dtype)
        kernel, _ = self.weights()
        return config.crossbar.sample_kernels(kernel, config.gmax[self.op.name], draws, seed)

    def flipout_ready(self, config):
        """Whether this layer's noise is symmetric around a fixed kernel (the crossbar's
        Gaussian noise around the quantised weight), so that per-example sign flips of one
        draw give every example a draw of the same law (Flipout)."""
        return not self.faulty and isinstance(config.crossbar, Crossbar)

    def output_channels(self, kernel):
        return kernel.shape[-1]

    def flipout_draws(self, config, draws, examples, seed):
        """`draws` kernel perturbations around the quantised kernel and random signs for
        ``draws x examples`` examples, per input and per output channel (Flipout; Wen et
        al., ICLR 2018): example n of draw d sees ``diag(s_in) dW_d diag(s_out)``, a draw of
        the same law as ``dW_d``, uncorrelated with the other examples' perturbations."""
        kernel, _ = self.weights()
        mean = config.crossbar.quantize(kernel)
        delta = config.crossbar.sample_kernels(kernel, config.gmax[self.op.name], draws, seed)
        delta = delta - ops.expand_dims(mean, 0)

        def signs(channels):
            bits = keras.random.randint((draws * examples, channels), 0, 2, seed=seed)
            return ops.cast(2 * bits - 1, kernel.dtype)

        return {
            "mean": mean,
            "delta": delta,
            "signs_in": signs(kernel.shape[-2]),
            "signs_out": signs(self.output_channels(kernel)),
        }

    def _flipout(self, x, kernels):
        spatial = (1,) * (len(x.shape) - 2)
        signs_in = ops.reshape(kernels["signs_in"], (-1,) + spatial + (x.shape[-1],))
        delta = kernels["delta"]
        draws = delta.shape[0]
        flipped = ops.reshape(x * signs_in, (draws, -1) + tuple(x.shape[1:]))
        y = self.apply_draws(flipped, delta)
        y = ops.reshape(y, (-1,) + tuple(y.shape[2:]))
        signs_out = ops.reshape(kernels["signs_out"], (-1,) + spatial + (y.shape[-1],))
        return self.apply(x, kernels["mean"]) + y * signs_out

    # -- per layer type -----------------------------------------------------------------------

    def apply(self, x, kernel):
        raise NotImplementedError

    def apply_draws(self, x, kernels):
        return ops.stack([self.apply(x[d], kernels[d]) for d in range(kernels.shape[0])])

    def linear_moments(self, state, mean_kernel, var_kernel, bias, ctx):
        raise NotImplementedError

    def input_adjoint(self, g, mean_kernel, input_shape):
        raise NotImplementedError

    def noise_covariance(self, state, g, var_kernel, num):
        """``(B, O, O)``: the output covariance the weight noise adds
        (`adjoints.weight_noise_covariance`), `g` holding `num` rows per example."""
        raise NotImplementedError

    def noise_energy(self, state, g, var_kernel, num):
        """``(B, P)``: per example and probe, the weight noise's weighted squared gradient
        norm (`adjoints.weight_noise_energy`)."""
        raise NotImplementedError

    # -- the four evaluations --------------------------------------------------------------

    def moments(self, inputs, ctx):
        state = inputs[0]
        kernel, bias, mean_kernel, var_kernel = self.weight_moments(ctx.config)
        power = None
        if ctx.measure_power and not self.faulty:
            power = self.power(state, kernel, ctx.config)
        out = self.linear_moments(state, mean_kernel, var_kernel, bias, ctx)
        saved = {"mean_kernel": mean_kernel, "var_kernel": var_kernel}
        if self.activation == "relu":
            relu = relu_forward(out, ctx.save)
            out, saved = relu.state, {**saved, **relu.saved}
        return Forward(out, saved, power)

    def _activate(self, y, bias):
        y = y if bias is None else y + bias
        return ops.relu(y) if self.activation == "relu" else y

    def clean(self, values, ctx):
        kernel, bias = self.weights()
        return self._activate(self.apply(values[0], kernel), bias)

    def sample(self, values, ctx):
        kernels = ctx.kernels
        if isinstance(kernels, dict):  # per-example noise by sign flips
            return self._activate(self._flipout(values[0], kernels), self.weights()[1])
        draws = kernels.shape[0]
        x = ops.reshape(values[0], (draws, -1) + tuple(values[0].shape[1:]))
        y = self.apply_draws(x, kernels)
        y = ops.reshape(y, (-1,) + tuple(y.shape[2:]))
        return self._activate(y, self.weights()[1])

    def adjoint(self, g, saved, ctx):
        variance = None
        if self.activation == "relu":
            relu = relu_adjoint(g, saved, ctx)
            g, variance = relu.cotangents[0], relu.variance
        state = saved["inputs"][0]
        if ctx.probe:
            noise = self.noise_energy(state, g, saved["var_kernel"], ctx.num_outputs)
        else:
            noise = self.noise_covariance(state, g, saved["var_kernel"], ctx.num_outputs)
        cotangent = None
        if ctx.need[0]:
            cotangent = self.input_adjoint(g, saved["mean_kernel"], state.mean.shape)
        return Reverse([cotangent], variance=variance, noise=noise)

    def power(self, state, kernel, config):
        """``(device, tia)``: the per-example crossbar power of the input `state`."""
        g_pos, g_neg = config.crossbar.conductances(kernel, config.gmax[self.op.name])
        return crossbar_power(
            self.apply, g_pos, g_neg, state.mean, state.var, config.crossbar.sigma,
            config.crossbar.tia_gain,
        )  # fmt: skip


class DenseRule(LinearRule):
    def apply(self, x, kernel):
        return ops.matmul(x, kernel)

    def apply_draws(self, x, kernels):
        flat = ops.reshape(x, (x.shape[0], -1, x.shape[-1]))
        y = ops.einsum("dbi,dio->dbo", flat, kernels)
        return ops.reshape(y, tuple(x.shape[:-1]) + (kernels.shape[-1],))

    def linear_moments(self, state, mean_kernel, var_kernel, bias, ctx):
        if ctx.config.cov_mode == "full" and len(state.mean.shape) == 2:
            cov = state.cov if state.cov is not None else rules.diagonal_covariance(state.var)
            mean, cov = rules.dense_covariance(state.mean, cov, mean_kernel, var_kernel, bias)
            return Moments(mean, ops.diagonal(cov, axis1=-2, axis2=-1), cov)
        return Moments(*rules.dense_moments(state.mean, state.var, mean_kernel, var_kernel, bias))

    def input_adjoint(self, g, mean_kernel, input_shape):
        return ops.matmul(g, ops.transpose(mean_kernel))

    def noise_covariance(self, state, g, var_kernel, num):
        features = state.mean.shape[-1]
        positions = int(np.prod(state.mean.shape[1:-1]))
        patches = ops.reshape(state.mean, (-1, positions, features))
        patch_var = None if state.exact else ops.reshape(state.var, (-1, positions, features))
        g = ops.reshape(g, (-1, positions, g.shape[-1]))
        return adjoints.weight_noise_covariance(patches, patch_var, g, var_kernel, num)

    def noise_energy(self, state, g, var_kernel, num):
        features = state.mean.shape[-1]
        positions = int(np.prod(state.mean.shape[1:-1]))
        patches = ops.reshape(state.mean, (-1, positions, features))
        patch_var = None if state.exact else ops.reshape(state.var, (-1, positions, features))
        g = ops.reshape(g, (-1, positions, g.shape[-1]))
        return adjoints.weight_noise_energy(patches, patch_var, g, var_kernel, num)


class ConvRule(LinearRule):
    def __init__(self, op):
        super().__init__(op)
        if getattr(op, "groups", 1) != 1 or op.padding == "causal":
            raise ValueError(
                f"Layer '{op.name}' ({type(op).__name__}): MemSE supports ungrouped convolutions "
                f"with 'valid' or 'same' padding. Received: groups={getattr(op, 'groups', 1)}, "
                f"padding={op.padding!r}"
            )

    def _conv_args(self):
        return {
            "strides": self.op.strides,
            "padding": self.op.padding,
            "dilation_rate": self.op.dilation_rate,
        }

    def apply(self, x, kernel):
        return ops.conv(x, kernel, **self._conv_args())

    def linear_moments(self, state, mean_kernel, var_kernel, bias, ctx):
        var = None if state.exact else state.var
        return Moments(
            *rules.conv_moments(state.mean, var, mean_kernel, var_kernel, bias, **self._conv_args())
        )

    def _patches(self, x):
        return windows.conv_patches(
            x, self.op.kernel_size, self.op.strides, self.op.padding, self.op.dilation_rate
        )

    def input_adjoint(self, g, mean_kernel, input_shape):
        return adjoints.conv_input_adjoint(
            g, mean_kernel, input_shape, self.op.strides, self.op.padding, self.op.dilation_rate
        )

    def _patch_arguments(self, state, g, var_kernel):
        patches = self._patches(state.mean)
        patch_var = None if state.exact else self._patches(state.var)
        g = ops.reshape(g, (-1, patches.shape[1], g.shape[-1]))
        if len(var_kernel.shape) == len(self.op.kernel.shape):
            var_kernel = ops.reshape(var_kernel, (-1, var_kernel.shape[-1]))
        return patches, patch_var, g, var_kernel

    def noise_covariance(self, state, g, var_kernel, num):
        args = self._patch_arguments(state, g, var_kernel)
        return adjoints.weight_noise_covariance(*args, num)

    def noise_energy(self, state, g, var_kernel, num):
        patches = self._patches(state.mean)
        flat_g = ops.reshape(g, (-1, patches.shape[1], g.shape[-1]))
        flat_var = var_kernel
        if len(var_kernel.shape) == len(self.op.kernel.shape):
            flat_var = ops.reshape(var_kernel, (-1, var_kernel.shape[-1]))
        energy = adjoints.weight_noise_energy(patches, None, flat_g, flat_var, num)
        if state.exact:
            return energy
        # Second order, sum_(t,c) g_tc^2 sum_k S^2_kc v_tk: one convolution of the input
        # variance with S^2, not the variance's patches.
        noise = ops.reshape(
            self._input_noise(state.var, var_kernel), (1, -1) + tuple(flat_g.shape[1:])
        )
        per = ops.reshape(flat_g, (num, -1) + tuple(flat_g.shape[1:]))
        return energy + ops.transpose(ops.sum(ops.square(per) * noise, axis=(2, 3)))

    def _input_noise(self, var, var_kernel):
        """``conv(v, S^2)``: the variance the weight noise adds on the input's variance."""
        kernel_shape = tuple(self.op.kernel.shape)
        if len(var_kernel.shape) == len(kernel_shape):
            return ops.conv(var, var_kernel, **self._conv_args())
        window = ops.ones(kernel_shape[:-2] + (1, 1), dtype=var.dtype)
        box = ops.conv(ops.sum(var, axis=-1, keepdims=True), window, **self._conv_args())
        return box * var_kernel * ops.ones(kernel_shape[-1:], dtype=var.dtype)


class DepthwiseConvRule(ConvRule):
    def output_channels(self, kernel):
        return kernel.shape[-2] * kernel.shape[-1]

    def _fold_shape(self, scale, kernel):
        return ops.reshape(scale, tuple(kernel.shape[-2:]))

    def apply(self, x, kernel):
        return ops.depthwise_conv(x, kernel, **self._conv_args())

    def linear_moments(self, state, mean_kernel, var_kernel, bias, ctx):
        return Moments(
            *rules.depthwise_conv_moments(
                state.mean, state.var, mean_kernel, var_kernel, bias, **self._conv_args()
            )
        )

    def input_adjoint(self, g, mean_kernel, input_shape):
        full = adjoints.depthwise_as_conv(mean_kernel)
        return super().input_adjoint(g, full, input_shape)

    def _taps(self, x):
        taps = windows.pool_windows(
            x, self.op.kernel_size, self.op.strides, self.op.padding, 0.0, self.op.dilation_rate
        )
        stacked = ops.stack(taps, axis=-2)  # (B, *out, taps, Cin)
        positions = int(np.prod(stacked.shape[1:-2]))
        return ops.reshape(stacked, (-1, positions) + tuple(stacked.shape[-2:]))

    def _patch_arguments(self, state, g, var_kernel):
        patches, patch_var = self._taps(state.mean), self._taps(state.var)
        g = ops.reshape(g, (-1, patches.shape[1], g.shape[-1]))
        kernel_shape = tuple(self.op.kernel.shape)
        if len(var_kernel.shape) == len(kernel_shape):
            var_kernel = ops.reshape(var_kernel, (-1,) + kernel_shape[-2:])
        return patches, patch_var, g, var_kernel

    def noise_covariance(self, state, g, var_kernel, num):
        args = self._patch_arguments(state, g, var_kernel)
        return adjoints.depthwise_noise_covariance(*args, num, self.op.kernel.shape[-1])

    def noise_energy(self, state, g, var_kernel, num):
        args = self._patch_arguments(state, g, var_kernel)
        return adjoints.depthwise_noise_energy(*args, num, self.op.kernel.shape[-1])
