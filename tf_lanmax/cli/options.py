"""Command settings as frozen dataclasses, and the absl flags derived from them.

Each `lanmax` command declares one frozen dataclass of settings. A field made with `option`
carries the option's only default, its help string and its check; `define_flags` derives the
absl flags from the fields (the field's type picks the flag type), `from_flags` builds the
settings from parsed flags. The checks run when the settings are built, in Python as on the
command line; a check is a `tf_lanmax._validation` function or the construction of the
library object the value names (a `tl.memory` technology, a `tl.analog` device ...), whose
`ValueError` (or `TypeError`) becomes an `InvalidOption` naming the field.

This module imports neither Keras nor a backend: `lanmax <command> --help` reads it.

Example:
>>> import dataclasses
>>> from absl import flags
>>> @dataclasses.dataclass(frozen=True, kw_only=True)
... class Settings:
...     draws: int = option(10, "Monte-Carlo draws (>= 2).", check=at_least(2))
...     def __post_init__(self):
...         check_fields(self)
>>> flag_values = flags.FlagValues()
>>> define_flags(Settings, flag_values)
>>> _ = flag_values(["lanmax", "--draws=3"])
>>> from_flags(Settings, flag_values)
Settings(draws=3)
>>> try:
...     Settings(draws=1)
... except ValueError as error:
...     print(error)
--draws=1: draws must be an integer in [2, inf]. Received: draws=1
"""

import dataclasses
import types
import typing

from absl import flags

from tf_lanmax._validation import check_int, check_positive, check_probability


class UsageError(ValueError):
    """A bad command line: `lanmax` prints it on one line and exits with status 2."""


class InvalidOption(UsageError):
    """A setting's value that its check refused; the message names the option as a flag.

    Args:
        name: the field (flag) name.
        value: the value refused.
        reason: why, e.g. the library's `ValueError` message.
    """

    def __init__(self, name, value, reason):
        self.name = name
        self.value = value
        self.reason = " ".join(str(reason).replace("`", "").split())
        super().__init__(f"--{name}={_shown(value)}: {self.reason}")

    def __reduce__(self):
        return type(self), (self.name, self.value, self.reason)


def _shown(value):
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def option(default, help, *, check=None, choices=None):  # noqa: A002 - absl's word
    """A settings field: its default, help string, check and (for a string) its choices.

    Args:
        default: the option's default (immutable: a tuple for a list option).
        help: one line for `--help`.
        check: optional `(name, value) -> None` raising `ValueError` or `TypeError` for a bad
            value; it does not run on the default `None` of an optional field. Defaults to
            `None`.
        choices: optional allowed strings (an absl enum flag). Defaults to `None`.

    Returns:
        A `dataclasses.field`.
    """
    metadata = {"help": help, "check": check, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def at_least(low):
    """A check: an integer >= `low`."""
    return lambda name, value: check_int(name, value, low=low)


def positive(allow_zero=False):
    """A check: a finite number > 0 (>= 0 with `allow_zero`)."""
    return lambda name, value: check_positive(name, value, allow_zero=allow_zero)


def probability(high=0.5):
    """A check: a number in (0, high]."""
    return lambda name, value: check_probability(name, value, high=high)


def each(check):
    """A check of every element of a tuple option, e.g. `each(positive(allow_zero=True))`."""

    def check_each(name, values):
        for value in values:
            check(name, value)

    return check_each


def check_fields(settings):
    """Runs every field's check; call it from the settings' `__post_init__`.

    Raises:
        InvalidOption: naming the first field whose check fails.
    """
    for field in dataclasses.fields(settings):
        check = field.metadata.get("check")
        value = getattr(settings, field.name)
        choices = field.metadata.get("choices")
        try:
            if choices is not None and value not in choices:
                raise ValueError(f"must be one of {', '.join(choices)}")
            if check is not None and value is not None:
                check(field.name, value)
        except (ValueError, TypeError) as error:
            if isinstance(error, InvalidOption):
                raise
            raise InvalidOption(field.name, value, error) from None


def _kind(hint):
    """(base type, optional) of a field's annotation, e.g. `float | None` -> (float, True)."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _kind(inner[0])[0], True
    if typing.get_origin(hint) is tuple:
        return tuple, False
    return hint, False


def define_flags(settings_type, flag_values):
    """Defines one absl flag per field of `settings_type` in `flag_values`.

    `bool` -> a boolean flag (`--name` / `--noname`); `int`, `float` -> numeric flags; `str`
    -> an enum flag with `choices`, else a string flag; `tuple[...]` -> a comma-separated list.
    The flag's default and help are the field's.
    """
    hints = typing.get_type_hints(settings_type)
    for field in dataclasses.fields(settings_type):
        kind, _ = _kind(hints[field.name])
        default, help_text = field.default, field.metadata["help"]
        args = (field.name, default, help_text)
        if kind is bool:
            flags.DEFINE_bool(*args, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(*args, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(*args, flag_values=flag_values)
        elif kind is tuple:
            flags.DEFINE_list(field.name, [_shown(v) for v in default], help_text, flag_values)
        elif field.metadata.get("choices"):
            choices = field.metadata["choices"]
            flags.DEFINE_enum(field.name, default, choices, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(*args, flag_values=flag_values)


def from_flags(settings_type, flag_values):
    """The settings of parsed `flag_values` (list flags as tuples of floats).

    Raises:
        InvalidOption: a list element that is not a number, or any field's check.
    """
    hints = typing.get_type_hints(settings_type)
    values = {}
    for field in dataclasses.fields(settings_type):
        value = flag_values[field.name].value
        if _kind(hints[field.name])[0] is tuple:
            bad = [v for v in value if not _is_number(v)]
            if bad:
                raise InvalidOption(
                    field.name,
                    ",".join(value),
                    f"must list numbers separated by commas; {bad[0]!r} is not a number",
                )
            value = tuple(float(v) for v in value)
        values[field.name] = value
    return settings_type(**values)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def help_lines(settings_type):
    """`--name: help (default: value)`, one line per field."""
    return [
        f"  --{field.name}: {field.metadata['help']} (default: {_shown(field.default)!r})"
        for field in dataclasses.fields(settings_type)
    ]
