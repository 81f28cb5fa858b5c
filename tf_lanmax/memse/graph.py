"""Walking a Keras model's graph into mirror nodes, and evaluating it.

Sequential chains are read directly; Functional graphs are walked by
`keras.models.clone_model` with a recording `call_function` (public API only); nested models are
inlined. Each node gets the rule of its layer class (`MIRRORS`); BatchNorm is folded into the
crossbar kernel before it where the crossbar says so; an output softmax/sigmoid is skipped so
that the MSE is measured at the logits. The graph then runs moments forward, clean or sampled
values forward, and cotangents backward (`"jacobian"` mode).

A layer called at several places is mapped as one crossbar per call (independent noise, one
shared Gmax), in the analytic modes and in the Monte-Carlo reference alike.
"""

import keras
import numpy as np
from keras import ops

from tf_lanmax.errors import UnsupportedLayerError
from tf_lanmax.layers.twins import TWINS, twin_class
from tf_lanmax.memse.mapped_layers import ConvRule, DenseRule, DepthwiseConvRule, LinearRule
from tf_lanmax.memse.mirror_layers import (
    ActivationRule,
    AddRule,
    AveragePoolRule,
    BatchNormRule,
    GlobalAveragePoolRule,
    GlobalMaxPoolRule,
    IdentityRule,
    MaxPoolRule,
    MirrorRule,
    Moments,
    ReLURule,
    ReshapeRule,
    SoftmaxRule,
    relu_adjoint,
    relu_state,
)

_L = keras.layers
MIRRORS = {
    _L.Dense: DenseRule,
    _L.Conv1D: ConvRule,
    _L.Conv2D: ConvRule,
    _L.DepthwiseConv2D: DepthwiseConvRule,
    _L.BatchNormalization: BatchNormRule,
    _L.ReLU: ReLURule,
    _L.Activation: ActivationRule,
    _L.Softmax: SoftmaxRule,
    _L.MaxPooling1D: MaxPoolRule,
    _L.MaxPooling2D: MaxPoolRule,
    _L.AveragePooling1D: AveragePoolRule,
    _L.AveragePooling2D: AveragePoolRule,
    _L.GlobalAveragePooling1D: GlobalAveragePoolRule,
    _L.GlobalAveragePooling2D: GlobalAveragePoolRule,
    _L.GlobalMaxPooling1D: GlobalMaxPoolRule,
    _L.GlobalMaxPooling2D: GlobalMaxPoolRule,
    _L.Flatten: ReshapeRule,
    _L.Reshape: ReshapeRule,
    _L.Permute: ReshapeRule,
    _L.ZeroPadding1D: ReshapeRule,
    _L.ZeroPadding2D: ReshapeRule,
    _L.Cropping1D: ReshapeRule,
    _L.Cropping2D: ReshapeRule,
    _L.Concatenate: ReshapeRule,
    _L.Add: AddRule,
    _L.Dropout: IdentityRule,
    _L.SpatialDropout1D: IdentityRule,
    _L.SpatialDropout2D: IdentityRule,
    _L.GaussianDropout: IdentityRule,
    _L.GaussianNoise: IdentityRule,
    _L.AlphaDropout: IdentityRule,
    _L.Identity: IdentityRule,
}
# Operations that the functional API creates for `a + b` or `keras.ops.relu(x)` on symbolic
# tensors; they are not layers, so they are matched by class name.
OPERATIONS = {"Add": AddRule, "Relu": ReLURule}


def register_mirror(layer_class, rule_class):
    """Registers the mirror rule of a custom layer class (exact class match).

    Args:
        layer_class: a `keras.layers.Layer` subclass.
        rule_class: a `MirrorRule` subclass.
    """
    if not (isinstance(rule_class, type) and issubclass(rule_class, MirrorRule)):
        raise ValueError(
            f"`rule_class` must be a MirrorRule subclass. Received: rule_class={rule_class!r}"
        )
    MIRRORS[layer_class] = rule_class


def supported_layers():
    """Names of the supported layer classes (and functional operations)."""
    names = sorted({cls.__name__ for cls in [*MIRRORS, *TWINS]})
    return names + [f"keras.ops.{name.lower()} (functional)" for name in OPERATIONS]


def rule_for(op):
    """The mirror rule of one layer or functional operation.

    Raises:
        UnsupportedLayerError: for an unsupported layer (a ValueError), naming it and its
            class and listing the supported ones.
    """
    # A faulty layer is mirrored by its Keras twin's rule (`tl.layers.TWINS`).
    cls = MIRRORS.get(type(op)) or MIRRORS.get(twin_class(op))
    if cls is None and not isinstance(op, keras.layers.Layer):
        cls = OPERATIONS.get(type(op).__name__)
    if cls is None:
        raise UnsupportedLayerError(
            f"{getattr(op, 'name', op)} ({type(op).__name__})",
            supported_layers(),
            "MemSE",
        )
    return cls(op)


