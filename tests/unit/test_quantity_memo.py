"""Quantities are parsed once per spelling (issue 13): a repeated or differently spelled
quantity, plain or a Quantity, gets exactly the value a fresh parse gives."""

from __future__ import annotations

from fractions import Fraction

from reconciler.core.quantity import Quantity, parse_quantity


def test_every_spelling_gets_its_own_value_however_often_asked() -> None:
    cases = {"1Gi": Fraction(2**30), "1024Mi": Fraction(2**30), "1G": Fraction(10**9),
             "1": Fraction(1), "500m": Fraction(1, 2), "1e3": Fraction(1000),
             " 2Ki ": Fraction(2048), "1.5Gi": Fraction(3 * 2**29), "bad": None}
    for _ in range(2):
        for text, value in cases.items():
            assert parse_quantity(text) == value, text


def test_a_quantity_is_read_by_its_own_text() -> None:
    assert parse_quantity(Quantity("2Gi", Fraction(2 * 2**30))) == 2 * 2**30
    assert parse_quantity(Quantity("2048Mi", Fraction(2 * 2**30))) == 2 * 2**30
    assert parse_quantity("2Mi") == 2 * 2**20
