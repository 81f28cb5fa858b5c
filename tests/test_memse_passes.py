"""MemSE graph passes, each alone on a traced graph: what it rewrites, that it leaves the graph
it was given untouched, and that the rewritten graph still computes the model's clean output
(and, without noise, its moments' means)."""

import keras
import numpy as np
from helpers import randomise_batchnorm
from keras import layers, ops

import tf_lanmax as tl
from tf_lanmax import memse as ms
from tf_lanmax.memse import passes
from tf_lanmax.memse.tracing import trace


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def _rules(graph):
    return {node.key: node.rule for node in graph.nodes}


def _snapshot(graph):
    """Every node's rule object and its attributes: what a pass must not change."""
    return [(node.key, node.rule, dict(vars(node.rule))) for node in graph.nodes]


def _assert_untouched(graph, snapshot):
    for node, (key, rule, attributes) in zip(graph.nodes, snapshot, strict=True):
        assert node.key == key and node.rule is rule and vars(rule) == attributes


def _clean(graph, x):
    return np_(graph.run_values(x, ms.PassConfig(ms.Crossbar(), {}), "clean"))


def _noise_free_mean(graph, x):
    """The mean of the moments pass on a noise-free, unquantised crossbar."""
    config = ms.PassConfig(
        ms.Crossbar(sigma=0.0, levels=None), dict.fromkeys(graph.crossbar_layers, 1.0)
    )
    return np_(graph.run_moments(x, config).output.mean)


def _images(seed, shape=(3, 8, 8, 2)):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_skip_output_activation_keeps_the_logits():
    keras.utils.set_random_seed(0)
    own = keras.Sequential(
        [
            keras.Input((6,)),
            layers.Dense(4, name="hidden"),
            layers.Dense(3, activation="softmax", name="out"),
        ]
    )
    inp = keras.Input((6,))
    logits = layers.Dense(3, name="logits")(inp)
    separate = keras.Model(inp, layers.Softmax(name="probabilities")(layers.Dropout(0.5)(logits)))
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    for model, skipped in ((own, "out.activation=softmax"), (separate, "probabilities")):
        graph = trace(model)
        before = _snapshot(graph)
        rewritten = passes.skip_output_activation(graph)
        _assert_untouched(graph, before)
        assert graph.skipped_output_activation is None
        assert rewritten.skipped_output_activation == skipped
        assert not any(node.rule.output_only for node in rewritten.nodes)
        # Clean values: the logits, whose softmax is the model's output.
        np.testing.assert_allclose(
            np_(ops.softmax(_clean(rewritten, x))), np_(model(x)), rtol=1e-5, atol=1e-7
        )
    assert type(_rules(rewritten)["probabilities"]).__name__ == "IdentityRule"
    # A model without an output softmax is returned as it is.
    hidden = keras.Sequential([keras.Input((6,)), layers.Dense(3)])
    plain = trace(hidden)
    assert passes.skip_output_activation(plain) is plain


def test_fold_batchnorm_moves_the_affine_map_into_the_kernel():
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 2))
    h = layers.Conv2D(3, 3, name="conv")(inp)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.Conv2D(2, 3, activation="relu", name="conv_relu")(h)
    h = layers.BatchNormalization(name="bn_after_relu")(h)  # not folded: a ReLU is between
    out = layers.Dense(2, name="head")(layers.Flatten()(h))
    model = keras.Model(inp, out)
    randomise_batchnorm(model, seed=1, mean_sd=0.3, variance=(0.5, 2.0))
    graph = trace(model)
    before = _snapshot(graph)
    folded = passes.fold_batchnorm(graph)
    _assert_untouched(graph, before)
    rules = _rules(folded)
    assert type(rules["bn"]).__name__ == "IdentityRule"
    assert rules["conv"].bn is model.get_layer("bn") and _rules(graph)["conv"].bn is None
    assert type(rules["bn_after_relu"]).__name__ == "BatchNormRule"
    assert rules["conv_relu"].bn is None
    x = _images(1)
    reference = np_(model(x))
    np.testing.assert_allclose(_clean(folded, x), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_noise_free_mean(folded, x), reference, rtol=1e-5, atol=1e-5)
    # The unfolded graph gives the same values: the fold changes where the map runs only.
    np.testing.assert_allclose(_noise_free_mean(graph, x), reference, rtol=1e-5, atol=1e-5)


