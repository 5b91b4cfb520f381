"""KubeVirt's live-update rules (reconciler/backends/kubevirt/rules.py, table in
docs/plan.md): one test per row, each with two different cases, plus through the CLI.

The class expected for each case is stated here from KubeVirt's behaviour, not read from
the rules: with the `LiveUpdate` rollout strategy CPU sockets and guest memory hotplug by
live migration within maxSockets/maxGuest (default 4x, KubeVirt's maxHotplugRatio),
placement and hotpluggable volumes are live, interfaces and everything else set
RestartRequired; with `Stage` every template change does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from plan_helpers import P, profile, vm
from plan_repo import Repo

from reconciler.backends.kubevirt.rules import RULES, RolloutStrategy
from reconciler.planning.classify import Context, Disruption, Verdict, classify
from reconciler.planning.diff import MISSING, FieldDiff
from reconciler.planning.normalize import normalize

TPL = "spec.template.spec"
DEV = f"{TPL}.domain.devices"
N, L, R, D = Disruption.NONE, Disruption.LIVE, Disruption.RESTART, Disruption.DATA_LOSS
M = MISSING
LU, ST = "kubevirt:LiveUpdate", "kubevirt:Stage"


def body(*, cpu: dict[str, Any] | None = None, memory: dict[str, Any] | None = None,
         volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return normalize("VirtualMachine", {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "a"},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"cpu": cpu or {}, "memory": memory or {"guest": "1Gi"},
                       "devices": {}},
            "volumes": volumes or []}}},
    })


EMPTY = body()
HOT_DV = [{"name": "data", "dataVolume": {"name": "data-dv", "hotpluggable": True}}]
HOT_PVC = [{"name": "scratch", "persistentVolumeClaim": {"claimName": "s",
                                                          "hotpluggable": True}}]
PVC = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]


@dataclass(frozen=True)
class Case:
    disruption: Disruption
    path: str
    before: Any
    after: Any
    strategy: str = LU
    ctx_before: Any = None
    ctx_after: Any = None

    def verdict(self) -> Verdict:
        ctx = Context("VirtualMachine", self.ctx_before or EMPTY, self.ctx_after or EMPTY)
        return classify(FieldDiff(P(self.path), self.before, self.after), ctx,
                        profile(self.strategy))


def sockets(n: int, top: int | None = None) -> dict[str, Any]:
    return body(cpu={"sockets": n, **({"maxSockets": top} if top else {})})


def guest(size: str, top: str | None = None) -> dict[str, Any]:
    return body(memory={"guest": size, **({"maxGuest": top} if top else {})})


SOCKETS, GUEST = f"{TPL}.domain.cpu.sockets", f"{TPL}.domain.memory.guest"
RR = "KubeVirt sets RestartRequired: applied at the next restart"
PLACED = "placement: updated on the running VMI (LiveUpdate)"

# reason of the deciding row, two different cases it decides (one entry per row)
TABLE: list[tuple[str, tuple[Case, Case]]] = [
    # -- either strategy
    (RR, (Case(R, f"{TPL}.terminationGracePeriodSeconds", 0, 30),
          Case(R, f"{TPL}.terminationGracePeriodSeconds", 30, M, strategy=ST))),
    (RR, (Case(R, f"{TPL}.evictionStrategy", "None", "LiveMigrate"),
          Case(R, f"{TPL}.evictionStrategy", M, "External", strategy=ST))),
    ("interface added or removed: " + RR, (
        Case(R, f"{DEV}.interfaces[name=blue]", M, {"bridge": {}}),
        Case(R, f"{DEV}.interfaces[name=default]", {"masquerade": {}}, M, strategy=ST))),
    ("network added or removed: " + RR, (
        Case(R, f"{TPL}.networks[name=blue]", M, {"multus": {"networkName": "blue"}}),
        Case(R, f"{TPL}.networks[name=default]", {"pod": {}}, M, strategy=ST))),
    # -- LiveUpdate
    ("CPU hotplug up to maxSockets: KubeVirt live-migrates the VM", (
        Case(L, SOCKETS, 1, 4, ctx_before=sockets(1), ctx_after=sockets(4)),  # 4x default
        Case(L, SOCKETS, 2, 8, ctx_before=sockets(2, 8), ctx_after=sockets(8, 8)))),
    ("fewer sockets or beyond maxSockets: KubeVirt sets RestartRequired", (
        Case(R, SOCKETS, 4, 2, ctx_before=sockets(4), ctx_after=sockets(2)),
        Case(R, SOCKETS, 1, 5, ctx_before=sockets(1), ctx_after=sockets(5)))),
    ("memory hotplug up to maxGuest: KubeVirt live-migrates the VM", (
        Case(L, GUEST, "1Gi", "2048Mi", ctx_before=guest("1Gi"), ctx_after=guest("2048Mi")),
        Case(L, GUEST, "2Gi", "16Gi", ctx_before=guest("2Gi", "16Gi"),
             ctx_after=guest("16Gi", "16Gi")))),
    ("less memory or beyond maxGuest: KubeVirt sets RestartRequired", (
        Case(R, GUEST, "2Gi", "1Gi", ctx_before=guest("2Gi"), ctx_after=guest("1Gi")),
        Case(R, GUEST, "1Gi", "3Gi", ctx_before=guest("1Gi", "2Gi"),
             ctx_after=guest("3Gi", "2Gi")))),
    (PLACED, (Case(L, f"{TPL}.nodeSelector.zone", "a", "b"),
              Case(L, f"{TPL}.nodeSelector", M, {"disk": "ssd"}))),
    (PLACED, (Case(L, f"{TPL}.affinity.nodeAffinity", M, {"x": 1}),
              Case(L, f"{TPL}.affinity.podAntiAffinity.x", 1, 2))),
    (PLACED, (Case(L, f"{TPL}.tolerations", M, [{"key": "dedicated", "operator": "Exists"}]),
              Case(L, f"{TPL}.tolerations[0].effect", "NoSchedule", "NoExecute"))),
    ("Multus network swapped: KubeVirt live-migrates the VM", (
        Case(L, f"{TPL}.networks[name=blue].multus.networkName", "blue", "green"),
        Case(L, f"{TPL}.networks[name=storage].multus.networkName", "ns1/a", "ns2/a"))),
    # hotpluggable volumes: COMMON_RULES' hotplug rows, live with LiveUpdate
    ("hotplugged volume", (
        Case(L, f"{TPL}.volumes[name=data]", M, HOT_DV[0], ctx_after=body(volumes=HOT_DV)),
        Case(L, f"{TPL}.volumes[name=scratch]", M, HOT_PVC[0],
             ctx_after=body(volumes=HOT_PVC)))),
    ("hot-unplugged volume", (
        Case(L, f"{TPL}.volumes[name=data]", HOT_DV[0], M, ctx_before=body(volumes=HOT_DV)),
        Case(L, f"{TPL}.volumes[name=scratch]", HOT_PVC[0], M,
             ctx_before=body(volumes=HOT_PVC)))),
    ("hotplugged disk", (
        Case(L, f"{DEV}.disks[name=data]", M, {"disk": {"bus": "scsi"}},
             ctx_after=body(volumes=HOT_DV)),
        Case(L, f"{DEV}.disks[name=scratch]", {"disk": {"bus": "scsi"}}, M,
             ctx_before=body(volumes=HOT_PVC)))),
    # -- Stage: nothing in the template reaches a running VM
    ("volume hotplug needs LiveUpdate: " + RR, (
        Case(R, f"{TPL}.volumes[name=data]", M, HOT_DV[0], ST, ctx_after=body(volumes=HOT_DV)),
        Case(R, f"{TPL}.volumes[name=scratch]", HOT_PVC[0], M, ST,
             ctx_before=body(volumes=HOT_PVC)))),
    ("disk hotplug needs LiveUpdate: " + RR, (
        Case(R, f"{DEV}.disks[name=data]", M, {"disk": {"bus": "scsi"}}, ST,
             ctx_after=body(volumes=HOT_DV)),
        Case(R, f"{DEV}.disks[name=scratch]", {"disk": {}}, M, ST,
             ctx_before=body(volumes=HOT_PVC)))),
    ("memory hotplug needs LiveUpdate: " + RR, (
        Case(R, GUEST, "1Gi", "2Gi", ST, guest("1Gi", "4Gi"), guest("2Gi", "4Gi")),
        Case(R, GUEST, "2Gi", "3Gi", ST, guest("2Gi"), guest("3Gi")))),
    ("CPU hotplug needs LiveUpdate: " + RR, (
        Case(R, SOCKETS, 1, 2, ST, sockets(1), sockets(2)),
        Case(R, SOCKETS, 2, 3, ST, sockets(2, 4), sockets(3, 4)))),
    ("placement: " + RR, (Case(R, f"{TPL}.tolerations", M, [{"key": "k"}], ST),
                         Case(R, f"{TPL}.tolerations[0].effect", "NoSchedule",
                              "NoExecute", ST))),
    ("placement: takes effect when rescheduled", (  # COMMON_RULES' rows, reached with Stage
        Case(R, f"{TPL}.nodeSelector.zone", "a", "b", ST),
        Case(R, f"{TPL}.affinity.nodeAffinity", M, {"x": 1}, ST))),
]
ALL = [(reason, case) for reason, cases in TABLE for case in cases]


@pytest.mark.parametrize(("reason", "case"), ALL,
                         ids=[f"{c.strategy}:{c.path}:{c.before}->{c.after}" for _, c in ALL])
def test_row_decides(reason: str, case: Case) -> None:
    verdict = case.verdict()
    assert (verdict.disruption, profile(case.strategy).rules[verdict.rule].reason) == \
        (case.disruption, reason)


def test_every_kubevirt_row_decides_two_cases() -> None:
    """Every row of both strategies decides at least two different cases above."""
    decided: dict[int, set[tuple[str, str]]] = {}
    for _, case in ALL:
        rule = profile(case.strategy).rules[case.verdict().rule]
        decided.setdefault(id(rule), set()).add((case.path, repr(case.before)))
    thin = [f"{s}: {r.pattern} ({r.reason})" for s in RolloutStrategy for r in RULES[s]
            if len(decided.get(id(r), ())) < 2]
    assert not thin


def test_default_is_live_update_and_identity_and_data_loss_still_win() -> None:
    default = Case(L, SOCKETS, 1, 2, "kubevirt", sockets(1), sockets(2))
    assert default.verdict().disruption == L  # KubeVirt >= 1.6 default
    for strategy in (LU, ST):
        lost = Case(D, f"{TPL}.volumes[name=data]", PVC[0], M, strategy, body(volumes=PVC))
        assert lost.verdict().disruption == D
        uuid = Case(R, f"{TPL}.domain.firmware.uuid", "u1", "u2", strategy)
        assert uuid.verdict().identity
        # maxSockets itself changing is no hotplug
        grown = Case(R, SOCKETS, 2, 3, strategy, sockets(2, 2), sockets(3, 4))
        assert grown.verdict().disruption == R


# --- through the CLI ------------------------------------------------------------------

Run = Callable[..., tuple[int, str, str]]
CLUSTER = """\
apiVersion: virtsync.io/v1alpha1
kind: Cluster
metadata:
  name: lab
