"""The mirrored graph: its nodes in evaluation order, and the passes that evaluate it.

`tracing.trace` records a Keras model as a `Graph` of `Node`s (one per call of a layer or
functional operation, each with the `MirrorRule` of its layer); `passes` rewrites it (new
nodes, never changed in place). The graph then runs moments forward (`run_moments`), clean or
sampled values forward (`run_values`) and cotangents backward (`run_adjoint`, `run_probe`). It
calls every rule with its inputs and a read-only `NodeContext`, and alone accumulates what the
rules return: saved values per node, power per layer, the output covariance and each layer's
share of it.

A layer called at several places is mapped as one crossbar per call (independent noise, one
shared Gmax), in the analytic modes and in the Monte-Carlo reference alike.
"""

import dataclasses
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from tf_lanmax.memse.context import Forward, NodeContext, Reverse
from tf_lanmax.memse.mirror_layers import Moments, relu_state
from tf_lanmax.memse.moments import diagonal_covariance


class _Handle:
    """Holds an object without Keras tracking it (the mirror must not own the model's weights
    as its own: `optimize_gmax` trains only Gmax)."""

    def __init__(self, value):
        self.value = value


class _Slot:
    """Placeholder of an input tensor in a recorded call."""

    def __init__(self, key):
        self.key = key


@dataclasses.dataclass(frozen=True)
class Node:
    """One call of a layer or operation in the mirrored graph.

    Attributes:
        op: the layer or operation.
        args, kwargs: the recorded call, input tensors replaced by slots.
        inputs: keys of the input tensors, in call order.
        output: key of the output tensor.
        key: the node's unique name (the layer's, ``_1``, ``_2``... for later calls).
        rule: its `MirrorRule`.
        relu_moved_to: the key of the max pool that applies this node's ReLU instead
            (`passes.relu_after_max_pool`); records still show the ReLU's output.
    """

    op: object
    args: tuple
    kwargs: dict
    inputs: tuple
    output: int
    key: str
    rule: object
    relu_moved_to: str = None

    @property
    def name(self):
        return self.key

    def call_original(self, values):
        """Calls the layer as the model does, on `values` (one per input key)."""
        lookup = dict(zip(self.inputs, values, strict=True))

        def fill(x):
            return lookup[x.key] if isinstance(x, _Slot) else x

        args = keras.tree.map_structure(fill, self.args)
        kwargs = keras.tree.map_structure(fill, dict(self.kwargs))
        if isinstance(self.op, keras.layers.Layer):
            kwargs["training"] = False
        return self.op(*args, **kwargs)


class MomentsPass(NamedTuple):
    """`Graph.run_moments`' result: the output `Moments`, and {node key: saved values} when
    a reverse pass follows (else None)."""

    output: object
    saved: dict = None


class ReversePass(NamedTuple):
    """`Graph.run_adjoint` / `run_probe`'s result: the output covariance (or probe energies)
    and {layer name: its weight noise's share} (diagonal, or per-probe energies)."""

    total: object
    contributions: dict


def _add(total, value):
    return value if total is None else total + value


