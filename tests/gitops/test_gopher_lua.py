"""The health scripts under gopher-lua itself (Argo CD's Lua), with Argo CD's library set for
argocd-cm scripts, through a small Go runner (tests/gitops/gopherlua/main.go) built against
Debian's gopher-lua source package (scripts/setup.sh installs it and Go). Debian's snapshot
is older than the gopher-lua release Argo CD pins; the language and libraries these scripts
use are the same. Skipped where Go or the source is missing, except in CI."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from health_cases import Case, our_cases, script, upstream_cases
from lua_sandbox import ArgoHealth, HealthStatus

RUNNER_SRC = Path(__file__).resolve().parent / "gopherlua"
GOPATH = Path("/usr/share/gocode")  # Debian's Go source packages
GOPHER_LUA = GOPATH / "src" / "github.com" / "yuin" / "gopher-lua"
GO = shutil.which("go")
AVAILABLE = GO is not None and GOPHER_LUA.is_dir()

pytestmark = pytest.mark.skipif(not AVAILABLE and os.environ.get("CI") != "true",
                                reason="Go or Debian's gopher-lua source not installed")

CASES = our_cases() + upstream_cases()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert AVAILABLE, "scripts/setup.sh installs golang-go and golang-github-yuin-gopher-lua-dev"
    binary = tmp_path_factory.mktemp("gopherlua") / "health-runner"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": ""}
    if "GOCACHE" not in env and not env.get("HOME"):
        env["GOCACHE"] = str(binary.parent / "cache")  # go needs one; ~5 s to fill
    subprocess.run([str(GO), "build", "-o", str(binary), "main.go"], cwd=RUNNER_SRC, env=env,
                   check=True, capture_output=True, text=True)
    return binary


def run(runner: Path, jobs: list[tuple[str, Any]]) -> list[dict[str, str]]:
    payload = json.dumps([{"script": s, "obj": obj} for s, obj in jobs])
    out = subprocess.run([str(runner)], input=payload, capture_output=True, text=True,
                         check=True).stdout
    results: list[dict[str, str]] = json.loads(out)
    return results


@pytest.fixture(scope="module")
def results(runner: Path) -> dict[str, dict[str, str]]:
    answers = run(runner, [(script(c.kind), c.obj) for c in CASES])
    return {c.id: a for c, a in zip(CASES, answers, strict=True)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gopher_lua_gives_the_expected_health(results: dict[str, dict[str, str]],
                                              case: Case) -> None:
    answer = results[case.id]
    assert "error" not in answer, answer
    assert HealthStatus(ArgoHealth(answer["status"]), answer["message"]) == case.expected


def test_gopher_lua_compares_the_error_prefix_bytewise(runner: Path) -> None:
    base = next(c.obj for c in CASES if c.id == "VirtualMachine/progressing_starting")
    values = {"Error": "Degraded", "Errorzzz": "Degraded", "Erro": "Progressing",
              "Erros": "Progressing", "ErrImagePullX": "Progressing"}
    jobs = []
    for printable in values:
        obj = copy.deepcopy(base)
        obj["status"]["printableStatus"] = printable
        jobs.append((script("VirtualMachine"), obj))
    assert [a["status"] for a in run(runner, jobs)] == list(values.values())


def test_argocd_cm_scripts_get_no_string_or_math(runner: Path) -> None:
    # What the lupa sandbox imitates, shown on gopher-lua with Argo CD's library set.
    answers = run(runner, [
        ('return {status = string.lower("HEALTHY")}', {}),
        ('return {status = ("Healthy"):sub(1)}', {}),
        ("return {status = tostring(math.floor(1.5))}", {}),
        ('return {status = "Healthy", message = type(os.time()) .. tostring(os.exit)}', {}),
    ])
    assert all("error" in a for a in answers[:3]), answers
    assert answers[3] == {"status": "Healthy", "message": "numbernil"}
