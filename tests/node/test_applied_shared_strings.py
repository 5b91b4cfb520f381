"""The applied body read from a domain's metadata is the JSON as written, with its keys and
short strings shared between domains (a watch keeps one body per domain; issue 13)."""

from __future__ import annotations

import json

from lxml import etree

from node.identity.records import APPLIED_NS, Effective, applied_element, parse_applied

EFFECTIVE = Effective(sockets=1, cores=2, threads=1, memory_kib=65536, macs={"default": "x"})


def _body(name: str) -> dict[str, object]:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "labels": {"tier": "web", "z": "", "a": "1"}},
            "spec": {"runStrategy": "Halted", "template": {"spec": {
                "domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]},
                           "cpu": {"cores": 2}, "memory": {"guest": "64Mi"}},
                "volumes": [{"name": "root", "containerDisk": {"image": "x" * 300}}],
                "flags": [True, None, 1.5, -3, [], {}]}}}}


def test_the_body_reads_back_exactly_as_plain_json() -> None:
    el = applied_element(_body("a"), EFFECTIVE)
    got = parse_applied(el)
    assert got.body == json.loads(el.text or "")["body"]
    assert json.dumps(got.body) == json.dumps(json.loads(el.text or "")["body"])  # order too
    assert got.effective == EFFECTIVE


def test_a_duplicate_key_keeps_its_last_value_as_plain_json_does() -> None:
    text = '{"body": {"a": 1, "b": 2, "a": 3}, "effective": ' + \
        json.dumps(EFFECTIVE.to_json()) + "}"
    el = etree.Element(f"{{{APPLIED_NS}}}applied")
    el.text = text
    assert json.dumps(parse_applied(el).body) == json.dumps(json.loads(text)["body"])


def test_two_domains_share_keys_and_short_strings() -> None:
    one = parse_applied(applied_element(_body("a"), EFFECTIVE)).body
    two = parse_applied(applied_element(_body("b"), EFFECTIVE)).body
    (k1,), (k2,) = ([k for k in b if k == "apiVersion"] for b in (one, two))
    assert k1 is k2
    assert one["spec"]["runStrategy"] is two["spec"]["runStrategy"]  # type: ignore[index]
