"""Wire contract of the kubevirt backend, against kmock's Kubernetes emulator: the URLs,
content types, query parameters and bodies the backend sends (what a real API server
receives). kmock has no server-side apply, so objects are created up front with POST."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client as k8s

from node.identity.metadata import Scope
from reconciler.backends.kubevirt.backend import KubevirtBackend
from reconciler.backends.kubevirt.client import KubeClient
from reconciler.backends.kubevirt.migration import run_migration
from reconciler.backends.kubevirt.ownership import (
    APPLIED_RUN_STRATEGY,
    INSTALLATION,
    MANAGED_BY,
    marks,
)
from reconciler.backends.kubevirt.resources import CONFIG_MAP, DATA_VOLUME, VM, VMIM
from reconciler.core.migration import MigrationPolicy
from reconciler.core.model import Manifest, ObjectKey, SourceRef

Server = tuple[Any, k8s.ApiClient]
INSTALL = "inst1"
VM_PATH = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/web"
SUB = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/web"
KEY = ObjectKey("VirtualMachine", "default", "web")


def _vm(strategy: str = "Always") -> Manifest:
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"runStrategy": strategy, "template": {"spec": {"domain": {
                "devices": {}, "memory": {"guest": "1Gi"}}}}}}
    return Manifest("kubevirt.io/v1", "VirtualMachine", "default", "web", body,
                    SourceRef("web.yaml", 1))


def _backend(api: k8s.ApiClient, *manifests: Manifest) -> KubevirtBackend:
    return KubevirtBackend(KubeClient(api), list(manifests), scope=Scope(INSTALL))


def _existing(api: k8s.ApiClient, status: dict[str, Any] | None = None,
              uid: str = "u1", name: str = "web", strategy: str = "Always") -> None:
    """A VM virtsync applied earlier (its marks), created directly in kmock."""
    body: dict[str, Any] = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                            "metadata": {"name": name, "namespace": "default", "uid": uid,
                                         "labels": marks(INSTALL),
                                         "annotations": {APPLIED_RUN_STRATEGY: "Always"}},
                            "spec": {"runStrategy": strategy}}
    if status:
        body["status"] = status
    KubeClient(api).create(VM, "default", body)


def _sent(server: Any, method: str) -> list[Any]:
    return [r for r in server.requests() if str(r.method).upper().endswith(method)]


def test_apply_is_server_side_apply_as_field_manager_virtsync(kmock_api: Server) -> None:
    server, api = kmock_api
    _existing(api)
    _backend(api, _vm()).create(_vm(), revision="c0ffee", refs={})
    (patch,) = _sent(server, "PATCH")
    assert patch.url.path == VM_PATH
    assert patch.headers["Content-Type"] == "application/apply-patch+yaml"
    assert dict(patch.params) == {"fieldManager": "virtsync"}  # no force, no dry run
    meta = patch.data["metadata"]
    assert meta["namespace"] == "default"
    assert meta["labels"] == {"app": "web", MANAGED_BY: "virtsync", INSTALLATION: INSTALL}
    assert meta["annotations"] == {"virtsync.io/revision": "c0ffee",
                                   APPLIED_RUN_STRATEGY: "Always"}
    assert patch.data["spec"] == _vm().body["spec"]  # git's body, as render emits it


def test_force_conflicts_only_on_request(kmock_api: Server) -> None:
    server, api = kmock_api
    _existing(api)
    backend = _backend(api, _vm())
    backend.force_conflicts = True
    backend.update(_vm(), revision="r", refs={}, restart=False)
    (patch,) = _sent(server, "PATCH")
    assert dict(patch.params) == {"fieldManager": "virtsync", "force": "true"}


def test_observe_lists_by_ownership_label_and_dry_runs_each_desired_object(
        kmock_api: Server) -> None:
    server, api = kmock_api
    _existing(api)
    absent = Manifest("kubevirt.io/v1", "VirtualMachine", "default", "db",
                      {**_vm().body, "metadata": {"name": "db"}}, SourceRef("db.yaml", 1))
    _backend(api, _vm(), absent).observe()
    lists = [r for r in _sent(server, "GET") if "labelSelector" in r.params]
    assert {r.url.path for r in lists} == {
        "/apis/kubevirt.io/v1/virtualmachines",
        "/apis/cdi.kubevirt.io/v1beta1/datavolumes",
        "/apis/instancetype.kubevirt.io/v1beta1/virtualmachineinstancetypes",
        "/apis/instancetype.kubevirt.io/v1beta1/virtualmachinepreferences",
        "/apis/instancetype.kubevirt.io/v1beta1/virtualmachineclusterinstancetypes",
        "/apis/instancetype.kubevirt.io/v1beta1/virtualmachineclusterpreferences",
    }
    # rule 18: this installation's objects only
    assert {r.params["labelSelector"] for r in lists} == \
        {f"{MANAGED_BY}=virtsync,{INSTALLATION}={INSTALL}"}
    (dry,) = _sent(server, "PATCH")
    assert dry.url.path == VM_PATH
    assert dict(dry.params) == {"fieldManager": "virtsync", "dryRun": "All"}
    assert dry.headers["Content-Type"] == "application/apply-patch+yaml"
    # a desired object not listed is looked up by name: existing unmarked = a conflict
    assert any(r.url.path.endswith("/virtualmachines/db") for r in _sent(server, "GET"))


def test_power_verbs_are_kubevirts_subresources(kmock_api: Server) -> None:
    server, api = kmock_api
    _existing(api, status={"created": True, "printableStatus": "Running"})
    # an operator stopped this one: KubeVirt wrote Halted where virtsync applied Always
    _existing(api, name="off", strategy="Halted", uid="u2")
    server.kmock["put"] << {}
    backend = _backend(api, _vm())
    backend.stop(KEY, grace_period=30)
    backend.stop(KEY, grace_period=30, force=True)
    backend.restart(KEY, grace_period=5)
    backend.start(KEY)  # Always: KubeVirt runs it itself; a start request would be a 409
    backend.start(ObjectKey("VirtualMachine", "default", "off"))
    puts = [(r.url.path, r.data) for r in _sent(server, "PUT")]
    assert puts == [(f"{SUB}/stop", {"gracePeriod": 30}), (f"{SUB}/stop", {"gracePeriod": 0}),
                    (f"{SUB}/restart", {"gracePeriodSeconds": 5}),
                    (f"{SUB[:-3]}off/start", {})]


def test_prune_keeping_disks_orphans_owned_datavolumes_before_the_delete(
        kmock_api: Server) -> None:
    server, api = kmock_api
    _existing(api, uid="vm-uid")
    KubeClient(api).create(DATA_VOLUME, "default", {
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": "web-root", "namespace": "default", "ownerReferences": [
            {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "web",
             "uid": "vm-uid"}]}, "spec": {}})
    _backend(api).delete(KEY, delete_disks=False)
    (patch,) = _sent(server, "PATCH")
    assert patch.url.path == "/apis/cdi.kubevirt.io/v1beta1/namespaces/default/datavolumes/web-root"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.data == {"metadata": {"ownerReferences": None}}
    (delete,) = _sent(server, "DELETE")
    assert delete.url.path == VM_PATH
    assert delete.data["propagationPolicy"] == "Background"


def test_inventory_configmap_is_applied_once_per_change(kmock_api: Server) -> None:
    server, api = kmock_api
    KubeClient(api).create(
        CONFIG_MAP, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "virtsync-inventory-src1", "namespace": "default"},
                    "data": {"inventory.json": "{}"}})
    backend = _backend(api)
    assert backend.read_inventory("src1") == b"{}"
    backend.write_inventory("src1", b'{"format": 1}')
    backend.write_inventory("src1", b'{"format": 1}')  # unchanged: no request (rule 12)
    (patch,) = _sent(server, "PATCH")
    assert patch.url.path == "/api/v1/namespaces/default/configmaps/virtsync-inventory-src1"
    assert patch.headers["Content-Type"] == "application/apply-patch+yaml"
    assert patch.params["fieldManager"] == "virtsync"
    assert patch.data["data"] == {"inventory.json": '{"format": 1}'}
    assert patch.data["metadata"]["labels"]["virtsync.io/source"] == "src1"


def test_migration_is_followed_by_a_watch_on_that_object(kmock_api: Server) -> None:
    server, api = kmock_api
    client = KubeClient(api)

    def kubevirt_finishes_it() -> None:  # as virt-controller would, a moment later
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for m in client.list(VMIM, "default"):
                client.merge_patch(VMIM, "default", m["metadata"]["name"],  # type: ignore[index]
                                   {"status": {"phase": "Succeeded"}})
                return
            time.sleep(0.1)

    finisher = threading.Thread(target=kubevirt_finishes_it)
    finisher.start()
    outcome = run_migration(client, KEY, target="node-b", policy=MigrationPolicy(),
                            installation=INSTALL, progress=None, clock=time.monotonic)
    finisher.join()
    assert outcome.seconds >= 0
    (post,) = _sent(server, "POST")
    name = post.data["metadata"]["name"]
    assert post.url.path == "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations"
    assert post.data["spec"] == {"vmiName": "web",
                                 "addedNodeSelector": {"kubernetes.io/hostname": "node-b"}}
    watches = [r for r in _sent(server, "GET") if r.params.get("watch") == "true"]
    assert watches, "the migration was not watched"
    assert watches[0].url.path == \
        "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations"
    assert watches[0].params["fieldSelector"] == f"metadata.name={name}"
    assert int(watches[0].params["timeoutSeconds"]) > 0
