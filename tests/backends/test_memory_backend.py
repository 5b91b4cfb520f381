"""A backend that implements only the protocol, registered from the tests, drives
validate → plan → apply through the CLI (issue 9: backends as profiles)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from backends import memory
from reconciler.backends import registry
from reconciler.cli import main
from reconciler.core.model import ObjectKey

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())
KEY = ObjectKey("VirtualMachine", "shop", "web")


@pytest.fixture()
def memory_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    registry.register("memory", registry.Entry("backends.memory", "backends.memory"))
    memory.STORE.clear()
    memory.CALLS.clear()
    memory.MIGRATIONS.clear()
    memory.CLOSED.clear()
    yield
    registry.unregister("memory")


def vm(name: str = "web", cores: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"cpu": {"cores": cores}, "memory": {"guest": "64Mi"},
                       "devices": {}}}}},
    }


def tree(root: Path, backend: str, *vms: dict[str, Any]) -> Path:
    root.mkdir(exist_ok=True)
    (root / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
        "spec": {"backend": backend}}))
    for old in root.glob("vm-*.yaml"):
        old.unlink()
    for body in vms:
        (root / f"vm-{body['metadata']['name']}.yaml").write_text(yaml.safe_dump(body))
    return root


def plan_json(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    main(["plan", str(root), "-o", "json"])
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, SCHEMA)
    return doc


def test_memory_backend_validates_plans_and_applies_through_the_cli(
        memory_backend: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tree(tmp_path / "specs", "memory", vm())
    assert main(["validate", str(root)]) == 0

    doc = plan_json(root, capsys)
    assert doc["backend"] == "memory"
    assert [(c["kind"], c["name"], c["actions"]) for c in doc["changes"]] == [
        ("Cluster", "c", ["create"]), ("VirtualMachine", "web", ["create", "start"])]

    assert main(["apply", str(root)]) == 0
    assert memory.CALLS == [("create", KEY)]
    assert memory.STORE[KEY].running
    assert plan_json(root, capsys)["changes"] == []  # applied: nothing left to do
    assert memory.CLOSED  # the CLI closes what it opened

    # The backend's own rule classifies the change: live here, a restart on libvirt.
    tree(root, "memory", vm(cores=2))
    (change,) = plan_json(root, capsys)["changes"]
    assert (change["disruption"], change["actions"]) == ("live", ["update"])
    assert memory.HOT_ADD in change["cause"]
    assert main(["apply", str(root)]) == 0  # live: no --allow-restart needed
    assert memory.CALLS[-1] == ("update", KEY)
    assert memory.STORE[KEY].body["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] == 2

    tree(root, "memory")  # the VM left git: pruned, through the backend
    assert main(["apply", str(root), "--prune"]) == 0
    assert memory.CALLS[-1] == ("delete", KEY)
    assert memory.STORE == {}


def test_the_same_change_is_classified_by_each_backend_profile(
        memory_backend: None, tmp_path: Path) -> None:
    """Second case, other names: the same edit through git mode is a restart with
    libvirt's profile and live with the memory backend's — the planner takes the rules
    from the profile, never from a backend name."""
    from reconciler.backends.base import BackendProfile
    from reconciler.planning.gitplan import plan_from_git

    root = tmp_path / "repo"
    tree(root, "memory", vm("db", cores=1))
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.email=t@t", "-c", "user.name=t",
                                               "commit", "-qm", "base"]):
        import subprocess
        subprocess.run(["git", "-C", str(root), *cmd], check=True)
    tree(root, "memory", vm("db", cores=4))

    def disruption(profile: BackendProfile) -> str:
        (change,) = plan_from_git(str(root), "HEAD", profile=profile.classification,
                                  use_cache=False).plan.changes
        return change.disruption.label

    assert disruption(registry.profile("libvirt")) == "restart"
    assert disruption(registry.profile("memory")) == "live"


def test_unknown_and_planning_only_backends_are_refused_by_name(
        memory_backend: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tree(tmp_path / "specs", "nope", vm())
    assert main(["plan", str(root)]) != 0
    err = capsys.readouterr().err
    assert "cluster.yaml: spec.backend: unknown backend 'nope'" in err
    assert "memory" in err  # the known ones are listed

    from reconciler.backends import registry

    registry.register("planonly", registry.Entry(".kubevirt", None))  # a profile, no opener
    try:
        tree(root, "planonly", vm())
        assert main(["apply", str(root)]) != 0
        assert "backend 'planonly' only plans" in capsys.readouterr().err
    finally:
        registry.unregister("planonly")
    assert memory.CALLS == []


@pytest.mark.timeout(30)
def test_agent_refuses_a_backend_that_runs_no_node_agents(
        memory_backend: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whether a backend runs node agents is its own answer (`agents()`), not a lookup of
    libvirt hosts: with none, `virtsync agent` says so instead of waiting forever."""
    root = tree(tmp_path / "specs", "memory", vm())
    assert main(["agent", str(root)]) != 0
    assert "backend 'memory' runs no node agents" in capsys.readouterr().err
    assert memory.CLOSED == [True]


def test_memory_and_libvirt_backends_take_every_argument_the_protocol_names() -> None:
    """The protocol is the contract the core calls through: a backend whose method lacks
    one of its parameters breaks only at run time (the core passes them by keyword)."""
    import inspect

    from reconciler.backends.base import Backend
    from reconciler.backends.libvirt import LibvirtBackend

    from .memory import MemoryBackend

    for impl in (MemoryBackend, LibvirtBackend):
        for name, member in inspect.getmembers(Backend, inspect.isfunction):
            if name.startswith("_"):
                continue
            wanted = set(inspect.signature(member).parameters)
            have = set(inspect.signature(getattr(impl, name)).parameters)
            assert wanted <= have, f"{impl.__name__}.{name} lacks {sorted(wanted - have)}"


def test_a_narrowed_observation_keeps_the_nodes_to_place_on() -> None:
    """watch's narrowed cycle on a backend without observe_keys: the fallback keeps the
    backend's nodes, else the placement step would have nowhere to put a new VM."""
    from reconciler.backends.base import Observation
    from reconciler.execute.cycle import observe_some
    from reconciler.planning.schedule import NodeCapacity

    nodes = (NodeCapacity("n1", free_kib=1 << 20), NodeCapacity("n2", schedulable=False))

    class NodesOnly:
        def observe(self) -> Observation:
            return Observation((), (), nodes)

    narrowed = observe_some(NodesOnly(), {ObjectKey("VirtualMachine", "ns", "a")})  # type: ignore[arg-type]
    assert narrowed.nodes == nodes
