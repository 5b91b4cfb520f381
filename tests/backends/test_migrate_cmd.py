"""`virtsync migrate` (issue 10) through the CLI on the memory backend: it picks a target
by the placement and migration rules, refuses with KubeVirt's reason when the VM cannot
move, and the next plan keeps the VM where it went."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backends import memory
from backends.test_memory_backend import plan_json
from backends.test_memory_migrate import key, node, vm, write
from reconciler.cli import main

pytestmark = pytest.mark.usefixtures("memory_backend")
from backends.test_memory_backend import memory_backend  # noqa: E402,F401  (the fixture)


def free(name: str, **kw: Any) -> dict[str, Any]:
    """A VM without a node selector: any node may run it."""
    body = vm(name, "a", **kw)
    del body["spec"]["template"]["spec"]["nodeSelector"]
    return body


def test_migrate_moves_a_running_vm_and_the_plan_keeps_it_there(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "specs", [node("a"), node("b"), node("c")], free("web"))
    assert main(["apply", str(root)]) == 0
    start = memory.STORE[key("web")].node
    other = next(n for n in ("a", "b", "c") if n != start)
    capsys.readouterr()
    assert main(["migrate", "shop/web", "--path", str(root), "--to", other, "--wait"]) == 0
    assert f"shop/web migrated {start} → {other}" in capsys.readouterr().out
    assert memory.STORE[key("web")].node == other and memory.STORE[key("web")].running
    assert [m[1:3] for m in memory.MIGRATIONS] == [(start, other)]
    assert plan_json(root, capsys)["changes"] == []  # sticky: no move back

    # Without --to, the first node the rules allow (not the one it runs on).
    assert main(["migrate", "web", "-n", "shop", "--path", str(root), "--wait"]) == 0
    assert memory.STORE[key("web")].node not in (other,)


@pytest.mark.parametrize(("nodes", "body", "to", "why"), [
    ([node("a"), node("b")], free("web", bridge=True), "b", "InterfaceNotLiveMigratable"),
    ([node("a"), node("b", schedulable=False)], free("web"), "b", "cordoned"),
    ([node("a"), node("b", shared=False)], free("web"), "b", "DisksNotLiveMigratable"),
    ([node("a"), node("b")], free("web"), "z", "no node named 'z'"),
    ([node("a")], free("web"), None, "NoMigrationTarget"),
])
def test_migrate_refuses_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], nodes: list[dict[str, Any]],
        body: dict[str, Any], to: str | None, why: str) -> None:
    root = write(tmp_path / "specs", nodes, body)
    assert main(["apply", str(root)]) == 0
    memory.STORE[key("web")].node = "a"
    capsys.readouterr()
    args = ["migrate", "shop/web", "--path", str(root), "--wait"] + (["--to", to] if to else [])
    assert main(args) != 0
    assert why in capsys.readouterr().err
    assert memory.MIGRATIONS == [] and memory.STORE[key("web")].node == "a"


def test_a_stopped_vm_does_not_migrate(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "specs", [node("a"), node("b")], free("web", strategy=None))
    assert main(["apply", str(root)]) == 0
    assert main(["stop", "shop/web", "--path", str(root)]) == 0
    capsys.readouterr()
    assert main(["migrate", "shop/web", "--path", str(root), "--wait"]) != 0
    assert "is not running" in capsys.readouterr().err
    assert main(["migrate", "shop/web", "--path", str(root), "--cancel"]) == 0
    assert "no migration running" in capsys.readouterr().out
