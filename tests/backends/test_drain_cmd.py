"""`virtsync drain NODE` / `uncordon NODE` (issue 10) through the CLI on the memory
backend: a local cordon, then each VM off the node by its evictionStrategy (KubeVirt's
meanings), checked for every VM before any moves, like `kubectl drain`."""

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

BLOCK_OK = {"migration.virtsync.io/allowBlockMigration": "true"}


def placed(name: str, selector: dict[str, str], **kw: Any) -> dict[str, Any]:
    body = vm(name, "any", **kw)
    body["spec"]["template"]["spec"]["nodeSelector"] = selector
    return body


def nodes() -> list[dict[str, Any]]:
    """a and b share storage; c's is node-local. a is the biggest, so it fills first."""
    return [{**node("a"), "labels": {"pool": "p", "zone": "x"}, "memoryMiB": 8192},
            {**node("b"), "labels": {"pool": "p"}, "memoryMiB": 4096},
            {**node("c", shared=False), "labels": {"zone": "x"}, "memoryMiB": 4096}]


def volumes(name: str) -> Any:
    return memory.STORE[key(name)].body["spec"]["template"]["spec"]["volumes"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_drain_moves_each_vm_by_its_eviction_strategy_and_uncordon_reopens(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vms = [placed("web", {"pool": "p"}, strategy="LiveMigrate"),  # shared: memory only
           placed("db", {"zone": "x"}, strategy="LiveMigrate", annotations=BLOCK_OK),
           placed("maybe", {"pool": "p"}, strategy="LiveMigrateIfPossible", bridge=True)]
    root = write(tmp_path / "specs", nodes(), *vms)
    assert main(["apply", str(root)]) == 0
    assert {memory.STORE[key(v)].node for v in ("web", "db", "maybe")} == {"a"}
    before = {v: volumes(v) for v in ("web", "db", "maybe")}

    # dry run: says what would happen, cordons and moves nothing
    code, out, _ = run(capsys, "drain", "a", "--path", str(root), "--dry-run", "--allow-restart")
    assert code == 0 and "node/a would be drained" in out
    assert "shop/web evicting: (node): live migration a → b" in out
    assert memory.MIGRATIONS == [] and plan_json(root, capsys)["changes"] == []

    # Without --allow-restart the VM that would be shut down blocks: nothing moves.
    code, out, err = run(capsys, "drain", "a", "--path", str(root))
    assert code == 1 and "node/a cordoned" in out
    assert "shop/maybe blocked: would be shut down, needs --allow-restart" in out
    assert "1 VM(s) block it (VirtualMachine/shop/maybe)" in err or "shop/maybe" in err
    assert memory.MIGRATIONS == [] and ("replace", key("maybe")) not in memory.CALLS
    _, out, _ = run(capsys, "status", str(root))
    assert "cordoned (SchedulingDisabled): a" in out

    code, out, _ = run(capsys, "drain", "a", "--path", str(root), "--allow-restart")
    assert code == 0 and "node/a drained" in out
    assert "migrated" in out and "replaced" in out  # kubectl's words per VM
    assert {k.name: (s, t) for k, s, t, _ in memory.MIGRATIONS} == {
        "web": ("a", "b"), "db": ("a", "c")}
    (db_policy,) = [p for k, _, _, p in memory.MIGRATIONS if k.name == "db"]
    assert db_policy.allow_block_migration  # node-local disks: copied along
    where = {v: memory.STORE[key(v)].node for v in ("web", "db", "maybe")}
    assert where == {"web": "b", "db": "c", "maybe": "b"}
    assert all(memory.STORE[key(v)].running for v in where)  # maybe: started again
    assert {v: volumes(v) for v in where} == before  # every claim still there
    assert not any(c[0] == "delete" for c in memory.CALLS)
    assert plan_json(root, capsys)["changes"] == []  # nothing moves back

    # Cordoned, a takes no new VM; uncordoned, placement uses it again (most memory).
    write(root, nodes(), *vms, placed("new", {"pool": "p"}))
    assert plan_json(root, capsys)["changes"][0]["placement"]["node"] == "b"
    code, out, _ = run(capsys, "uncordon", "a", "--path", str(root))
    assert code == 0 and "node/a uncordoned" in out
    assert plan_json(root, capsys)["changes"][0]["placement"]["node"] == "a"
    _, out, _ = run(capsys, "status", str(root))
    assert "cordoned" not in out


def test_live_migrate_vm_that_cannot_migrate_blocks_the_whole_drain(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Second shape: the blocker is LiveMigrate + bridge binding on the pod network, and
    External is left running; --allow-restart does not override a LiveMigrate block."""
    vms = [placed("stuck", {"pool": "p"}, strategy="LiveMigrate", bridge=True),
           placed("ext", {"pool": "p"}, strategy="External"),
           placed("fine", {"pool": "p"})]  # evictionStrategy None: shut down, moved
    root = write(tmp_path / "specs", nodes(), *vms)
    assert main(["apply", str(root)]) == 0
    code, out, err = run(capsys, "drain", "a", "--path", str(root), "--allow-restart")
    assert code == 1
    assert "shop/stuck blocked: evictionStrategy LiveMigrate, but not live-migratable: " \
           "InterfaceNotLiveMigratable" in out
    assert "shop/ext left: evictionStrategy External" in out
    assert "nothing was evicted" in err
    assert {memory.STORE[key(v)].node for v in ("stuck", "ext", "fine")} == {"a"}
    assert memory.MIGRATIONS == [] and ("replace", key("fine")) not in memory.CALLS

    # Without the blocker, the drain goes ahead and says what it left behind.
    write(root, nodes(), *vms[1:])
    code, out, _ = run(capsys, "drain", "a", "--path", str(root), "--allow-restart")
    assert code == 0 and "node/a drained (1 VM(s) left for an external controller)" in out
    assert memory.STORE[key("fine")].node == "b" and memory.STORE[key("ext")].node == "a"

    code, _, err = run(capsys, "drain", "z", "--path", str(root))
    assert code != 0 and "no node named 'z'" in err
