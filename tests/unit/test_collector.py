"""The cyclic collector is paused for a run's bulk phase (reconciler.core.collector):
off inside, back as it was after, and a garbage cycle made inside is still collected
afterwards (paused, not frozen: nothing leaks)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.core import collector


@pytest.fixture
def restore_gc() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


class _Node:
    def __init__(self) -> None:
        self.other: Any = self


@pytest.mark.usefixtures("restore_gc")
def test_the_collector_is_off_inside_and_on_again_after() -> None:
    gc.enable()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_an_error_in_the_block_still_turns_it_back_on() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_a_cycle_made_inside_is_collected_after() -> None:
    gc.enable()
    with collector.paused():
        ref = weakref.ref(_Node())
        assert ref() is not None  # a cycle: reference counting alone never frees it
    gc.collect()
    assert ref() is None
