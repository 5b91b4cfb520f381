"""Fuzzing load → validate → plan (Hypothesis): whatever the bytes, the only exception
that may escape is virtsync's own user-facing error; everything else is a finding.

Three generators: arbitrary bytes, YAML text from arbitrary JSON-like structures, and
mutations of a realistic VM (fields removed, replaced by random values, lists shuffled).
The number of inputs tried is printed at the end of the run (pytest -s) and is set by
VIRTSYNC_FUZZ_EXAMPLES (default 300 per generator; the suite keeps it small).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.backends.libvirt_profile import PROFILE
from reconciler.check.validate import check_bytes
from reconciler.core.model import VirtsyncError
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_model import Fingerprints, Observed
from reconciler.render.json import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import render_text

EXAMPLES = int(os.environ.get("VIRTSYNC_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FP = Fingerprints(None, None, "sha256:x", "fuzz", "sha256:y")
LIBVIRT = PROFILE.classification
TRIED: dict[str, int] = {}

BASE_VM: dict[str, Any] = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachine",
    "metadata": {"name": "fuzz", "namespace": "default", "labels": {"app": "x"}},
    "spec": {
        "runStrategy": "Always",
        "template": {"spec": {
            "domain": {
                "cpu": {"cores": 2},
                "memory": {"guest": "1Gi"},
                "firmware": {"uuid": "6a1a2fd4-8a6c-4d1b-9d65-1f2c3b4a5d6e"},
                "devices": {
                    "disks": [{"name": "root", "disk": {"bus": "virtio"}},
                              {"name": "ci", "disk": {"bus": "virtio"}}],
                    "interfaces": [{"name": "default", "masquerade": {},
                                    "macAddress": "02:00:00:00:00:01"}],
                },
            },
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "root", "containerDisk": {"image": "x.qcow2"}},
                        {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config"}}],
        }},
    },
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=False), st.text(max_size=20))
json_like = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=30)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_vm(draw: st.DrawFn) -> dict[str, Any]:
    vm = copy.deepcopy(BASE_VM)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(vm) if p]
        path = draw(st.sampled_from(paths))
        parent = vm
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["delete", "replace", "duplicate"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(json_like)
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        paths_left = _paths(vm)
        if not paths_left:
            break
    return vm


def pipeline(content: bytes, label: str) -> None:
    TRIED[label] = TRIED.get(label, 0) + 1
    try:
        report = check_bytes(content, "fuzz.yaml", keep_manifests=True)
    except VirtsyncError:
        return
    valid = not [f for f in report.result.findings if f.severity == "error"]
    for f in report.result.findings:
        assert f.line >= 1 and f.column >= 1 and f.rule, f
    if not valid:
        return
    desired = list(report.manifests)
    base = check_bytes(yaml.safe_dump(BASE_VM).encode(), "base.yaml", keep_manifests=True)
    live = [Observed(m) for m in base.manifests]
    TRIED[f"{label} reached planner"] = TRIED.get(f"{label} reached planner", 0) + 1
    try:
        for plan in (make_plan(desired, live, fingerprints=FP, profile=LIBVIRT),
                     make_plan(desired, [Observed(m) for m in desired], fingerprints=FP, profile=LIBVIRT)):
            render_text(plan, color=False)
            render_markdown(plan)
            render_json(plan)
    except VirtsyncError:
        return
    assert make_plan(desired, [Observed(m) for m in desired], fingerprints=FP, profile=LIBVIRT).empty


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    pipeline(data, "bytes")


@FUZZ
@given(json_like)
def test_arbitrary_yaml_structures(doc: Any) -> None:
    pipeline(yaml.safe_dump(doc).encode(), "structures")


@FUZZ
@given(mutated_vm())
def test_mutated_vms(vm: dict[str, Any]) -> None:
    pipeline(yaml.safe_dump(vm).encode(), "mutated VMs")


def test_report_inputs_tried() -> None:
    # Runs last in this module (pytest keeps file order): says how much was tried.
    tried = {k: v for k, v in TRIED.items() if not k.endswith("reached planner")}
    print(f"\nfuzz inputs tried: {TRIED} (total {sum(tried.values())})")
    assert sum(tried.values()) >= 3
