"""`tl.summary(model)`: a larq-style memory-energy table of a model's faulty layers."""

from tf_lanmax import memory
from tf_lanmax.energy import memory_energy

# (title, row key, cell format, total cell from the profile); optional columns are added only
# when some row needs them.
_BEFORE = (
    ("Layer", "name", "{}", lambda profile: "Total"),
    ("Format", "format", "{}", None),
    ("Fault model", "fault_model", "{}", None),
    ("Stored bits", "stored_bits", "{:,}", lambda profile: f"{profile['total_bits']:,}"),
)
_PROTECTED = ("Protected bits", "protected_bits", "{:,}", "sum")
_CHECK = ("Check bits", "check_bits", "{:,}", "sum")
_RATE = (("p", "fault_rate", "{:.3g}", None),)
_VOLTAGE = ("Voltage", "voltage_text", "{}", None)
_AFTER = (
    ("eta(p)", "eta", "{:.3f}", lambda profile: f"{profile['mean_energy']:.3f}"),
    ("Energy share", "share", "{:.1%}", lambda profile: "100.0%"),
    (
        "Faulty bits/inf.",
        "expected_faulty_bits",
        "{:,.1f}",
        lambda profile: f"{profile['expected_faulty_bits']:,.1f}",
    ),
)


def _columns(profile):
    rows = profile["layers"]
    columns = list(_BEFORE)
    if any(row["protected_bits"] for row in rows):
        columns.append(_PROTECTED)
    if any(row["check_bits"] for row in rows):
        columns.append(_CHECK)
    columns.extend(_RATE)
    if any("voltage_text" in row for row in rows):
        columns.append(_VOLTAGE)
    return [*columns, *_AFTER]


def _total(column, profile):
    _, key, fmt, total = column
    if total is None:
        return ""
    if total == "sum":
        return fmt.format(sum(row[key] for row in profile["layers"]))
    return total(profile)


def _cell(row, key, fmt):
    if row["name"] == "float parameters" and key == "fault_rate":
        return "reliable"
    return fmt.format(row[key]) if key in row else ""


def _energy_model_text(profile):
    technology = profile.get("technology")
    if technology is not None:
        return f"technology {technology['name']}"
    config = profile["energy_model"]
    if "a" in config:
        return f"a = {config['a']:g}"
    if "points" in config:
        return f"tabulated, {len(config['points'])} points"
    return "custom energy model"


def _float_line(profile):
    bits = profile.get("float_parameter_bits")
    if bits is None:
        return []
    if profile.get("float_parameters") == "reliable":
        return [f"reliable float parameters: {bits:,} bits (in the total at eta = 1)"]
    return [f"reliable float parameters: {bits:,} bits (not in the energy total)"]


def _parameter_rows(row, columns):
    """One indented line per stored parameter of a `tl.inject_faults` layer."""
    keys = [key for _, key, _, _ in columns]
    lines = []
    for parameter in row.get("parameters", ()):
        cells = [""] * len(keys)
        cells[keys.index("name")] = "  " + parameter["name"]
        cells[keys.index("format")] = parameter["format"]
        cells[keys.index("stored_bits")] = f"{parameter['stored_bits']:,}"
        if "protected_bits" in keys:
            cells[keys.index("protected_bits")] = f"{parameter['protected_bits']:,}"
        lines.append(cells)
    return lines


def render_table(profile):
    """Renders a `memory_energy` profile (or `summary`'s) as a fixed-width text table."""
    columns = _columns(profile)
    header = [title for title, _, _, _ in columns]
    rows = []
    for row in profile["layers"]:
        rows.append([_cell(row, key, fmt) for _, key, fmt, _ in columns])
        rows.extend(_parameter_rows(row, columns))
    total = [_total(column, profile) for column in columns]
    widths = [max(len(r[i]) for r in [header, total, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    body = [rule, line(header), rule, *[line(r) for r in rows], rule, line(total), rule]
    body += [
        f"Memory energy: {profile['total_energy']:,.0f} bit-units "
        f"(reliable: {profile['reliable_energy']:,.0f}); mean eta = {profile['mean_energy']:.4f}",
        f"Saving vs reliable memory ({_energy_model_text(profile)}): "
        f"{profile['ratio_vs_reliable']:.2f}x",
        *_float_line(profile),
    ]
    technology = profile.get("technology")
    if technology is not None:
        body.append(f"Technology {technology['name']}: {technology['source']}")
    return "\n".join(body)


def _voltage_text(technology, p):
    """``~0.62 V`` inside the measured BER range; ``> 0.60 V`` / ``< 0.54 V`` beyond it."""
    low, high = technology.ber_range
    volts = technology.voltage(p)
    if p < low:
        return f"> {volts:.2f} V"
    if p > high:
        return f"< {volts:.2f} V"
    return f"~{volts:.2f} V"


def summary(model, energy_model=None, technology=None, float_parameters="excluded", print_fn=print):
    """Prints the memory-energy table of `model` and returns the same data as a dict.

    Per faulty layer: stored format (for a `tl.inject_faults` layer, one line per stored
    parameter with its format and bits follows the layer's line), fault model, stored bits (with
    protected and ECC check bits when some layer has them), p, the supply voltage when the
    technology gives voltages, eta(p), share of the memory energy and the expected number of
    faulty bits per inference; then the totals, the saving against a reliable memory (Henwood et
    al., arXiv:1912.10764) and the bits of float parameters (biases, BatchNorm) assumed
    reliable.

    A voltage reads ``~0.62 V`` inside the technology's measured BER range (interpolated in
    ln BER); a rate beyond it reads ``< 0.54 V`` (above the highest measured BER) or
    ``> 0.60 V`` (below the lowest), and its energy is held at the end of the range.

    Args:
        model: a built Keras model with faulty layers.
        energy_model: anything `tl.energy.get` resolves. Defaults to `None`: the
            technology's energy model, else `EnergyModel()` (a = 12.8). Not with `technology`.
        technology: a `tl.memory` name or `Technology`, for its energy model and voltages.
            Defaults to `None`.
        float_parameters: `"excluded"` (reported on their own line, left out of the totals) or
            `"reliable"` (in the totals at eta = 1). Defaults to `"excluded"`.
        print_fn: where the table goes; `None` prints nothing. Defaults to `print`.

    Returns:
        The dict of `tl.memory_energy`; with a technology, the dict also has ``technology``
        (its data) and, when it gives voltages, each layer's row ``voltage`` (volts, held
        inside the measured range) and ``voltage_text`` (as shown).

    Raises:
        ValueError: for both `energy_model` and `technology`, or a bad argument.

    Example:
    >>> info = tl.summary(model)
    >>> info["ratio_vs_reliable"]
    >>> tl.summary(model, technology="salami_fpga_bram", float_parameters="reliable")
    """
    tech = None
    if technology is not None:
        if energy_model is not None:
            raise ValueError(
                "Pass either `energy_model` or `technology` (whose energy model is used), not "
                f"both. Received: energy_model={energy_model!r}, technology={technology!r}"
            )
        tech = memory.get(technology)
        energy_model = tech.energy_model()
    profile = memory_energy(model, energy_model, float_parameters=float_parameters)
    if tech is not None:
        profile["technology"] = tech.to_dict()
        for row in profile["layers"]:
            if tech.has_voltages and row["name"] != "float parameters":
                row["voltage"] = tech.voltage(row["fault_rate"])
                row["voltage_text"] = _voltage_text(tech, row["fault_rate"])
    if print_fn is not None:
        print_fn(f'Model: "{getattr(model, "name", "model")}"\n' + render_table(profile))
    return profile
