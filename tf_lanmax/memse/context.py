"""What a mirror rule receives and returns, split by lifetime.

- `PassConfig` (frozen): what one evaluation of the graph is run with: the crossbar, Gmax per
  layer, the covariance mode and the max-pooling rule. The same for every node.
- `NodeContext` (frozen): what one node's rule needs besides its inputs during one pass: its
  key, the pass configuration, and the pass's per-node flags (save values for a reverse pass,
  measure power, rows per example of the cotangents, which inputs need a cotangent...).
- `Forward` / `Reverse`: what a rule returns: its output moments and the values its reverse
  rule will need; its inputs' cotangents and the output covariance its noise adds.

The graph alone accumulates (saved values per node, power per layer, the output covariance and
each layer's share of it); rules never write into a shared object.
"""

import dataclasses
from typing import NamedTuple


@dataclasses.dataclass(frozen=True)
class PassConfig:
    """The read-only configuration of one pass over the graph.

    Attributes:
        crossbar: the `Crossbar` (or `DeviceMapping`) the mapped layers are programmed on.
        gmax: {layer name: Gmax} (scalars or tensors) of the crossbar-mapped layers.
        cov_mode: `"probe"`, `"diagonal"`, `"full"` or `"jacobian"` (see `MemSE`).
        maxpool: `"max_mean"` or `"clark"`, the max-pooling rule.
    """

    crossbar: object
    gmax: dict
    cov_mode: str = "diagonal"
    maxpool: str = "max_mean"


@dataclasses.dataclass(frozen=True)
class NodeContext:
    """What a rule is told about the node it evaluates, in one pass (read-only).

    Attributes:
        config: the `PassConfig`.
        key: the node's key (the layer's name, suffixed ``_1``, ``_2``... for later calls).
        save: moments pass: also return (in `Forward.saved`) what the reverse rule needs,
            because a reverse pass follows.
        measure_power: moments pass: also return the crossbar power (`Forward.power`).
        call: values passes: calls the node's layer as the model does, on the input values.
        kernels: sampled pass: this node's sampled kernels (mapped layers only).
        num_outputs: reverse pass: rows per example of the cotangents (outputs O in
            `"jacobian"` mode, probes P in `"probe"` mode), outermost in ``(O * B, ...)``.
        probe: reverse pass: whether the rows are probes (noise reported as ``(B, P)``
            energies) rather than outputs (``(B, O, O)`` covariances).
        need: reverse pass: per input, whether its cotangent is needed (a rule may return
            None for the others).
    """

    config: PassConfig
    key: str
    save: bool = False
    measure_power: bool = False
    call: object = None
    kernels: object = None
    num_outputs: int = 0
    probe: bool = False
    need: tuple = ()


class Forward(NamedTuple):
    """What a rule's `moments` returns.

    Attributes:
        state: the output `Moments`.
        saved: {name: tensor} the rule's `adjoint` will get back (with the graph's own
            ``"inputs"``: the input `Moments`). Defaults to empty.
        power: ``(device, tia)`` per-example crossbar power of a mapped layer, or None.
    """

    state: object
    saved: dict = {}
    power: object = None

    @classmethod
    def of(cls, result):
        """A rule's result as a `Forward` (a bare `Moments` is one with nothing saved)."""
        return result if isinstance(result, Forward) else cls(result)


class Reverse(NamedTuple):
    """What a rule's `adjoint` returns.

    Attributes:
        cotangents: one per input, ``(O * B, ...)`` (None where not needed).
        variance: output variance the rule adds off the linear path (a ReLU's second-order
            residual): ``(B, O)`` on the diagonal of the output covariance, or ``(B, P)``
            probe energies. Defaults to None.
        noise: the output covariance that a mapped layer's weight noise adds, ``(B, O, O)``
            (`"jacobian"`) or ``(B, P)`` energies (`"probe"`); reported per layer as its
            noise contribution. Defaults to None.
    """

    cotangents: list
    variance: object = None
    noise: object = None

    @classmethod
    def of(cls, result):
        """A rule's result as a `Reverse` (a bare list holds the cotangents only)."""
        return result if isinstance(result, Reverse) else cls(list(result))
