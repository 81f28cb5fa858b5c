"""`monte_carlo`: the sampled reference of MemSE, with the very same noise model.

Each draw programs every mapped layer once (crossbar noise from `Crossbar.sample_kernels`,
digital faults from the faulty layer's own fault model) and evaluates all samples with those
weights: one chip per draw. With `per_example=True` every example gets its own noise (Flipout
sign flips, or independent kernels), which estimates the expected MSE in far fewer draws.
Draws are vectorised: a chunk of D draws runs as one batch of ``D x B`` samples, the
deterministic layers being the model's own Keras layers, in one compiled function
(`tf.function` / `jax.jit`, fed the model's variables statelessly). The per-draw MSE (mean over
samples and outputs) is i.i.d. across draws, so its Student-t interval is the confidence
interval of the MSE (`t_interval`, shared with `tl.evaluation`). The chunks of draws and of
examples, the padding of the last chunk of draws and the cache of compiled passes are those of
`tl.evaluation` too (`tf_lanmax._draw_runner`).
"""

import dataclasses
import time

import keras
import numpy as np
from keras import ops

from tf_lanmax._compile import compile_function
from tf_lanmax._draw_runner import COMPILED_STEPS, chunks
from tf_lanmax._intervals import t_interval
from tf_lanmax._validation import check_bool, check_int, check_positive, check_probability
from tf_lanmax.memse.mirror import MemSE

# Floats of the largest activation a chunk of draws may hold at once (~128 MB in float32).
_CHUNK_FLOATS = 2**25
# Draws per compiled pass by default: each draw adds one convolution per layer to the compiled
# graph (per-draw kernels; a grouped convolution is 5-8x slower on CPU), so chunks stay small and
# every chunk reuses one trace.
_COMPILED_CHUNK_DRAWS = 32


def _sampled_pass(mirror, compiled, cache):
    """``(variables, run)``: ``run(values, kernels, x)`` is the mirror's sampled pass on
    ``D x B`` tiled samples, ``values`` those of the model's `variables` and ``kernels``
    {node key: ``(D, ...)``}. With a `StepCache` as `cache` (else None), the compiled pass is
    kept for the next call on this mirror."""
    variables = list(mirror.model.variables)
    graph, config = mirror.graph, mirror.pass_config()

    def run(values, kernels, x):
        # Stateless: jax.jit would otherwise bake the weights in as constants.
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return graph.run_values(x, config, "sample", kernels=kernels)

    if not compiled:
        return variables, run
    if cache is None:
        return variables, compile_function(run, static_shapes=True)
    return cache.get(
        ("memse.sampled_pass", id(mirror)),
        lambda: (variables, compile_function(run, static_shapes=True)),
        owner=mirror,
    )


def _per_example_kernels(mirror, config, draws, examples, seed):
    """{node key: kernels} giving each of the ``draws x examples`` tiled examples its own
    noise: Flipout sign flips where the layer's noise allows (`LinearRule.flipout_ready`),
    else one independent kernel per example (the sampled pass then runs batches of one)."""
    kernels = {}
    for node in mirror.graph.mapped_nodes:
        rule = node.rule
        if rule.flipout_ready(config):
            kernels[node.key] = rule.flipout_draws(config, draws, examples, seed)
        else:
            kernels[node.key] = rule.sample_kernels(config, draws * examples, seed)
    return kernels


