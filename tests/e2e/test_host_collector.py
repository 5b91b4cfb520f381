"""A host-mode plan or apply runs its bulk phase (read, observe, plan) with the cyclic
collector paused (reconciler.core.collector, issue 13), through the CLI on the test
driver."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.test_apply_testdriver import Tree, run, vm
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.execute import planmemo
from reconciler.tree.desired_state import WorkdirTree


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
@pytest.mark.parametrize("verb", ["plan", "apply"])
def test_a_host_mode_run_reads_observes_and_plans_with_the_collector_paused(
        verb: str, conn: Any, tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        tree.put(vm(f"vm{i}", run="Halted"))
    assert run("apply", str(tree.root), "--auto-approve") == 0
    seen: dict[str, bool] = {}

    def spy(owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen[name] = gc.isenabled()
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)

    spy(WorkdirTree, "refresh_all")
    spy(LibvirtBackend, "observe")
    spy(planmemo, "plan_live")
    args = ["--auto-approve"] if verb == "apply" else []
    assert run(verb, str(tree.root), *args) == 0
    assert seen == {"refresh_all": False, "observe": False, "plan_live": False}
    assert gc.isenabled()  # and on again after