def test_relu_after_max_pool_moves_only_a_relu_that_feeds_a_max_pool_alone():
    keras.utils.set_random_seed(2)
    inp = keras.Input((8, 8, 2))
    h = layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inp)
    h = layers.MaxPooling2D(name="pool")(h)
    r = layers.ReLU(name="relu")(layers.Conv2D(3, 3, padding="same", name="conv_2")(h))
    shared = layers.ReLU(name="shared_relu")(layers.Conv2D(3, 1, name="conv_3")(h))
    a = layers.GlobalMaxPooling2D(name="global_pool")(r)
    b = layers.GlobalMaxPooling2D(name="other_pool")(shared)
    c = layers.GlobalAveragePooling2D(name="average")(shared)  # shared_relu has two readers
    out = layers.Dense(2, name="head")(layers.Concatenate()([a, b, c]))
    model = keras.Model(inp, out)
    graph = trace(model)
    before = _snapshot(graph)
    moved = passes.relu_after_max_pool(graph)
    _assert_untouched(graph, before)
    targets = {node.key: node.relu_moved_to for node in moved.nodes if node.relu_moved_to}
    assert targets == {"conv": "pool", "relu": "global_pool"}
    rules = _rules(moved)
    assert rules["conv"].activation == "linear" and _rules(graph)["conv"].activation == "relu"
    assert type(rules["relu"]).__name__ == "IdentityRule"
    assert type(rules["pool"]).__name__ == "ReLUAfterRule"
    assert type(rules["other_pool"]).__name__ == "GlobalMaxPoolRule"
    x = _images(2)
    reference = np_(model(x))
    # max and ReLU commute exactly: the rewritten graph's clean values are the model's.
    np.testing.assert_allclose(_clean(moved, x), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_noise_free_mean(moved, x), reference, rtol=1e-5, atol=1e-6)
    # Records still show the moved ReLU's own output.
    record = {}
    moved.run_values(x, ms.PassConfig(ms.Crossbar(), {}), "clean", record=record)
    conv_out = keras.Model(inp, model.get_layer("conv").output)(x)
    np.testing.assert_allclose(np_(record["conv"]), np_(conv_out), rtol=1e-6, atol=1e-6)


def test_keep_digital_faults_marks_faulty_layers_only():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(4, fault_rate=1e-2, seed=0, name="faulty"),
            layers.Dense(2, name="plain"),
        ]
    )
    graph = trace(model)
    before = _snapshot(graph)
    digital = passes.keep_digital_faults(graph)
    _assert_untouched(graph, before)
    rules = _rules(digital)
    assert rules["faulty"].faulty and not _rules(graph)["faulty"].faulty
    assert rules["plain"].digital and not rules["plain"].faulty  # a plain layer stays mapped
    assert digital.crossbar_layers == ["plain"] and graph.crossbar_layers == ["faulty", "plain"]
    x = np.random.default_rng(3).normal(size=(4, 6)).astype("float32")
    np.testing.assert_array_equal(_clean(digital, x), _clean(graph, x))


def test_mirror_graph_applies_the_passes_the_options_ask_for():
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            layers.Conv2D(3, 3, name="conv"),
            layers.BatchNormalization(name="bn"),
            layers.ReLU(name="relu"),
            layers.MaxPooling2D(name="pool"),
            layers.Flatten(),
            layers.Dense(2, activation="softmax", name="head"),
        ]
    )
    full = passes.mirror_graph(model, ms.Crossbar())
    assert type(_rules(full)["bn"]).__name__ == "IdentityRule"
    assert [n.relu_moved_to for n in full.nodes if n.relu_moved_to] == ["pool"]
    assert full.skipped_output_activation == "head.activation=softmax"
    none = passes.mirror_graph(model, ms.Crossbar(fold_batchnorm=False), maxpool="clark")
    assert type(_rules(none)["bn"]).__name__ == "BatchNormRule"
    assert not any(n.relu_moved_to for n in none.nodes)
    x = _images(4)
    for graph in (full, none):
        np.testing.assert_allclose(
            np_(ops.softmax(_clean(graph, x))), np_(model(x)), rtol=1e-5, atol=1e-6
        )
