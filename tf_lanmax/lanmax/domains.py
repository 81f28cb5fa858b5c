"""Voltage domains: which layers share one supply, so one fault rate p.

Pure functions on layer names: the structure of a `domains` argument is checked when the
callback is built; the names only when the model is known.
"""

import numpy as np


def check_domains(domains):
    """Checks the structure of `domains`: `None` or a non-empty list of non-empty lists of str.

    Args:
        domains: the argument to check.

    Returns:
        `None`, or a tuple of tuples of layer names.

    Raises:
        ValueError: naming `domains`, what is allowed and the value received.

    Example:
    >>> check_domains([["conv1", "conv2"], ["dense1"]])  # (("conv1", "conv2"), ("dense1",))
    """
    if domains is None:
        return None
    allowed = "a non-empty list of non-empty lists of layer names (str), or None"
    if isinstance(domains, (str, bytes)) or not isinstance(domains, (list, tuple)) or not domains:
        raise ValueError(f"`domains` must be {allowed}. Received: domains={domains!r}")
    checked = []
    for group in domains:
        if (
            isinstance(group, (str, bytes))
            or not isinstance(group, (list, tuple))
            or not group
            or not all(isinstance(name, str) and name for name in group)
        ):
            raise ValueError(
                f"`domains` must be {allowed}; the group {group!r} is not. "
                f"Received: domains={domains!r}"
            )
        checked.append(tuple(group))
    return tuple(checked)


def resolve_domains(domains, layer_names):
    """Maps each layer to its domain.

    Args:
        domains: the output of `check_domains` (`None`: one domain per layer, in layer order).
        layer_names: names of the fault-prone layers, in model order.

    Returns:
        A list with the domain index of each layer of `layer_names`.

    Raises:
        ValueError: naming `domains` and the layer, when a domain names a layer that is not in
            `layer_names`, a layer is in two domains, or a layer is in none.

    Example:
    >>> resolve_domains((("a", "c"), ("b",)), ["a", "b", "c"])  # [0, 1, 0]
    """
    names = list(layer_names)
    if domains is None:
        return list(range(len(names)))
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"`domains` needs unique layer names, but the model has several fault-prone layers "
            f"named {duplicates}. Rename them (the `name` argument of the layer)."
        )
    where = {}
    for index, group in enumerate(domains):
        for name in group:
            if name not in names:
                raise ValueError(
                    f"`domains` names layer '{name}', which is not a fault-prone layer of the "
                    f"model. Allowed: {names}. Received: domains={_as_lists(domains)!r}"
                )
            if name in where:
                raise ValueError(
                    f"`domains` puts layer '{name}' in two domains ({where[name]} and {index}); "
                    "a layer has one supply. Received: "
                    f"domains={_as_lists(domains)!r}"
                )
            where[name] = index
    missing = [name for name in names if name not in where]
    if missing:
        raise ValueError(
            f"`domains` leaves layer '{missing[0]}' in no domain (all missing: {missing}); every "
            "fault-prone layer needs one. Add it to a group, or give it fault_model='none'. "
            f"Received: domains={_as_lists(domains)!r}"
        )
    return [where[name] for name in names]


def domain_log_rates(layer_log_rates, layer_domains):
    """One ln p per domain from its layers' ln p: the smallest (the most demanding layer).

    Args:
        layer_log_rates: (L,) ln p of each layer.
        layer_domains: (L,) domain index of each layer (from `resolve_domains`).

    Returns:
        `(log_rates, uneven)`: a (D,) float64 array, and the domain indices whose layers did
        not all hold the same p (within 1e-6 in ln p).

    Example:
    >>> domain_log_rates(np.log([0.02, 0.05, 0.01]), [0, 1, 0])  # (ln [0.01, 0.05], [0])
    """
    x = np.asarray(layer_log_rates, dtype=np.float64)
    domains = np.asarray(layer_domains, dtype=int)
    out, uneven = np.empty(int(domains.max()) + 1), []
    for domain in range(out.size):
        members = x[domains == domain]
        out[domain] = members.min()
        if members.max() - members.min() > 1e-6:
            uneven.append(domain)
    return out, uneven


def _as_lists(domains):
    return [list(group) for group in domains]
