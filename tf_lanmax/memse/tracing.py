"""Walking a Keras model's graph into mirror nodes (`trace`).

Sequential chains are read directly; Functional graphs are walked by
`keras.models.clone_model` with a recording `call_function` (public API only); nested models are
inlined. Each node gets the rule of its layer class (`registry.rule_for`). The rewrites that
follow (skipping the output activation, folding BatchNorm...) are in `passes.py`.
"""

import keras

from tf_lanmax.memse.graph import Graph, Node, _Handle, _Slot
from tf_lanmax.memse.mirror_layers import IdentityRule
from tf_lanmax.memse.registry import rule_for


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
        key = self._node_key(op)
        self.nodes.append(Node(op, args, kwargs, tuple(in_keys), output_key, key, rule_for(op)))

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
    op = _AliasOp(name)
    return Node(op, (_Slot(input_key),), {}, (input_key,), output_key, name, IdentityRule(op))


def trace(model):
    """The `Graph` of `model`'s calls, each node with its layer's rule (no rewrite yet).

    Raises:
        ValueError: for a model that is not a built Sequential or Functional model with one
            input and one output.
        UnsupportedLayerError: for a layer without a mirror rule.
    """
    tracer = _Tracer()
    (input_key,), output_key = tracer.trace(model)
    return Graph(tuple(tracer.nodes), input_key, output_key, dict(tracer.shapes))
