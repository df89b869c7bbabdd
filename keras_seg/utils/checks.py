"""Argument checks shared by several modules, with errors that name the value."""

import numbers


def image_size(value, name="image_size", minimum=1):
    """``None``, an int or ``(height, width)`` -> ``None`` or a tuple of two ints ``>= minimum``."""
    if value is None:
        return None
    given = value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum for v in value)
    ):
        value = given
        kind = "positive ints" if minimum == 1 else f"ints >= {minimum}"
        raise ValueError(f"{name}={value!r} must be an int or (height, width) of {kind}, e.g. {name}=(512, 512).")
    return (int(value[0]), int(value[1]))
