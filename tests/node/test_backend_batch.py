"""The libvirt backend's batch preparation (issue 13) on the test driver: what a batch
expanded and parsed is reused by its creates only for the very inputs it was made from.
A create with other refs (an instancetype changed in between) expands again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest
from backend_helpers import TEST_URI, backend, manifest, vm_body
from lxml import etree

from reconciler.core.model import Manifest

IT_API = "instancetype.kubevirt.io/v1beta1"


def _instancetype(vcpus: int) -> Manifest:
    return manifest({"metadata": {"name": "sized", "namespace": ""},
                     "spec": {"cpu": {"guest": vcpus}, "memory": {"guest": "128Mi"}}},
                    "VirtualMachineClusterInstancetype", IT_API)


@pytest.fixture
def conn() -> Any:
    c = libvirt.open(TEST_URI)
    yield c
    for dom in c.listAllDomains():
        if dom.name().startswith("batch_"):
            dom.undefine()
    c.close()


@pytest.mark.parametrize("same_refs", [True, False], ids=["same refs", "refs changed"])
def test_a_create_uses_the_batch_expansion_only_for_the_same_refs(
        tmp_path: Path, conn: Any, same_refs: bool) -> None:
    body = vm_body("sized", "batch", run_strategy="Halted")
    domain = body["spec"]["template"]["spec"]["domain"]
    del domain["cpu"], domain["memory"]
    body["spec"]["instancetype"] = {"name": "sized"}
    vm = manifest(body)
    before = {vm.key: vm, _instancetype(1).key: _instancetype(1)}
    after = before if same_refs else {vm.key: vm, _instancetype(2).key: _instancetype(2)}
    b = backend(tmp_path)
    try:
        b.prepare_creates([(vm, "n1")], before)
        b.create(vm, revision="r1", refs=after, node="n1")
        xml = etree.fromstring(conn.lookupByName("batch_sized").XMLDesc(0))
        assert int(xml.findtext("vcpu")) == (1 if same_refs else 2)
    finally:
        b.close()