@dataclasses.dataclass(frozen=True)
class MonteCarloResult:
    """Sampled MSE against the clean network, with its confidence interval over draws.

    Attributes:
        mse: mean over draws of the per-draw MSE (mean over samples and outputs).
        ci: `(low, high)` Student-t interval of `mse`.
        half_width: half the interval's width.
        std: standard deviation of the per-draw MSE (n - 1).
        draws: number of draws K.
        confidence: the interval's coverage.
        per_output_mse: ``(outputs,)`` MSE per output (outputs flattened).
        per_output_ci: ``(outputs, 2)`` interval per output.
        per_draw: ``(K,)`` per-draw MSE.
        output_mean: ``(samples, outputs)`` mean of the noisy outputs over draws.
        output_var: ``(samples, outputs)`` variance of the noisy outputs over draws (n - 1).
        seconds: wall time of the draws.
        agreement: fraction of samples whose noisy arg-max output is the clean one (mean
            over draws): one minus the accuracy lost against the clean network's own
            predictions. NaN for a single output.
        per_example: whether the noise was drawn per example (else once per draw).
    """

    mse: float
    ci: tuple
    half_width: float
    std: float
    draws: int
    confidence: float
    per_output_mse: np.ndarray
    per_output_ci: np.ndarray
    per_draw: np.ndarray
    output_mean: np.ndarray
    output_var: np.ndarray
    seconds: float
    agreement: float = float("nan")
    per_example: bool = False

    @property
    def relative_half_width(self):
        return self.half_width / self.mse if self.mse > 0 else float("inf")

    def to_dict(self, arrays=False):
        out = {
            "mse": self.mse,
            "ci": list(self.ci),
            "half_width": self.half_width,
            "relative_half_width": self.relative_half_width,
            "std": self.std,
            "draws": self.draws,
            "confidence": self.confidence,
            "per_output_mse": self.per_output_mse.tolist(),
            "seconds": self.seconds,
            "agreement": self.agreement,
            "per_example": self.per_example,
        }
        if arrays:
            out["per_draw"] = self.per_draw.tolist()
        return out

    def __str__(self):
        return (
            f"MC MSE {self.mse:.4g} +- {self.half_width:.2g} "
            f"({self.confidence:.0%} CI over {self.draws} draws)"
        )