spec:
  backend: {backend}
{extra}"""


def _vm(socket_count: int, memory: str = "1Gi") -> str:
    return vm("web", memory=memory).replace("cores: 2", f"sockets: {socket_count}")


def _classes(run_cli: Run, base: str, *target: str) -> dict[str, str]:
    code, out, err = run_cli("plan", "vms", "--base", base, "-o", "json", *target)
    assert code == 1, err
    out_: dict[str, str] = {}
    for change in json.loads(out)["changes"]:
        out_ |= {f"{change['kind']}:{f['path']}": f["disruption"] for f in change["fields"]}
        out_[change["kind"]] = change["disruption"]
    return out_


def test_cli_target_picks_the_rules_for_the_same_change(repo: Repo, run_cli: Run) -> None:
    repo.write({"vms/web.yaml": _vm(1)})
    base = repo.commit("base")
    repo.write({"vms/web.yaml": _vm(2)})
    assert _classes(run_cli, base, "--target", "libvirt")["VirtualMachine"] == "restart"
    assert _classes(run_cli, base, "--target", "kubevirt")["VirtualMachine"] == "live"
    assert _classes(run_cli, base)["VirtualMachine"] == "restart"  # no Cluster object: libvirt
    # a different change, memory down: a restart on both
    repo.write({"vms/web.yaml": _vm(1, "512Mi")})
    assert _classes(run_cli, base, "--target", "kubevirt")["VirtualMachine"] == "restart"


def test_cli_rules_follow_the_cluster_config(repo: Repo, run_cli: Run) -> None:
    stage = "  kubevirt:\n    vmRolloutStrategy: Stage\n"
    repo.write({"vms/web.yaml": _vm(2, "1Gi"), "vms/cluster.yaml": CLUSTER.format(
        backend="kubevirt", extra="")})
    base = repo.commit("base")
    repo.write({"vms/web.yaml": _vm(2, "3Gi")})
    # the Cluster object's spec.backend is the default target; LiveUpdate the default
    assert _classes(run_cli, base)["VirtualMachine"] == "live"
    assert _classes(run_cli, base, "--target", "libvirt")["VirtualMachine"] == "restart"
    # Stage in the work tree's Cluster config: every template change is a restart
    repo.write({"vms/cluster.yaml": CLUSTER.format(backend="kubevirt", extra=stage)})
    classes = _classes(run_cli, base)
    assert classes[f"VirtualMachine:{GUEST}"] == "restart"
    assert classes["Cluster:spec.kubevirt"] == "none"  # virtsync configuration


def test_cli_a_bad_strategy_names_the_field_in_host_and_git_mode(repo: Repo,
                                                                  run_cli: Run) -> None:
    repo.write({"vms/web.yaml": _vm(1), "vms/cluster.yaml": CLUSTER.format(
        backend="kubevirt", extra="  kubevirt:\n    vmRolloutStrategy: Rolling\n")})
    base = repo.commit("base")
    # host mode with --target (issue 12): the invalid tree is refused before any cluster
    code, _, err = run_cli("plan", "vms", "--target", "kubevirt")
    assert code == 2 and "vmRolloutStrategy" in err
    code, out, err = run_cli("plan", "vms", "--base", base)
    assert code == 2 and out == ""
    assert "vms/cluster.yaml:8" in err and "vmRolloutStrategy" in err