class _Handle:
    """Holds an object without Keras tracking it (the mirror must not own the model's weights
    as its own: `optimize_gmax` trains only Gmax)."""

    def __init__(self, value):
        self.value = value


class _Slot:
    """Placeholder of an input tensor in a recorded call."""

    def __init__(self, key):
        self.key = key


class Node:
    """One call of a layer or operation in the mirrored graph."""

    def __init__(self, op, args, kwargs, inputs, output, key):
        self.op = op
        self.args = args
        self.kwargs = kwargs
        self.inputs = inputs
        self.output = output
        self.key = key
        self.rule = rule_for(op)

    @property
    def name(self):
        return self.key

    def call_original(self, values):
        lookup = dict(zip(self.inputs, values, strict=True))

        def fill(x):
            return lookup[x.key] if isinstance(x, _Slot) else x

        args = keras.tree.map_structure(fill, self.args)
        kwargs = keras.tree.map_structure(fill, dict(self.kwargs))
        if isinstance(self.op, keras.layers.Layer):
            kwargs["training"] = False
        return self.op(*args, **kwargs)


class _Probe(keras.layers.Layer):
    """Stands in for a layer while `clone_model` walks the graph: symbolic shapes only."""

    def __init__(self, source):
        super().__init__(name=getattr(source, "name", None))
        self._source = _Handle(source)

    def compute_output_spec(self, *args, **kwargs):
        return self._source.value.compute_output_spec(*args, **kwargs)

    def call(self, *args, **kwargs):  # never run: the probe only sees symbolic tensors
        raise NotImplementedError


class _Tracer:
    """Records a model's graph as a list of `Node`s over integer tensor keys."""

    def __init__(self):
        self.nodes = []
        self._keys = {}
        self._alive = []
        self._names = {}
        self.shapes = {}

    def key(self, tensor):
        ident = id(tensor)
        if ident not in self._keys:
            self._keys[ident] = len(self._keys)
            self._alive.append(tensor)  # ids stay unique while the tensor lives
            self.shapes[self._keys[ident]] = tuple(tensor.shape)
        return self._keys[ident]

    def _node_key(self, op):
        name = getattr(op, "name", type(op).__name__)
        count = self._names.get(name, 0)
        self._names[name] = count + 1
        return name if count == 0 else f"{name}_{count}"

    def add(self, op, args, kwargs, output_key):
        flat = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
        in_keys = [self.key(t) for t in flat]

        def slot(x):
            return _Slot(self.key(x)) if isinstance(x, keras.KerasTensor) else x

        args = keras.tree.map_structure(slot, args)
        kwargs = keras.tree.map_structure(slot, kwargs)
        if isinstance(op, keras.Model):
            self._inline(op, in_keys, output_key)
            return
        self.nodes.append(Node(op, args, kwargs, in_keys, output_key, self._node_key(op)))

    def _inline(self, model, in_keys, output_key):
        position = len(self.nodes)
        sub_in, sub_out = self.trace(model)
        prefix = self._node_key(model)
        # The sub-model's input aliases must run before its nodes.
        aliases = [
            _alias(inner, outer, f"{prefix}/input")
            for outer, inner in zip(in_keys, sub_in, strict=True)
        ]
        self.nodes[position:position] = aliases
        self.nodes.append(_alias(output_key, sub_out, f"{prefix}/output"))
        self.shapes[output_key] = self.shapes[sub_out]

    def trace(self, model):
        """Adds `model`'s nodes; returns (input keys, output key)."""
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"`model` must be a Sequential or Functional keras.Model. Received: model={model!r}"
            )
        if not model.built or not getattr(model, "inputs", None):
            raise ValueError(
                f"`model` '{model.name}' must be built on a known input shape (give it a "
                "`keras.Input`, or call it once) before MemSE can walk its graph."
            )
        if (
            len(keras.tree.flatten(model.inputs)) != 1
            or len(keras.tree.flatten(model.outputs)) != 1
        ):
            raise ValueError(
                f"MemSE supports models with one input and one output. Received: model "
                f"'{model.name}' with {len(model.inputs)} inputs and {len(model.outputs)} outputs"
            )
        if isinstance(model, keras.Sequential):
            return self._trace_sequential(model)
        return self._trace_functional(model)

    def _trace_sequential(self, model):
        start = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
        x = start
        for layer in model.layers:
            y = keras.KerasTensor(layer.compute_output_spec(x).shape, dtype=x.dtype)
            self.add(layer, (x,), {}, self.key(y))
            x = y
        return [self.key(start)], self.key(x)

    def _trace_functional(self, model):
        start = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
        inputs = keras.tree.map_structure(lambda _: start, model.input)

        def call_function(probe, *args, **kwargs):
            outputs = probe(*args, **kwargs)
            flat = keras.tree.flatten(outputs)
            if len(flat) != 1:
                raise ValueError(
                    f"MemSE supports layers with one output tensor. Received: layer "
                    f"'{probe.name}' with {len(flat)} outputs"
                )
            self.add(probe._source.value, args, kwargs, self.key(flat[0]))
            return outputs

        try:
            clone = keras.models.clone_model(
                model, input_tensors=inputs, clone_function=_Probe, call_function=call_function
            )
        except ValueError as error:
            if "MemSE" in str(error):
                raise
            raise ValueError(
                f"MemSE could not walk the graph of model '{model.name}' ({error}). Allowed: "
                "Sequential and Functional models."
            ) from error
        return [self.key(start)], self.key(keras.tree.flatten(clone.outputs)[0])


