"""The Kubernetes API model (a MODEL, see README.md) through the real `kubernetes` client
over HTTP: discovery, CRUD, resourceVersion/generation, server-side apply ownership and
conflicts, dry run, selectors, watch."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import urllib3
from kubernetes import dynamic, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from .apimodel import KubeModel

KV = "kubevirt.io/v1"


def vm(name: str = "vm1", run: str = "Always", **labels: str) -> dict[str, Any]:
    return {"apiVersion": KV, "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"runStrategy": run, "template": {"spec": {
                "domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                           "memory": {"guest": "128Mi"}},
                "networks": [{"name": "default", "pod": {}}]}}}}


def partial(run: str, name: str = "vm1") -> dict[str, Any]:
    """What `kubectl apply --server-side` of only a run strategy sends."""
    return {"apiVersion": KV, "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"runStrategy": run}}


def vms(dyn: dynamic.DynamicClient) -> Any:
    return dyn.resources.get(api_version=KV, kind="VirtualMachine")


def apply(dyn: dynamic.DynamicClient, body: dict[str, Any], **kw: Any) -> Any:
    return vms(dyn).server_side_apply(body=body, namespace="default",
                                      field_manager=kw.pop("field_manager", "virtsync"), **kw)


def the_vm(model: KubeModel, name: str = "vm1") -> dict[str, Any]:
    found = model.get(KV, "VirtualMachine", "default", name)
    assert found is not None, f"no VirtualMachine {name}"
    return found


def status_of(err: ApiException) -> dict[str, Any]:
    return dict(json.loads(str(err.body)))


def test_discovery_serves_every_kind_and_the_power_subresources(
        dyn: dynamic.DynamicClient) -> None:
    for api_version, kind, namespaced in [
            ("v1", "ConfigMap", True), ("v1", "Namespace", False), (KV, "VirtualMachine", True),
            (KV, "VirtualMachineInstance", True), (KV, "VirtualMachineInstanceMigration", True),
            ("cdi.kubevirt.io/v1beta1", "DataVolume", True),
            ("instancetype.kubevirt.io/v1beta1", "VirtualMachineInstancetype", True),
            ("instancetype.kubevirt.io/v1beta1", "VirtualMachinePreference", True),
            ("instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterInstancetype", False),
            ("instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterPreference", False)]:
        assert dyn.resources.get(api_version=api_version, kind=kind).namespaced is namespaced
    subs = dyn.request("GET", "/apis/subresources.kubevirt.io/v1")
    assert {r.name for r in subs.resources} == {
        "virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart"}


def test_apply_creates_with_server_fields_and_ownership(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    before = kube_model.store.rv
    created = apply(dyn, vm()).to_dict()
    meta = created["metadata"]
    assert meta["uid"] and meta["generation"] == 1 and meta["creationTimestamp"]
    assert int(meta["resourceVersion"]) == before + 1  # then the controller's writes follow
    [entry] = meta["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == (
        "virtsync", "Apply", KV)
    assert entry["fieldsV1"]["f:spec"]["f:runStrategy"] == {}
    request = kube_model.requests[-1]
    assert (request.method, request.content_type, request.query) == (
        "PATCH", "application/apply-patch+yaml", {"fieldManager": "virtsync"})


def test_generation_moves_on_spec_changes_only_and_noop_apply_keeps_resource_version(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    first = apply(dyn, vm()).metadata
    settled = kube_model.get(KV, "VirtualMachine", "default", "vm1")
    assert settled is not None
    again = apply(dyn, vm()).metadata
    # a no-op apply writes nothing
    assert again.resourceVersion == settled["metadata"]["resourceVersion"]
    labelled = apply(dyn, vm(team="a")).metadata
    assert labelled.generation == 1 and int(labelled.resourceVersion) > int(
        first.resourceVersion)
    changed = apply(dyn, vm(run="Halted", team="a")).metadata
    assert changed.generation == 2
    kube_model.controller.settle()  # status writes bump resourceVersion, not generation
    assert the_vm(kube_model)["metadata"]["generation"] == 2


def test_apply_conflict_names_the_other_manager_and_field_and_force_takes_it(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm())
    kube_model.put_object(partial("Manual"), manager="kubectl")
    with pytest.raises(ConflictError) as err:
        apply(dyn, vm(run="Halted"))
    status = status_of(err.value)
    assert status["reason"] == "Conflict"
    assert 'conflict with "kubectl" using kubevirt.io/v1: .spec.runStrategy' in status["message"]
    assert status["details"]["causes"][0]["field"] == ".spec.runStrategy"
    assert the_vm(kube_model)["spec"]["runStrategy"] == \
        "Manual"
    apply(dyn, vm(run="Halted"), force_conflicts=True)
    stored = the_vm(kube_model)
    assert stored["spec"]["runStrategy"] == "Halted"
    owners = {e["manager"]: e["fieldsV1"] for e in stored["metadata"]["managedFields"]}
    assert "f:runStrategy" in owners["virtsync"]["f:spec"]
    assert "f:runStrategy" not in owners.get("kubectl", {}).get("f:spec", {})


def test_same_value_is_shared_ownership_not_a_conflict(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    kube_model.put_object({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "inv", "namespace": "default"},
                           "data": {"a": "1"}}, manager="kubectl")
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "inv"}, "data": {"a": "1", "b": "2"}},
                          namespace="default", field_manager="virtsync")
    stored = kube_model.get("v1", "ConfigMap", "default", "inv")
    assert stored is not None
    assert {e["manager"] for e in stored["metadata"]["managedFields"]} == {"kubectl", "virtsync"}
    assert "generation" not in stored["metadata"]  # only custom resources have one


def test_fields_the_applier_drops_are_removed_unless_another_manager_owns_them(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm(team="a", tier="web"))
    kube_model.put_object({"apiVersion": KV, "kind": "VirtualMachine",
                           "metadata": {"name": "vm1", "namespace": "default",
                                        "labels": {"tier": "web"}}}, manager="kubectl")
    apply(dyn, vm())
    labels = the_vm(kube_model)["metadata"]["labels"]
    assert labels == {"tier": "web"}  # team dropped; tier still kubectl's


def test_apply_without_field_manager_is_400(dyn: dynamic.DynamicClient) -> None:
    with pytest.raises(ApiException) as err:
        dyn.request("PATCH", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1",
                    body=vm(), content_type="application/apply-patch+yaml")
    assert err.value.status == 400
    assert "fieldManager is required" in status_of(err.value)["message"]


def test_dry_run_apply_returns_the_result_but_persists_nothing(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    rv = kube_model.store.rv
    preview = apply(dyn, vm(), dry_run="All").to_dict()
    assert preview["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"]  # defaulted
    assert kube_model.get(KV, "VirtualMachine", "default", "vm1") is None
    assert kube_model.store.rv == rv  # no resourceVersion bump, so no watch event either
    assert all(e.rv <= rv for e in kube_model.store.events)
    apply(dyn, vm())
    kube_model.put_object(partial("Manual"), manager="kubectl")
    with pytest.raises(ConflictError):
        apply(dyn, vm(run="Halted"), dry_run="All")  # conflicts are reported in dry run
    before = kube_model.get(KV, "VirtualMachine", "default", "vm1")
    apply(dyn, vm(run="Halted"), dry_run="All", force_conflicts=True)
    assert kube_model.get(KV, "VirtualMachine", "default", "vm1") == before
    assert kube_model.requests[-1].query == {
        "fieldManager": "virtsync", "force": "true", "dryRun": "All"}


def test_dry_run_patch_and_delete_persist_nothing(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm())
    before = kube_model.get(KV, "VirtualMachine", "default", "vm1")
    vms(dyn).patch(name="vm1", namespace="default", body={"spec": {"runStrategy": "Halted"}},
                   content_type="application/merge-patch+json", dry_run="All")
    vms(dyn).delete(name="vm1", namespace="default", dry_run="All")
    assert kube_model.get(KV, "VirtualMachine", "default", "vm1") == before


def test_create_twice_is_409_already_exists_and_delete_of_absent_is_404(
        dyn: dynamic.DynamicClient) -> None:
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    cms.create(body=body, namespace="default")
    with pytest.raises(ConflictError) as err:
        cms.create(body=body, namespace="default")
    assert status_of(err.value)["reason"] == "AlreadyExists"
    cms.delete(name="c", namespace="default", propagation_policy="Background")
    with pytest.raises(NotFoundError):
        cms.delete(name="c", namespace="default")


def test_replace_with_a_stale_resource_version_is_409(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    stale = apply(dyn, vm()).to_dict()
    kube_model.put_object(vm(run="Halted"), manager="kubectl")
    stale["spec"]["runStrategy"] = "Manual"
    with pytest.raises(ConflictError) as err:
        vms(dyn).replace(body=stale, namespace="default")
    assert "the object has been modified" in status_of(err.value)["message"]
    fresh = kube_model.get(KV, "VirtualMachine", "default", "vm1")
    assert fresh is not None
    fresh["spec"]["runStrategy"] = "Manual"
    replaced = vms(dyn).replace(body=fresh, namespace="default")
    assert replaced.spec.runStrategy == "Manual"
    assert int(replaced.metadata.resourceVersion) > int(fresh["metadata"]["resourceVersion"])


def test_merge_and_json_patch(dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm(team="a"))
    vms(dyn).patch(name="vm1", namespace="default",
                   body={"metadata": {"labels": {"team": None, "x": "1"}}},
                   content_type="application/merge-patch+json")
    vms(dyn).patch(name="vm1", namespace="default",
                   body=[{"op": "replace", "path": "/spec/runStrategy", "value": "Halted"}],
                   content_type="application/json-patch+json")
    stored = the_vm(kube_model)
    assert stored["metadata"]["labels"] == {"x": "1"}
    assert stored["spec"]["runStrategy"] == "Halted"
    with pytest.raises(ApiException) as err:  # custom resources reject strategic merge
        vms(dyn).patch(name="vm1", namespace="default", body={"spec": {}})
    assert err.value.status == 415


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", ["a", "b"]), ("app=web,tier!=db", ["a"]), ("tier in (db, cache)", ["b"]),
    ("tier notin (db)", ["a", "c"]), ("tier", ["b"]), ("!tier", ["a", "c"]),
])
def test_label_selectors(dyn: dynamic.DynamicClient, selector: str,
                         expected: list[str]) -> None:
    apply(dyn, vm("a", app="web"))
    apply(dyn, vm("b", app="web", tier="db"))
    apply(dyn, vm("c", app="batch"))
    listed = vms(dyn).get(namespace="default", label_selector=selector)
    assert [i.metadata.name for i in listed.items] == expected
    assert int(listed.metadata.resourceVersion) > 0


def test_field_selector_on_name(dyn: dynamic.DynamicClient) -> None:
    apply(dyn, vm("a"))
    apply(dyn, vm("b"))
    listed = vms(dyn).get(namespace="default", field_selector="metadata.name=b")
    assert [i.metadata.name for i in listed.items] == ["b"]


def test_watch_streams_events_after_a_resource_version(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    kube_model.controller.auto = False  # only our writes make events
    apply(dyn, vm("a", app="web"))
    start = vms(dyn).get(namespace="default").metadata.resourceVersion
    seen: list[tuple[str, str]] = []

    def follow() -> None:
        for event in dyn.watch(vms(dyn), namespace="default", resource_version=start,
                               label_selector="app=web", timeout=3):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                break

    thread = threading.Thread(target=follow)
    thread.start()
    apply(dyn, vm("b", app="web"))
    apply(dyn, vm("c", app="batch"))  # filtered out by the selector
    apply(dyn, vm("a", run="Halted", app="web"))
    vms(dyn).delete(name="b", namespace="default")
    thread.join(timeout=10)
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


def test_watch_from_zero_lists_first_and_ends_on_timeout(
        kube_model: KubeModel, dyn: dynamic.DynamicClient) -> None:
    apply(dyn, vm("a"))
    stream = watch.Watch().stream(
        _custom(dyn).list_namespaced_custom_object,
        "kubevirt.io", "v1", "default", "virtualmachines", timeout_seconds=1)
    events = [(e["type"], e["object"]["metadata"]["name"]) for e in stream]
    assert events == [("ADDED", "a")]
    assert kube_model.requests[-1].query["watch"] == "true"


def _custom(dyn: dynamic.DynamicClient) -> Any:
    from kubernetes import client
    return client.CustomObjectsApi(dyn.client)


def test_unreachable_refuses_connections_then_serves_again(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm())
    kube_model.set_reachable(False)
    with pytest.raises(urllib3.exceptions.MaxRetryError, match="Connection refused"):
        vms(dyn).get(name="vm1", namespace="default")
    kube_model.set_reachable(True)
    assert vms(dyn).get(name="vm1", namespace="default").metadata.name == "vm1"
    kube_model.set_reachable(False, refuse=False)
    with pytest.raises(ApiException) as err:
        vms(dyn).get(name="vm1", namespace="default")
    assert err.value.status == 503


def test_create_ignores_status_and_a_deleted_namespace_takes_its_objects(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    kube_model.controller.auto = False
    kube_model.put_object({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "team"}})
    created = vms(dyn).create(body={**vm(), "metadata": {"name": "vm1"},
                                    "status": {"printableStatus": "Running"}},
                              namespace="team")
    assert created.status is None
    with pytest.raises(NotFoundError):  # a namespace that does not exist
        vms(dyn).create(body={**vm(), "metadata": {"name": "vm1"}}, namespace="nowhere")
    dyn.resources.get(api_version="v1", kind="Namespace").delete(name="team")
    assert kube_model.objects(KV, "VirtualMachine", "team") == []


def test_delete_preconditions_on_uid_and_resource_version(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    kube_model.controller.auto = False
    first = apply(dyn, vm()).metadata
    vms(dyn).delete(name="vm1", namespace="default")
    apply(dyn, vm())  # recreated: same name, another uid
    with pytest.raises(ConflictError) as err:
        vms(dyn).delete(name="vm1", namespace="default",
                        body={"preconditions": {"uid": first.uid}})
    assert "Precondition failed: UID" in status_of(err.value)["message"]
    current = the_vm(kube_model)["metadata"]
    with pytest.raises(ConflictError):
        vms(dyn).delete(name="vm1", namespace="default", body={
            "preconditions": {"resourceVersion": first.resourceVersion}})
    vms(dyn).delete(name="vm1", namespace="default", body={
        "apiVersion": "v1", "preconditions": {"uid": current["uid"],
                                              "resourceVersion": current["resourceVersion"]}})
    assert kube_model.get(KV, "VirtualMachine", "default", "vm1") is None
