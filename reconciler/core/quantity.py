"""Kubernetes resource quantities ("1Gi", "1024Mi", "500m", "1e3") compared by value.

`Quantity` is a `str` that keeps the text the operator wrote (so diffs and JSON show
"1024Mi", not a rewritten form) but compares and hashes by exact value, so
`Quantity("1Gi") == Quantity("1024Mi")`. Values are exact fractions, never floats.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

from reconciler.core.model import JSONPath, VirtsyncError, format_path

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
}
# Kubernetes' grammar: a signed decimal number, then a binary suffix, a decimal suffix or
# a decimal exponent ("1E" is exa, "1e3"/"1E3" is an exponent).
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<dec>[numkMGTPE]?))$"
)


def parse_quantity(text: str) -> Fraction | None:
    """The exact value of a quantity string, or None when it is not one."""
    # Keyed on the plain text: a Quantity compares by value, not by spelling.
    return _parse(str.__str__(text))


@lru_cache(maxsize=4096)  # a tree repeats the same few sizes (issue 13)
def _parse(text: str) -> Fraction | None:
    m = _QUANTITY.match(text.strip())
    if m is None:
        return None
    value = Fraction(m["num"])
    if m["bin"]:
        return value * _BINARY[m["bin"]]
    if m["exp"]:
        exponent = int(m["exp"][1:])
        if abs(exponent) > 64:  # hostile input: never build huge integers
            return None
        return value * Fraction(10) ** exponent
    return value * _DECIMAL[m["dec"] or ""]


def byte_size(value: object, path: JSONPath) -> int:
    """A size read from a VM ('1Gi', '512M', 1073741824) in whole bytes, rounded up. A
    value that is not a non-negative quantity is an error naming its field."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise VirtsyncError(f"{format_path(path)}: expected a quantity like 1Gi, got {value!r}")
    amount = parse_quantity(str(value))
    if amount is None or amount < 0:
        raise VirtsyncError(f"{format_path(path)}: not a quantity: {value!r}")
    return math.ceil(amount)


class Quantity(str):
    """A quantity string equal to every other spelling of the same value."""

    __slots__ = ("raw", "value")
    value: Fraction
    raw: str | int | float  # the value as written (a number stays a number)

    def __new__(cls, text: str, value: Fraction, raw: str | int | float | None = None,
                ) -> Quantity:
        obj = super().__new__(cls, text)
        obj.value = value
        obj.raw = text if raw is None else raw
        return obj

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self.value == other.value
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self.value < other.value
        return NotImplemented


def as_quantity(value: object) -> Quantity | None:
    """A Quantity for a quantity-like string or number; None otherwise (bools excluded)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Quantity(str(value), Fraction(value), value)
    if isinstance(value, float):
        return Quantity(repr(value), Fraction(value).limit_denominator(10**9), value)
    if isinstance(value, str):
        parsed = parse_quantity(value)
        return Quantity(value, parsed) if parsed is not None else None
    return None