class _AliasOp:
    def __init__(self, name):
        self.name = name


def _alias(output_key, input_key, name):
    node = Node.__new__(Node)
    node.op, node.args, node.kwargs = _AliasOp(name), (_Slot(input_key),), {}
    node.inputs, node.output, node.key = [input_key], output_key, name
    node.rule = IdentityRule(node.op)
    return node


class Graph:
    """The traced, rule-annotated graph of a model (shared by `MemSE` and `monte_carlo`)."""

    def __init__(self, model, crossbar, digital=False):
        tracer = _Tracer()
        (self.input_key,), self.output_key = tracer.trace(model)
        self.nodes = tracer.nodes
        self.shapes = tracer.shapes
        consumers = {}
        for node in self.nodes:
            for key in node.inputs:
                consumers.setdefault(key, []).append(node)
        for node in self.nodes:
            if isinstance(node.rule, LinearRule):
                node.rule.digital = digital
        self._skip_output_activation()
        if crossbar.fold_batchnorm:
            self._fold_batchnorm(consumers)
        self._pool_first = self._relus_before_max_pools(consumers)
        for node in self.nodes:
            if node.rule.output_only:
                raise ValueError(
                    f"Layer '{node.op.name}' applies softmax/sigmoid inside the network. MemSE "
                    "measures the MSE at the logits and allows these activations on the model "
                    "output only. Allowed inside: relu, linear."
                )

    def _producer(self, key):
        for node in self.nodes:
            if node.output == key:
                return node
        return None

    def _skip_output_activation(self):
        """MemSE measures the logits: drop a softmax/sigmoid that produces the output."""
        self.skipped_output_activation = None
        node = self._producer(self.output_key)
        while node is not None and isinstance(node.rule, IdentityRule) and node.inputs:
            node = self._producer(node.inputs[0])
        if node is None or not node.rule.output_only:
            return
        if isinstance(node.rule, LinearRule):
            self.skipped_output_activation = f"{node.key}.activation={node.rule.activation}"
            node.rule.activation, node.rule.output_only = "linear", False
        else:
            self.skipped_output_activation = node.key
            node.rule = IdentityRule(node.op)

    def _fold_batchnorm(self, consumers):
        for node in self.nodes:
            rule = node.rule
            if not (isinstance(rule, LinearRule) and not rule.faulty):
                continue
            users = consumers.get(node.output, [])
            if rule.activation != "linear" or len(users) != 1 or node.output == self.output_key:
                continue
            bn = users[0]
            if not isinstance(bn.rule, BatchNormRule) or not isinstance(bn.op.axis, int):
                continue
            rank = len(self.shapes[node.output])
            if bn.op.axis % rank != rank - 1:
                continue
            rule.bn = bn.op
            bn.rule = IdentityRule(bn.op)

    def _relus_before_max_pools(self, consumers):
        """{ReLU node key: max-pool node key} for every ReLU whose only consumer is a max pool.

        ``maxpool(relu(x)) = relu(maxpool(x))``. With the `"max_mean"` rule the moments pass
        pools first, so the Gaussian ReLU rule (an erfc and an exp per entry, the costliest
        step of a diagonal pass) runs on the pooled tensor: 4x fewer entries under a 2x2 pool.
        The winner of a window is then the entry with the largest pre-activation mean.
        """
        pairs = {}
        for node in self.nodes:
            rule = node.rule
            if isinstance(rule, (LinearRule, ActivationRule)):
                is_relu = rule.activation == "relu"
            else:
                is_relu = isinstance(rule, ReLURule)
            users = consumers.get(node.output, [])
            if not is_relu or len(users) != 1 or node.output == self.output_key:
                continue
            if isinstance(users[0].rule, (MaxPoolRule, GlobalMaxPoolRule)):
                pairs[node.key] = users[0].key
        return pairs

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

    def run_moments(self, x, ctx, record=None):
        """Moments forward; with ``ctx.saved`` a dict, also the states a reverse pass needs.

        With the `"max_mean"` pooling rule, a ReLU that only feeds a max pool runs after it
        (`_relus_before_max_pools`; the reverse pass applies its slope before routing the
        pool's cotangent); `record` still gets its true output.
        """
        x = ops.convert_to_tensor(x)
        env = {self.input_key: Moments(x, ops.zeros_like(x), exact=True)}
        pool_first = self._pool_first if ctx.maxpool == "max_mean" else {}
        ctx.pool_first = pool_first
        relu_after = set(pool_first.values())
        for node in self.nodes:
            inputs = [env[k] for k in node.inputs]
            ctx.node_key = node.key
            ctx.save(inputs=inputs)
            ctx.skip_relu = node.key in pool_first
            state = node.rule.moments(inputs, ctx)
            ctx.skip_relu = False
            if node.key in relu_after:
                state = relu_state(state, ctx)
            env[node.output] = state
            if record is not None:
                record[node.key] = relu_state(state) if node.key in pool_first else state
        return env[self.output_key]

    def run_values(self, x, ctx, mode, record=None):
        """Clean (`mode="clean"`) or sampled (`"sample"`, ``ctx.kernels`` set) values."""
        env = {self.input_key: ops.convert_to_tensor(x)}
        for node in self.nodes:
            values = [env[k] for k in node.inputs]
            evaluate = node.rule.sample if mode == "sample" else node.rule.clean
            env[node.output] = evaluate(values, node, ctx)
            if record is not None:
                record[node.key] = env[node.output]
        return env[self.output_key]

    def run_adjoint(self, output_mean, ctx):
        """Reverse pass after `run_moments` with ``ctx.saved``: the output covariance that the
        weight noise of every mapped layer adds, ``(B, O, O)`` with O the output size."""
        out_shape = tuple(output_mean.shape[1:])
        num = int(np.prod(out_shape))
        seed = ops.reshape(ops.eye(num, dtype=output_mean.dtype), (num, 1) + out_shape)
        seed = seed * ops.expand_dims(ops.ones_like(output_mean), 0)  # (O, B, ...)
        ctx.probe = False
        cov = self._reverse(ops.reshape(seed, (-1,) + out_shape), num, ctx)
        if cov is None:
            flat = ops.reshape(ops.zeros_like(output_mean), (-1, num, 1))
            return flat * ops.zeros((1, 1, num), dtype=output_mean.dtype)
        return cov

    def run_probe(self, output_mean, ctx, probes, seed):
        """Reverse pass after `run_moments` with ``ctx.saved``, seeded with `probes` Rademacher
        output probes per example: ``(B, probes)`` weighted squared gradient norms, each an
        unbiased estimate of the example's total output variance (`"probe"` mode)."""
        out_shape = tuple(output_mean.shape[1:])
        shape = (probes,) + tuple(ops.shape(output_mean))
        signs = keras.random.randint(shape, 0, 2, seed=seed, dtype="int32")
        signs = ops.cast(2 * signs - 1, output_mean.dtype)
        ctx.probe = True
        energy = self._reverse(ops.reshape(signs, (-1,) + out_shape), probes, ctx)
        if energy is None:  # no mapped layer: no noise
            first = ops.reshape(output_mean, (ops.shape(output_mean)[0], -1))[:, :1]
            return ops.zeros_like(first) * ops.zeros((1, probes), dtype=output_mean.dtype)
        return energy

    def _reverse(self, seed, num, ctx):
        """Carries the ``(num * B, ...)`` output cotangents `seed` back through the graph; the
        rules of mapped layers and ReLUs add into ``ctx.output_cov`` (returned)."""
        ctx.num_outputs = num
        ctx.output_cov, ctx.contributions = None, {}
        cotangents = {self.output_key: seed}
        noisy = self._noisy_keys()
        relu_after = set(ctx.pool_first.values())
        for node in reversed(self.nodes):
            g = cotangents.pop(node.output, None)
            if g is None:
                continue
            ctx.node_key = node.key
            ctx.need = [key in noisy for key in node.inputs]
            if not (node.rule.mapped or any(ctx.need)):
                continue
            if node.key in relu_after:  # the ReLU moved after this pool: its slope first
                g = relu_adjoint(g, ctx.saved[node.key], ctx)
            ctx.skip_relu = node.key in ctx.pool_first
            cots = node.rule.adjoint(g, ctx.saved[node.key], ctx)
            ctx.skip_relu = False
            for key, cot in zip(node.inputs, cots):
                if cot is None or key not in noisy:
                    continue
                cotangents[key] = cot if key not in cotangents else cotangents[key] + cot
        return ctx.output_cov
