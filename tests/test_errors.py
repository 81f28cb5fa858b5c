"""`tl.errors`: a caller tells an unknown name, a wrong type and a bad value apart by class.

Every registry lookup of an unknown name raises `UnknownNameError` (a `ValueError`) listing
the names it holds; a value of the wrong type raises `ArgumentTypeError` (a `TypeError`, also a
`ValueError` so that older ``except ValueError`` code keeps working); a bad value of the right
type stays a plain `ValueError`.
"""

import pickle

import pytest

import tf_lanmax as tl
from tf_lanmax import _validation
from tf_lanmax.errors import ArgumentTypeError, UnknownNameError

LOOKUPS = [
    ("device", lambda name: tl.analog.get(name), tl.analog.names()),
    ("technology", lambda name: tl.memory.get(name), tl.memory.names()),
    ("fault_model", lambda name: tl.faults.get(name), sorted(tl.faults.ALIASES)),
    ("weight_format", lambda name: tl.formats.get(name), sorted(tl.formats.ALIASES)),
    ("energy_model", lambda name: tl.energy.get(name), tl.energy.names()),
    ("name", lambda name: tl.data.info(name), list(tl.data.DATASETS)),
    ("rule", lambda name: tl.SharpnessAwareModel(_tiny_model(), rule=name), list(tl.sam.RULES)),
]


def _tiny_model():
    import keras

    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


@pytest.mark.parametrize(("argument", "lookup", "names"), LOOKUPS, ids=[r[0] for r in LOOKUPS])
def test_an_unknown_name_raises_unknown_name_error_listing_the_names(argument, lookup, names):
    with pytest.raises(UnknownNameError) as info:
        lookup("no_such_name")
    error = info.value
    assert isinstance(error, ValueError)  # older `except ValueError` still catches it
    assert (error.argument, error.name) == (argument, "no_such_name")
    assert list(error.allowed) == list(names) and len(names) >= 2
    assert f"`{argument}`" in str(error) and "'no_such_name'" in str(error)
    # A known name is found: the check is not "always raise".
    if argument != "rule":
        lookup(names[0])


@pytest.mark.parametrize(
    "lookup",
    [lambda: tl.analog.get(3), lambda: tl.memory.get(3.5), lambda: tl.faults.get([1])],
    ids=["device", "technology", "fault_model"],
)
def test_a_registry_given_a_wrong_type_raises_type_error(lookup):
    with pytest.raises(TypeError) as info:
        lookup()
    assert not isinstance(info.value, UnknownNameError)


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (lambda v: _validation.check_probability("p", v), "0.1"),
        (lambda v: _validation.check_positive("rho", v), None),
        (lambda v: _validation.check_int("draws", v, low=2), 2.0),
        (lambda v: _validation.check_int("draws", v, low=2), True),
        (lambda v: _validation.check_bool("flag", v), 1),
        (lambda v: _validation.check_name("rule", v, ["sam"]), 1),
    ],
)
def test_a_wrong_type_is_a_type_error_and_still_a_value_error(check, value):
    with pytest.raises(ArgumentTypeError) as info:
        check(value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (lambda v: _validation.check_probability("p", v), 0.7),
        (lambda v: _validation.check_positive("rho", v), float("nan")),
        (lambda v: _validation.check_int("draws", v, low=2), 1),
    ],
)
def test_a_bad_value_of_the_right_type_stays_a_plain_value_error(check, value):
    with pytest.raises(ValueError) as info:
        check(value)
    assert not isinstance(info.value, TypeError)


def test_errors_survive_pickling_with_their_fields():
    # Worker processes (tf.distribute, keras-tuner) send exceptions back pickled.
    error = UnknownNameError("device", "flash", ["pcm", "hermes"], "a tl.analog.Device")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.argument, copy.name, copy.allowed, copy.also) == (
        "device",
        "flash",
        ["pcm", "hermes"],
        "a tl.analog.Device",
    )
    assert str(copy) == str(error)
