"""The plan memo's digest (reconciler.planning.unchanged): a skip is only ever taken when
every input plan_update reads is the same — the desired body, the observed body, node,
power facts, disk files, the placement — and the same virtsync and planner code."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.core.model import DiskFile, Manifest, SourceRef
from reconciler.planning import unchanged
from reconciler.planning.plan_model import Observed
from reconciler.planning.unchanged import UnchangedMemo
from reconciler.tree.desired import body_hash

BODY = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "web", "namespace": "m"}, "spec": {"runStrategy": "Always"}}


def _desired(body: dict = BODY) -> Manifest:
    return Manifest("kubevirt.io/v1", "VirtualMachine", "m", "web", body, SourceRef("f.yaml"))


def _observed(**kw: object) -> Observed:
    base = {"manifest": replace(_desired(), source=SourceRef("<live:n1>")), "node": "n1",
            "running": True,
            "disks": (DiskFile("root", "dataVolume", "/s/root.qcow2", True, "web-root"),)}
    return Observed(**{**base, **kw})  # type: ignore[arg-type]


def _known(desired: Manifest, obs: Observed, node: str | None) -> UnchangedMemo:
    first = UnchangedMemo({}, {desired.key: body_hash(desired.body)})
    first.keep(first.digest(desired, obs, node), (("spec.x", "MAC address"),))
    return UnchangedMemo(first.kept, {desired.key: body_hash(desired.body)})


def test_the_same_inputs_hit_with_their_notes() -> None:
    memo = _known(_desired(), _observed(), "n1")
    assert memo.hit(memo.digest(_desired(), _observed(), "n1")) == (("spec.x", "MAC address"),)


@pytest.mark.parametrize("change", [
    {"running": False}, {"node": "n2"}, {"operator_stop": True}, {"backoff": True},
    {"disks": (DiskFile("root", "dataVolume", "/s/root.qcow2", False, "web-root"),)},
    {"manifest": replace(_desired({**BODY, "spec": {"runStrategy": "Halted"}}),
                         source=SourceRef("<live:n1>"))},
])
def test_any_observed_change_misses(change: dict) -> None:
    memo = _known(_desired(), _observed(), "n1")
    assert memo.hit(memo.digest(_desired(), _observed(**change), "n1")) is None


def test_a_changed_file_or_placement_misses_and_no_hash_never_skips() -> None:
    memo = _known(_desired(), _observed(), "n1")
    assert memo.hit(memo.digest(_desired(), _observed(), "n2")) is None  # placed elsewhere
    edited = _desired({**BODY, "metadata": {**BODY["metadata"], "labels": {"a": "b"}}})
    fresh = UnchangedMemo(memo.known, {edited.key: body_hash(edited.body)})
    assert fresh.hit(fresh.digest(edited, _observed(), "n1")) is None
    assert UnchangedMemo(memo.known, {}).digest(_desired(), _observed(), "n1") is None


def test_another_virtsync_version_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    memo = _known(_desired(), _observed(), "n1")
    monkeypatch.setattr(unchanged, "__version__", "99.0")
    unchanged.code_digest.cache_clear()
    try:
        assert memo.hit(memo.digest(_desired(), _observed(), "n1")) is None
    finally:
        monkeypatch.undo()
        unchanged.code_digest.cache_clear()