def monte_carlo(
    model,
    crossbar=None,
    x=None,
    draws=1000,
    batch_draws=None,
    batch_size=None,
    seed=0,
    confidence=0.95,
    rel_half_width=None,
    min_draws=10,
    compiled=True,
    per_example=False,
    verbose=False,
):
    """Samples the MSE of a model on noisy memory against its clean output.

    Args:
        model: a Keras model (mirrored with `crossbar`) or a `MemSE` mirror (its crossbar and
            current Gmax are used; `crossbar` must then be None).
        crossbar: the `Crossbar`. Defaults to `None` (only with a `MemSE`).
        x: the inputs, array-like ``(samples, ...)``.
        draws: number of weight draws K (the maximum when `rel_half_width` is set).
            Defaults to `1000`.
        batch_draws: draws evaluated together. Defaults to `None` (as many as fit ~128 MB of
            activations).
        batch_size: samples per pass; the peak memory is that of one pass of
            ``batch_draws x batch_size`` samples. Defaults to `None` (the mirror's
            `batch_size`, 128 unless set).
        seed: seed of the draws. Defaults to `0`.
        confidence: coverage of the intervals. Defaults to `0.95`.
        rel_half_width: stop once the interval's half-width is below this fraction of the MSE
            (sequential stopping slightly under-covers). Defaults to `None` (run all draws).
        min_draws: fewest draws before stopping early. Defaults to `10`.
        compiled: run each chunk's sampled pass as one compiled function (`tf.function` /
            `jax.jit`; about 3x faster on CPU). Same draws either way. Defaults to `True`.
        per_example: draw the noise per example instead of once per draw for the whole
            batch. Shared draws (False) are chips: their spread across draws is the
            chip-to-chip spread. Per-example draws estimate the expected MSE with far fewer
            passes: crossbar-mapped layers use Flipout (one Gaussian perturbation per draw,
            random per-example signs per input and output channel, about twice a forward
            pass; every example sees a perturbation of the very same law), layers whose noise
            is not symmetric (digital faults, `tl.analog` devices) get an independent kernel
            per example (exact but slow for convolutions). Defaults to `False`.
        verbose: show a `keras.utils.Progbar` over the draws. Defaults to `False`.

    Returns:
        A `MonteCarloResult`.

    Example:
    >>> result = monte_carlo(model, Crossbar(sigma=0.01, gmax=2.0), x_test[:256], draws=1000)
    >>> result.mse, result.ci
    """
    if isinstance(model, MemSE):
        if crossbar is not None:
            raise ValueError(
                "`crossbar` must be None when `model` is a MemSE mirror (its crossbar and Gmax "
                f"are used). Received: crossbar={crossbar!r}"
            )
        mirror = model
    else:
        mirror = MemSE(model, crossbar)
    if x is None:
        raise ValueError("`x` must be an array of inputs. Received: x=None")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"`x` must be a non-empty batch (samples, ...). Received shape {x.shape}")
    draws = check_int("draws", draws, low=2)
    confidence = check_probability("confidence", confidence, high=1.0 - 1e-12)
    seed = check_int("seed", seed, low=0)
    min_draws = check_int("min_draws", min_draws, low=2)
    if rel_half_width is not None:
        rel_half_width = check_positive("rel_half_width", rel_half_width)
    per_example = check_bool("per_example", per_example)
    verbose = check_bool("verbose", verbose)
    if batch_size is None:
        batch_size = mirror.batch_size
    batch_size = check_int("batch_size", batch_size, low=1)
    batches = [x[chunk.slice] for chunk in chunks(len(x), batch_size)]
    clean = [ops.reshape(mirror.clean(xb), (len(xb), -1)) for xb in batches]
    outputs_count = int(clean[0].shape[-1])
    if batch_draws is None:
        widest = max(int(np.prod(s[1:])) for s in mirror.graph.shapes.values())
        batch_draws = max(1, min(draws, _CHUNK_FLOATS // max(1, widest * len(batches[0]))))
        if compiled:
            batch_draws = min(batch_draws, _COMPILED_CHUNK_DRAWS)
    batch_draws = check_int("batch_draws", batch_draws, low=1)

    generator = keras.random.SeedGenerator(seed)
    config = mirror.pass_config()
    cache = COMPILED_STEPS if mirror is model else None  # a fresh mirror is never seen again
    variables, run = _sampled_pass(mirror, bool(compiled), cache=cache)
    per_draw, agreements, sum_y, sum_y2, done = [], [], 0.0, 0.0, 0
    progress = keras.utils.Progbar(draws, unit_name="draw") if verbose else None
    start_time = time.perf_counter()
    # Compiled, the last chunk is padded to `batch_draws` draws: one shape, one trace.
    for chunk in chunks(draws, batch_draws, pad=bool(compiled)):
        d, width = chunk.count, chunk.width
        if not per_example:
            kernels = {
                node.key: chunk.pad(node.rule.sample_kernels(config, d, generator))
                for node in mirror.graph.mapped_nodes
            }
        values = [v.value for v in variables]
        errors, outputs, agree = [], [], 0.0
        for xb, zb in zip(batches, clean, strict=True):
            if per_example:
                kernels = _per_example_kernels(mirror, config, width, len(xb), generator)
            tiled = ops.reshape(
                ops.broadcast_to(ops.expand_dims(xb, 0), (width,) + xb.shape),
                (-1,) + xb.shape[1:],
            )
            y = run(values, kernels, tiled)
            y = chunk.drop(ops.reshape(y, (width,) + tuple(zb.shape)))  # outputs flattened
            errors.append(ops.convert_to_numpy(ops.sum(ops.square(y - zb), axis=1)))
            same = ops.equal(ops.argmax(y, axis=-1), ops.expand_dims(ops.argmax(zb, axis=-1), 0))
            agree += float(ops.convert_to_numpy(ops.sum(ops.cast(same, "float32"))))
            outputs.append(ops.convert_to_numpy(y).astype(np.float64))
        per_draw.append(np.sum(errors, axis=0) / len(x))  # (d, outputs)
        agreements.append(agree / len(x))
        y_all = np.concatenate(outputs, axis=1)
        sum_y = sum_y + y_all.sum(axis=0)
        sum_y2 = sum_y2 + (y_all**2).sum(axis=0)
        done += d
        if progress is not None:
            progress.update(done)
        if rel_half_width is not None and done >= min_draws:
            interval = t_interval(np.concatenate(per_draw).mean(axis=1), confidence)
            if interval.half_width <= rel_half_width * interval.mean:
                break
    seconds = time.perf_counter() - start_time
    per_output = np.concatenate(per_draw)
    total = per_output.mean(axis=1)
    overall = t_interval(total, confidence)
    per_output_interval = t_interval(per_output, confidence)
    output_mean = sum_y / done
    output_var = (sum_y2 - done * output_mean**2) / max(done - 1, 1)
    return MonteCarloResult(
        mse=overall.mean,
        ci=(overall.low, overall.high),
        half_width=overall.half_width,
        std=overall.std,
        draws=int(done),
        confidence=confidence,
        per_output_mse=per_output_interval.mean,
        per_output_ci=np.stack([per_output_interval.low, per_output_interval.high], axis=1),
        per_draw=total,
        output_mean=output_mean,
        output_var=np.maximum(output_var, 0.0),
        seconds=seconds,
        agreement=float(np.sum(agreements) / done) if outputs_count > 1 else float("nan"),
        per_example=per_example,
    )
