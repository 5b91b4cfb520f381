"""Argo CD health Lua for kubevirt.io VirtualMachine / VirtualMachineInstance, run in Lua 5.1
(lupa) with only what Argo CD gives argocd-cm scripts (tests/gitops/lua_sandbox.py)."""

from __future__ import annotations

import copy
import locale
import re
from typing import Any

import pytest
from health_cases import (
    DIFFERENT_FROM_UPSTREAM,
    KINDS,
    PRINTABLE_STATUSES,
    UPSTREAM,
    UPSTREAM_SKIP,
    VMI_PHASES,
    Case,
    load_object,
    our_cases,
    script,
    upstream_cases,
)
from lua_sandbox import ArgoHealth, HealthStatus, LuaHealthError, Sandbox

from node.lifecycle.decide import RUN_STRATEGIES

OURS = our_cases()
UPSTREAM_CASES = upstream_cases()


@pytest.fixture(scope="module")
def lua() -> Sandbox:
    return Sandbox()


def health(lua: Sandbox, kind: str, obj: Any) -> HealthStatus:
    return lua.run(script(kind), obj)


@pytest.mark.parametrize("case", OURS, ids=[c.id for c in OURS])
def test_health_of_our_cases(lua: Sandbox, case: Case) -> None:
    assert health(lua, case.kind, case.obj) == case.expected


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in OURS + UPSTREAM_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.skipif(UPSTREAM_SKIP, reason=f"upstream Argo CD fixtures not at {UPSTREAM}")
def test_upstream_cases_are_all_there() -> None:
    assert len(UPSTREAM_CASES) == 10
    assert set(DIFFERENT_FROM_UPSTREAM) <= {c.id for c in UPSTREAM_CASES}


@pytest.mark.parametrize("case", UPSTREAM_CASES, ids=[c.id for c in UPSTREAM_CASES])
def test_upstream_cases_replayed(lua: Sandbox, case: Case) -> None:
    assert health(lua, case.kind, case.obj) == case.expected


@pytest.mark.skipif(UPSTREAM_SKIP, reason=f"upstream Argo CD fixtures not at {UPSTREAM}")
def test_upstream_unreferenced_pending_fixture(lua: Sandbox) -> None:
    # Upstream keeps this one (a List around a Pending VMI) but never runs it.
    path = UPSTREAM / "VirtualMachineInstance" / "testdata" / "progressing_pending.yaml"
    assert health(lua, "VirtualMachineInstance", load_object(path)) == HealthStatus(
        ArgoHealth.PROGRESSING, "Pending")


def _vm_cases() -> list[Case]:
    return [c for c in OURS if c.kind == "VirtualMachine"]


def _strategy(obj: dict[str, Any]) -> str:
    spec = obj["spec"]
    if "runStrategy" in spec:
        return str(spec["runStrategy"])
    return "Always" if spec.get("running") else "Halted"


def test_cases_cover_every_printable_status_and_vmi_phase() -> None:
    printable = {c.obj.get("status", {}).get("printableStatus") for c in _vm_cases()}
    assert set(PRINTABLE_STATUSES) <= printable
    phases = {c.obj["status"].get("phase") for c in OURS if c.kind == "VirtualMachineInstance"}
    assert set(VMI_PHASES) <= phases


def test_cases_cover_every_run_strategy_stopped_and_running() -> None:
    seen = {(_strategy(c.obj), c.obj.get("status", {}).get("printableStatus"))
            for c in _vm_cases()}
    for strategy in [*sorted(RUN_STRATEGIES), "WaitAsReceiver"]:
        assert (strategy, "Stopped") in seen, strategy
        # Halted cannot run: KubeVirt reports a running Halted VM as Stopping.
        active = {"Stopping"} if strategy == "Halted" else {"Running", "WaitingForReceiver"}
        assert any((strategy, p) in seen for p in active), strategy
    # The legacy field both ways, and neither field set.
    specs = [c.obj["spec"] for c in _vm_cases()]
    assert {True, False} <= {s["running"] for s in specs if "running" in s}
    assert any("running" not in s and "runStrategy" not in s for s in specs)


@pytest.mark.parametrize(("printable", "expected"), [
    ("Error", ArgoHealth.DEGRADED),
    ("ErrorSomethingNew", ArgoHealth.DEGRADED),
    ("Errorzzz", ArgoHealth.DEGRADED),
    ("Erro", ArgoHealth.PROGRESSING),
    ("Erros", ArgoHealth.PROGRESSING),
    ("ErrImagePullSomething", ArgoHealth.PROGRESSING),
    ("error", ArgoHealth.PROGRESSING),
])
def test_error_prefix_without_the_string_library(lua: Sandbox, printable: str,
                                                 expected: ArgoHealth) -> None:
    # Any Error* printableStatus is Degraded; the script tests the prefix by byte order,
    # as gopher-lua compares strings. C Lua uses strcoll: only the C collation is bytewise.
    assert locale.setlocale(locale.LC_COLLATE) in ("C", "POSIX")
    obj = copy.deepcopy(next(c.obj for c in _vm_cases() if c.id.endswith("progressing_starting")))
    obj["status"]["printableStatus"] = printable
    assert health(lua, "VirtualMachine", obj).status == expected


@pytest.mark.parametrize("snippet", [
    'return {status = string.lower("HEALTHY")}',
    'return {status = ("Healthy"):sub(1)}',
    "return {status = tostring(math.floor(1.5))}",
    'return {status = io.read("*a")}',
    "return {status = tostring(getfenv(0).string)}",
])
def test_sandbox_has_no_string_math_or_io(lua: Sandbox, snippet: str) -> None:
    with pytest.raises(LuaHealthError):
        lua.run(snippet, {})


def test_sandbox_has_base_table_and_safe_os(lua: Sandbox) -> None:
    ok = ('local t = {} table.insert(t, "Hea") table.insert(t, "lthy")\n'
          'return {status = table.concat(t), message = type(os.time()) .. #obj.x}')
    assert lua.run(ok, {"x": "abc"}) == HealthStatus(ArgoHealth.HEALTHY, "number3")
    assert lua.run("return {status = tostring(os.exit)}", {}).status == ArgoHealth.UNKNOWN


def test_an_invalid_status_is_unknown_as_in_argo(lua: Sandbox) -> None:
    assert lua.run('return {status = "Fine"}', {}) == HealthStatus(
        ArgoHealth.UNKNOWN, "Lua returned an invalid health status")


@pytest.mark.parametrize("kind", KINDS)
def test_scripts_name_no_library_argo_withholds(kind: str) -> None:
    # Belt and braces for branches no case reaches: no library Argo withholds is named.
    code = re.sub(r"--[^\n]*", "", script(kind))
    text = re.sub(r'"[^"\n]*"', '""', code)  # string literals ("string" is a type name)
    assert not re.search(r"\b(string|math|io|debug|coroutine|require|load\w*)\b", text)
    assert not re.search(r"\w:\w+\(", text)  # method calls (string methods included)
