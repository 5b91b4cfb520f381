"""node.identity.records.overlay_drift copies only what it changes (issue 13: the deep
copy was a third of a host-mode observe). The applied body it reads must come out
untouched, so the next observe of the same record, or of another node's facts, sees
the applied values and not an earlier overlay (rule 17: identity shown is the live one)."""

from __future__ import annotations

import copy
from typing import Any

from node.identity.records import DomainFacts, Effective, overlay_drift

EXPECTED = Effective(sockets=1, cores=2, threads=1, memory_kib=131072)


def applied() -> dict[str, Any]:
    domain = {"cpu": {"sockets": 1, "cores": 2, "threads": 1, "model": "host-model"},
              "memory": {"guest": "128Mi"},
              "devices": {"interfaces": [{"name": "default", "masquerade": {}},
                                         {"name": "other", "bridge": {}}],
                          "disks": [{"name": "root", "disk": {"bus": "virtio"}}, "odd"]}}
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "vm1", "namespace": "ns1", "labels": {"a": "b"}},
            "spec": {"runStrategy": "Always",
                     "template": {"spec": {"domain": domain,
                                           "volumes": [{"name": "root"}]}}}}


def facts(mac: str, serial: str, cores: int, memory_kib: int) -> DomainFacts:
    return DomainFacts(sockets=1, cores=cores, threads=1, vcpus=cores, memory_kib=memory_kib,
                       macs={"default": mac}, disk_serials={"root": serial})


def test_overlay_leaves_the_applied_body_untouched_and_overlays_stay_apart() -> None:
    body = applied()
    before = copy.deepcopy(body)
    one = overlay_drift(body, EXPECTED, facts("02:00:00:00:00:01", "S1", 4, 262144),
                        uuid="u-1", serial="s-1")
    two = overlay_drift(body, EXPECTED, facts("02:00:00:00:00:02", "S2", 2, 131072),
                        uuid="u-2", serial="")
    assert body == before
    d1, d2 = (o["spec"]["template"]["spec"]["domain"] for o in (one, two))
    assert d1["cpu"] == {"sockets": 1, "cores": 4, "threads": 1, "model": "host-model"}
    assert d1["memory"] == {"guest": "262144Ki"}
    assert d1["firmware"] == {"uuid": "u-1", "serial": "s-1"}
    assert d1["devices"]["interfaces"][0]["macAddress"] == "02:00:00:00:00:01"
    assert d1["devices"]["disks"][0]["serial"] == "S1"
    assert d2["cpu"] == before["spec"]["template"]["spec"]["domain"]["cpu"]  # no drift
    assert d2["firmware"] == {"uuid": "u-2"}
    assert d2["devices"]["interfaces"][0]["macAddress"] == "02:00:00:00:00:02"
    assert d2["devices"]["disks"] == [{"name": "root", "disk": {"bus": "virtio"},
                                       "serial": "S2"}, "odd"]
    assert "macAddress" not in d2["devices"]["interfaces"][1]
    assert one["metadata"] == two["metadata"] == before["metadata"]


def test_overlay_of_a_body_without_devices_or_spec() -> None:
    for body in ({"kind": "VirtualMachine", "spec": {"template": {"spec": {"domain": {}}}}},
                 {"kind": "VirtualMachine"}):
        before = copy.deepcopy(body)
        out = overlay_drift(body, EXPECTED, facts("02:00:00:00:00:09", "S9", 2, 131072),
                            uuid="u-9", serial="s-9")
        assert body == before
        assert out["spec"]["template"]["spec"]["domain"] == {
            "firmware": {"uuid": "u-9", "serial": "s-9"}}
