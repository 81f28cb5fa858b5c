"""Graph rewrites applied after tracing: each takes a `Graph` and returns a new one.

A pass builds new nodes and rules (`dataclasses.replace`, `MirrorRule.replace`); the graph it
is given is left as it was. `mirror_graph` traces a model and applies them in order:

1. `keep_digital_faults` (the `"digital"` mapping): faulty layers keep their own fault model;
2. `skip_output_activation`: MemSE measures the logits, so an output softmax/sigmoid goes;
3. `fold_batchnorm` (when the crossbar says so): a BatchNorm after a linear Dense/conv is
   folded into its kernel;
4. `relu_after_max_pool` (the `"max_mean"` pooling rule): a ReLU feeding only a max pool runs
   after it;

then `check_output_only` refuses a softmax/sigmoid left inside the network.
"""

import dataclasses

from tf_lanmax.memse.mapped_layers import LinearRule
from tf_lanmax.memse.mirror_layers import (
    BatchNormRule,
    GlobalMaxPoolRule,
    IdentityRule,
    MaxPoolRule,
    ReLUAfterRule,
)
from tf_lanmax.memse.tracing import trace


def keep_digital_faults(graph):
    """The `"digital"` mapping: every Dense / convolution rule learns that a faulty layer of
    `tf_lanmax.layers` keeps its digital faults (no Gmax) instead of going on the crossbar."""
    new = {
        node.key: dataclasses.replace(node, rule=node.rule.replace(digital=True))
        for node in graph.nodes
        if isinstance(node.rule, LinearRule)
    }
    return graph.with_nodes(new)


def skip_output_activation(graph):
    """MemSE measures the logits: drops a softmax/sigmoid that produces the output (through
    identity nodes such as an inference Dropout), a layer's own activation or a layer of its
    own; `Graph.skipped_output_activation` names it."""
    node = graph.producer(graph.output_key)
    while node is not None and isinstance(node.rule, IdentityRule) and node.inputs:
        node = graph.producer(node.inputs[0])
    if node is None or not node.rule.output_only:
        return graph
    if isinstance(node.rule, LinearRule):
        skipped = f"{node.key}.activation={node.rule.activation}"
    else:
        skipped = node.key
    linear = dataclasses.replace(node, rule=node.rule.without_activation())
    return graph.with_nodes({node.key: linear}, skipped_output_activation=skipped)


def fold_batchnorm(graph):
    """Folds an inference BatchNormalization (over the last axis) into the crossbar kernel of
    the linear Dense / convolution that is its only input, when that layer feeds nothing else
    and is not the output: the BatchNorm becomes an identity node."""
    consumers = graph.consumers()
    new = {}
    for node in graph.nodes:
        rule = node.rule
        if not (isinstance(rule, LinearRule) and not rule.faulty):
            continue
        users = consumers.get(node.output, [])
        if rule.activation != "linear" or len(users) != 1 or node.output == graph.output_key:
            continue
        bn = users[0]
        if not isinstance(bn.rule, BatchNormRule) or not isinstance(bn.op.axis, int):
            continue
        rank = len(graph.shapes[node.output])
        if bn.op.axis % rank != rank - 1:
            continue
        new[node.key] = dataclasses.replace(node, rule=rule.replace(bn=bn.op))
        new[bn.key] = dataclasses.replace(bn, rule=IdentityRule(bn.op))
    return graph.with_nodes(new)


def relu_after_max_pool(graph):
    """Moves every ReLU whose only consumer is a (global) max pool after the pool.

    ``maxpool(relu(x)) = relu(maxpool(x))``. With the `"max_mean"` rule, the Gaussian ReLU rule
    (an erfc and an exp per entry, the costliest step of a diagonal pass) then runs on the
    pooled tensor: 4x fewer entries under a 2x2 pool; the winner of a window is the entry with
    the largest pre-activation mean. The ReLU's node keeps its linear part
    (`MirrorRule.without_activation`) and names the pool in `Node.relu_moved_to`; the pool's
    node gets a `ReLUAfterRule`. Clean and sampled values are unchanged (max and ReLU commute
    exactly).
    """
    consumers = graph.consumers()
    new = {}
    for node in graph.nodes:
        users = consumers.get(node.output, [])
        if node.rule.activation != "relu" or len(users) != 1 or node.output == graph.output_key:
            continue
        pool = users[0]
        if not isinstance(pool.rule, (MaxPoolRule, GlobalMaxPoolRule)):
            continue
        new[node.key] = dataclasses.replace(
            node, rule=node.rule.without_activation(), relu_moved_to=pool.key
        )
        new[pool.key] = dataclasses.replace(pool, rule=ReLUAfterRule(pool.rule))
    return graph.with_nodes(new)


def check_output_only(graph):
    """Raises a ValueError for a softmax/sigmoid left inside the network; returns `graph`."""
    for node in graph.nodes:
        if node.rule.output_only:
            raise ValueError(
                f"Layer '{node.op.name}' applies softmax/sigmoid inside the network. MemSE "
                "measures the MSE at the logits and allows these activations on the model "
                "output only. Allowed inside: relu, linear."
            )
    return graph


def mirror_graph(model, crossbar, *, digital=False, maxpool="max_mean"):
    """Traces `model` and applies the passes (module doc) for `crossbar`.

    Args:
        model: a built Sequential or Functional `keras.Model`, one input and one output.
        crossbar: the `Crossbar` / `DeviceMapping` (its `fold_batchnorm` is read).
        digital: the `"digital"` mapping (`keep_digital_faults`). Defaults to `False`.
        maxpool: the max-pooling rule; `"max_mean"` moves ReLUs after max pools.
            Defaults to `"max_mean"`.

    Returns:
        The rewritten `Graph`.
    """
    graph = trace(model)
    if digital:
        graph = keep_digital_faults(graph)
    graph = skip_output_activation(graph)
    if crossbar.fold_batchnorm:
        graph = fold_batchnorm(graph)
    if maxpool == "max_mean":
        graph = relu_after_max_pool(graph)
    return check_output_only(graph)
