"""`tl.summary(model)`: a larq-style memory-energy table of a model's faulty layers."""

from tf_lanmax.energy import memory_energy

_COLUMNS = (
    ("Layer", "name", "{}"),
    ("Format", "format", "{}"),
    ("Fault model", "fault_model", "{}"),
    ("Stored bits", "stored_bits", "{:,}"),
    ("p", "fault_rate", "{:.3g}"),
    ("eta(p)", "eta", "{:.3f}"),
    ("Energy share", "share", "{:.1%}"),
    ("Faulty bits/inf.", "expected_faulty_bits", "{:,.1f}"),
)


def render_table(profile):
    """Renders a `memory_energy` profile as a fixed-width text table."""
    header = [title for title, _, _ in _COLUMNS]
    rows = [[fmt.format(row[key]) for _, key, fmt in _COLUMNS] for row in profile["layers"]]
    total = [
        "Total",
        "",
        "",
        f"{profile['total_bits']:,}",
        "",
        f"{profile['mean_energy']:.3f}",
        "100.0%",
        f"{profile['expected_faulty_bits']:,.1f}",
    ]
    widths = [max(len(r[i]) for r in [header, total, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    body = [rule, line(header), rule, *[line(r) for r in rows], rule, line(total), rule]
    a = profile["energy_model"]["a"]
    body += [
        f"Memory energy: {profile['total_energy']:,.0f} bit-units "
        f"(reliable: {profile['reliable_energy']:,.0f}); mean eta = {profile['mean_energy']:.4f}",
        f"Saving vs reliable memory (a = {a:g}): {profile['ratio_vs_reliable']:.2f}x",
    ]
    return "\n".join(body)


def summary(model, energy_model=None, print_fn=print):
    """Prints the memory-energy table of `model` and returns the same data as a dict.

    Per faulty layer: stored format, fault model, stored bits, p, eta(p), share of the memory
    energy and the expected number of faulty bits per inference (B_l p_l); then the totals and
    the saving against a reliable memory (ALGORITHMS.md §1.2).

    Args:
        model: a built Keras model with faulty layers.
        energy_model: a `tl.EnergyModel`. Defaults to `EnergyModel()` (a = 12.8).
        print_fn: where the table goes; `None` prints nothing. Defaults to `print`.

    Returns:
        The dict of `tl.memory_energy`.

    Example:
    >>> info = tl.summary(model)
    >>> info["ratio_vs_reliable"]
    """
    profile = memory_energy(model, energy_model)
    if print_fn is not None:
        print_fn(f'Model: "{getattr(model, "name", "model")}"\n' + render_table(profile))
    return profile