@dataclasses.dataclass(frozen=True)
class Graph:
    """The traced, rule-annotated graph of a model (shared by `MemSE` and `monte_carlo`).

    Attributes:
        nodes: the `Node`s in evaluation order.
        input_key, output_key: keys of the model's input and output tensors.
        shapes: {tensor key: symbolic shape}.
        skipped_output_activation: the output softmax/sigmoid MemSE skips (or None).
    """

    nodes: tuple
    input_key: int
    output_key: int
    shapes: dict
    skipped_output_activation: str = None

    def producer(self, key):
        """The node whose output is the tensor `key` (None for the model input)."""
        for node in self.nodes:
            if node.output == key:
                return node
        return None

    def consumers(self):
        """{tensor key: the nodes that read it}."""
        users = {}
        for node in self.nodes:
            for key in node.inputs:
                users.setdefault(key, []).append(node)
        return users

    def with_nodes(self, replacements, **changes):
        """A new graph with the nodes {key: node} replaced (and other fields changed)."""
        nodes = tuple(replacements.get(node.key, node) for node in self.nodes)
        return dataclasses.replace(self, nodes=nodes, **changes)

    @property
    def mapped_nodes(self):
        return [n for n in self.nodes if n.rule.mapped]

    @property
    def crossbar_layers(self):
        """Names of the layers mapped onto the crossbar (one Gmax each), in graph order."""
        names = []
        for node in self.mapped_nodes:
            if not node.rule.faulty and node.op.name not in names:
                names.append(node.op.name)
        return names

    # -- evaluations ----------------------------------------------------------------------

    def _noisy_keys(self):
        """Tensor keys downstream of a mapped layer: the only ones a cotangent must reach."""
        noisy = set()
        for node in self.nodes:
            if node.rule.mapped or any(k in noisy for k in node.inputs):
                noisy.add(node.output)
        return noisy

    def run_moments(self, x, config, *, record=None, power=None, save=False):
        """Moments forward under the `PassConfig` `config`.

        Args:
            x: a batch of inputs.
            config: the `PassConfig`.
            record: optional dict filled with every node's output `Moments` (a ReLU moved
                after a max pool shows its own output).
            power: optional dict filled with {layer name: (device, tia)} per-sample power.
            save: keep, per node, what its reverse rule needs (a reverse pass follows).

        Returns:
            A `MomentsPass`.
        """
        x = ops.convert_to_tensor(x)
        env = {self.input_key: Moments(x, ops.zeros_like(x), exact=True)}
        saved = {} if save else None
        for node in self.nodes:
            inputs = [env[k] for k in node.inputs]
            ctx = NodeContext(config, node.key, save=save, measure_power=power is not None)
            result = Forward.of(node.rule.moments(inputs, ctx))
            env[node.output] = result.state
            if save:
                saved[node.key] = {"inputs": inputs, **result.saved}
            if power is not None and result.power is not None:
                name = node.rule.name
                previous = power.get(name, (0.0, 0.0))
                power[name] = (previous[0] + result.power[0], previous[1] + result.power[1])
            if record is not None:
                record[node.key] = relu_state(result.state) if node.relu_moved_to else result.state
        return MomentsPass(env[self.output_key], saved)

    def run_values(self, x, config, mode, *, record=None, kernels=None):
        """Clean (`mode="clean"`) or sampled (`"sample"`) values forward.

        Args:
            x: a batch of inputs (``D x B`` tiled examples when sampled).
            config: the `PassConfig`.
            mode: `"clean"` or `"sample"`.
            record: optional dict filled with every node's output.
            kernels: {node key: sampled kernels} of the mapped layers (`"sample"`).

        Returns:
            The output tensor.
        """
        kernels = {} if kernels is None else kernels
        env = {self.input_key: ops.convert_to_tensor(x)}
        for node in self.nodes:
            values = [env[k] for k in node.inputs]
            ctx = NodeContext(
                config, node.key, call=node.call_original, kernels=kernels.get(node.key)
            )
            evaluate = node.rule.sample if mode == "sample" else node.rule.clean
            env[node.output] = evaluate(values, ctx)
            if record is not None:
                value = env[node.output]
                record[node.key] = ops.relu(value) if node.relu_moved_to else value
        return env[self.output_key]

    def run_adjoint(self, output_mean, config, saved):
        """Reverse pass after `run_moments(..., save=True)` (its `saved`): the output
        covariance that the weight noise of every mapped layer adds, ``(B, O, O)`` with O the
        output size, and each layer's ``(B, O)`` share (a `ReversePass`)."""
        out_shape = tuple(output_mean.shape[1:])
        num = int(np.prod(out_shape))
        seed = ops.reshape(ops.eye(num, dtype=output_mean.dtype), (num, 1) + out_shape)
        seed = seed * ops.expand_dims(ops.ones_like(output_mean), 0)  # (O, B, ...)
        result = self._reverse(ops.reshape(seed, (-1,) + out_shape), num, config, saved, False)
        if result.total is None:
            flat = ops.reshape(ops.zeros_like(output_mean), (-1, num, 1))
            return ReversePass(flat * ops.zeros((1, 1, num), dtype=output_mean.dtype), {})
        return result

    def run_probe(self, output_mean, config, saved, probes, seed):
        """Reverse pass after `run_moments(..., save=True)` (its `saved`), seeded with
        `probes` Rademacher output probes per example: ``(B, probes)`` weighted squared
        gradient norms, each an unbiased estimate of the example's total output variance
        (`"probe"` mode), and each layer's share (a `ReversePass`)."""
        out_shape = tuple(output_mean.shape[1:])
        shape = (probes,) + tuple(ops.shape(output_mean))
        signs = keras.random.randint(shape, 0, 2, seed=seed, dtype="int32")
        signs = ops.cast(2 * signs - 1, output_mean.dtype)
        result = self._reverse(ops.reshape(signs, (-1,) + out_shape), probes, config, saved, True)
        if result.total is None:  # no mapped layer: no noise
            first = ops.reshape(output_mean, (ops.shape(output_mean)[0], -1))[:, :1]
            zeros = ops.zeros_like(first) * ops.zeros((1, probes), dtype=output_mean.dtype)
            return ReversePass(zeros, {})
        return result

    def _reverse(self, seed, num, config, saved, probe):
        """Carries the ``(num * B, ...)`` output cotangents `seed` back through the graph,
        adding up what the rules of mapped layers and ReLUs return."""
        total, contributions = None, {}
        cotangents = {self.output_key: seed}
        noisy = self._noisy_keys()
        for node in reversed(self.nodes):
            g = cotangents.pop(node.output, None)
            if g is None:
                continue
            need = tuple(key in noisy for key in node.inputs)
            if not (node.rule.mapped or any(need)):
                continue
            ctx = NodeContext(config, node.key, num_outputs=num, probe=probe, need=need)
            result = Reverse.of(node.rule.adjoint(g, saved[node.key], ctx))
            if result.variance is not None:
                variance = result.variance
                total = _add(total, variance if probe else diagonal_covariance(variance))
            if result.noise is not None:
                total = _add(total, result.noise)
                share = result.noise
                if not probe:
                    share = ops.diagonal(result.noise, axis1=-2, axis2=-1)
                name = node.rule.name
                contributions[name] = _add(contributions.get(name), share)
            for key, cot in zip(node.inputs, result.cotangents):
                if cot is None or key not in noisy:
                    continue
                cotangents[key] = cot if key not in cotangents else cotangents[key] + cot
        return ReversePass(total, contributions)
