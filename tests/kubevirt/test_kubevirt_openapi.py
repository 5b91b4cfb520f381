"""Every KubeVirt, CDI and instancetype object the kubevirt backend sends validates
against the upstream OpenAPI (shared reference data) with no field the schema does not
know: checked on the requests of a whole CLI run against the API model (which also
refuses invalid objects itself), and on the bodies built for the shipped examples."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kube import openapi
from kube.apimodel import KubeModel
from kube.resources import by_kind
from kube_tree import KUBE_CLUSTER, vm, write

from reconciler.backends.kubevirt.identity import with_identity
from reconciler.backends.kubevirt.migration import migration_body
from reconciler.backends.kubevirt.ownership import marked_body
from reconciler.backends.kubevirt.power import held
from reconciler.core.model import ObjectKey
from reconciler.tree.loader import load_bytes

Run = Callable[..., tuple[int, str, str]]
ROOT = Path(__file__).resolve().parents[2]


def _problems(obj: dict[str, Any]) -> list[object]:
    rtype = by_kind(obj["apiVersion"], obj["kind"])
    return [*openapi.validate(rtype, obj), *openapi.prune_unknown(rtype, copy.deepcopy(obj))]


def test_every_object_sent_in_a_cli_run_is_valid(kube_env: Path, kube_model: KubeModel,
                                                 run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web", shared=True),
                 "vms/db.yaml": vm("db", run="Manual", disk_policy="Delete")})
    kube_model.controller.start_ticking()  # KubeVirt moves the migration on by itself
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    assert run_cli("stop", "web", "--path", str(tree))[0] == 0
    write(tree, {"vms/web.yaml": vm("web", shared=True, memory="2Gi")})
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0  # held Halted
    assert run_cli("start", "web", "--path", str(tree))[0] == 0
    assert run_cli("migrate", "web", "--path", str(tree), "--wait")[0] == 0
    sent = [r.body if isinstance(r.body, dict) else json.loads(r.body)
            for r in kube_model.requests if r.method in ("PATCH", "POST", "PUT") and r.body]
    checked = [b for b in sent if b.get("kind") in openapi.DEFINITIONS]
    assert {b["kind"] for b in checked} >= {"VirtualMachine", "VirtualMachineInstanceMigration"}
    for body in checked:
        assert _problems(body) == [], body


def test_bodies_built_for_the_examples_are_valid() -> None:
    for path in sorted((ROOT / "examples" / "vms").glob("*.yaml")):
        loaded = load_bytes(path.read_bytes(), str(path))
        for m in loaded.manifests:
            if m.kind not in openapi.DEFINITIONS:
                continue
            body = marked_body(m, installation="inst1", revision="abc", run_strategy="Always")
            assert _problems(body) == [], (path, m.key)
            if m.kind == "VirtualMachine":
                previous = {"spec": {"template": {"spec": {"domain": {"firmware": {
                    "uuid": "5d307ca9-b3ef-428c-8861-06e72d69f223", "serial": "s1"}}}}}}
                assert _problems(held(with_identity(body, previous))) == [], path
    migration = migration_body(ObjectKey("VirtualMachine", "default", "web"), "node-b", "i")
    assert _problems(migration) == []
