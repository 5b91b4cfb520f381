"""Flux healthCheckExprs for kubevirt.io (examples/flux/kustomization.yaml), evaluated with
cel-expr-python in Flux's order (tests/gitops/flux_cel.py), agree case by case with the
Argo CD Lua on the same objects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from flux_cel import (
    FluxResult,
    FluxStatus,
    HealthCheckExprs,
    evaluate,
    exprs_from_kustomization,
    select,
)
from health_cases import KUSTOMIZATION, Case, our_cases, script, upstream_cases
from lua_sandbox import ArgoHealth, Sandbox

CASES = our_cases() + upstream_cases()
CHECKS = exprs_from_kustomization(yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8")))

# Argo CD health → the Flux status with the same consequence. Flux has no Suspended: a
# paused VM is not what git asks for and not a failure, so Flux keeps waiting (as Argo CD's
# Suspended holds a sync wave) and reports the Kustomization not ready at its timeout.
LUA_TO_FLUX = {
    ArgoHealth.HEALTHY: FluxStatus.CURRENT,
    ArgoHealth.DEGRADED: FluxStatus.FAILED,
    ArgoHealth.PROGRESSING: FluxStatus.IN_PROGRESS,
    ArgoHealth.SUSPENDED: FluxStatus.IN_PROGRESS,
}
# Where Flux answers differently whatever the expressions say (docs/gitops.md):
FLUX_DIFFERS = {
    # Flux's observedGeneration gate: KubeVirt bumps status.observedGeneration only when the
    # running instance matches the template (kubevirt#18700).
    "VirtualMachine/healthy_running_restart_required": FluxStatus.IN_PROGRESS,
    "VirtualMachine/healthy_running_generation_not_observed": FluxStatus.IN_PROGRESS,
    # No `status` at all: cel-go cannot resolve the variable, the check errors, kstatus
    # says Unknown (not ready, like InProgress). KubeVirt writes a status within seconds.
    "VirtualMachine/progressing_no_status_field": FluxStatus.UNKNOWN,
}


@pytest.fixture(scope="module")
def lua() -> Sandbox:
    return Sandbox()


def flux(obj: dict[str, Any]) -> FluxResult:
    return evaluate(select(CHECKS, obj), obj)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_flux_agrees_with_the_lua(lua: Sandbox, case: Case) -> None:
    argo = lua.run(script(case.kind), case.obj)
    expected = FLUX_DIFFERS.get(case.id, LUA_TO_FLUX[argo.status])
    result = flux(case.obj)
    assert result.status == expected, result.error
    if expected != FluxStatus.UNKNOWN:
        assert result.error == ""


def test_every_divergence_is_a_case() -> None:
    assert set(FLUX_DIFFERS) <= {c.id for c in CASES}


@pytest.mark.parametrize("printable", [
    "Error", "ErrorSomethingNew", "Errorzzz", "Erro", "Erros", "ErrImagePullSomething", "error",
])
def test_error_prefix_agrees(lua: Sandbox, printable: str) -> None:
    base = next(c for c in CASES if c.id == "VirtualMachine/progressing_starting")
    obj = copy.deepcopy(base.obj)
    obj["status"]["printableStatus"] = printable
    assert flux(obj).status == LUA_TO_FLUX[lua.run(script("VirtualMachine"), obj).status]


def test_the_kustomization_waits_and_checks_both_kinds() -> None:
    doc = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert doc["spec"]["wait"] is True
    assert {(c.api_version, c.kind) for c in CHECKS} == {
        ("kubevirt.io/v1", "VirtualMachine"), ("kubevirt.io/v1", "VirtualMachineInstance")}
    assert all(c.current and c.in_progress and c.failed for c in CHECKS)


# The evaluator itself, against the rules of fluxcd/pkg runtime/cel StatusEvaluator.
def _exprs(current: str, in_progress: str = "", failed: str = "") -> HealthCheckExprs:
    return HealthCheckExprs("example.io/v1", "Thing", current, in_progress, failed)


def _obj(**flags: bool) -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"generation": 2},
            "status": {"observedGeneration": 2, **flags}}


@pytest.mark.parametrize(("flags", "expected"), [
    ({"c": True, "i": False, "f": False}, FluxStatus.CURRENT),
    ({"c": True, "i": False, "f": True}, FluxStatus.FAILED),
    ({"c": True, "i": True, "f": True}, FluxStatus.IN_PROGRESS),
    ({"c": False, "i": False, "f": False}, FluxStatus.IN_PROGRESS),
])
def test_evaluator_order(flags: dict[str, bool], expected: FluxStatus) -> None:
    exprs = _exprs("status.c", "status.i", "status.f")
    assert evaluate(exprs, _obj(**flags)).status == expected


def test_evaluator_generation_gate_comes_first() -> None:
    obj = _obj(c=True)
    obj["status"]["observedGeneration"] = 1
    assert evaluate(_exprs("status.c"), obj).status == FluxStatus.IN_PROGRESS
    del obj["status"]["observedGeneration"]  # absent: no gate
    assert evaluate(_exprs("status.c"), obj).status == FluxStatus.CURRENT


def test_evaluator_error_is_unknown() -> None:
    result = evaluate(_exprs("status.missing == 1"), _obj())
    assert result.status == FluxStatus.UNKNOWN and "missing" in result.error
    no_status = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {}}
    assert evaluate(_exprs("has(status.c)"), no_status).status == FluxStatus.UNKNOWN
