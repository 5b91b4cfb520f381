"""Safety rule 10 end to end (issue 14): a distinct canary in every secret-carrying field
appears in no output format of any command, no watch log line and no file under the state
directory — through the CLI, on libvirt's test driver.

Fields: cloud-init userData / userDataBase64 / networkData / networkDataBase64 for both
cloudInitNoCloud and cloudInitConfigDrive, a secret reference, password- and token-like
annotations. A base64 field is searched for both its encoded and decoded canary.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.test_apply_testdriver import Tree, conn, run, tree, vm

__all__ = ["conn", "tree"]  # fixtures, re-used from the apply tests


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def canary(field: str, generation: int) -> str:
    return f"CNRY{generation}-{field}-9d41"


FIELDS = ("nc-user", "nc-net", "nc-user64", "nc-net64", "cd-user", "cd-net", "cd-user64",
          "cd-net64", "secretref", "ann-password", "ann-token")


def secret_vm(name: str, generation: int, *, cores: int = 1, drive: bool = True
              ) -> dict[str, Any]:
    """A VM carrying a canary (for this generation) in every secret field. The libvirt
    backend has neither config drives nor secret references: `drive=False` leaves those
    out for the commands that reach the host."""
    def c(field: str) -> str:
        return canary(field, generation)

    body = vm(name, cores=cores, annotations={
        "example.com/admin-password": c("ann-password"),
        "example.com/API_Token": c("ann-token"),
    })
    tpl = body["spec"]["template"]["spec"]
    names = ("nc", "cd", "nc64", "cd64") if drive else ("nc", "nc64")
    tpl["domain"]["devices"]["disks"] += [{"name": n, "disk": {"bus": "virtio"}}
                                          for n in names]
    tpl["volumes"] += [
        {"name": "nc", "cloudInitNoCloud": {
            "userData": f"#cloud-config\npassword: {c('nc-user')}\n",
            "networkData": f"version: 2  # {c('nc-net')}\n"}},
        {"name": "cd", "cloudInitConfigDrive": {
            "userData": f"#cloud-config\npassword: {c('cd-user')}\n",
            "networkData": f"version: 2  # {c('cd-net')}\n"}},
        {"name": "nc64", "cloudInitNoCloud": {
            "userDataBase64": b64(f"#cloud-config\npassword: {c('nc-user64')}\n"),
            "networkDataBase64": b64(f"version: 2  # {c('nc-net64')}\n")}},
        {"name": "cd64", "cloudInitConfigDrive": {
            "userDataBase64": b64(f"#cloud-config\npassword: {c('cd-user64')}\n"),
            "networkDataBase64": b64(f"version: 2  # {c('cd-net64')}\n"),
            "secretRef": {"name": c("secretref")}}},
    ]
    if not drive:
        tpl["volumes"] = [v for v in tpl["volumes"] if v["name"] not in ("cd", "cd64")]
    return body


def needles(generation: int) -> list[str]:
    """Every form in which a canary could leak: plain, and the base64 the spec holds."""
    out = [canary(f, generation) for f in FIELDS]
    out += [b64(f"#cloud-config\npassword: {canary(f, generation)}\n")
            for f in ("nc-user64", "cd-user64")]
    out += [b64(f"version: 2  # {canary(f, generation)}\n") for f in ("nc-net64", "cd-net64")]
    out.append("CNRY")  # any canary at all, even cut short
    return out


def assert_clean(where: str, text: str | bytes) -> None:
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    leaked = [n for g in (1, 2) for n in needles(g) if n in data]
    assert not leaked, f"secret canary leaked in {where}: {leaked[:3]}"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run(*argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@virtsync.invalid",
                    "-c", "user.name=test", *args], check=True, capture_output=True)


def test_no_canary_in_any_output_or_state_file(conn: Any, tree: Tree, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tree.root)
    seen: dict[str, int] = {}

    def check(label: str, *argv: str, expect: set[int] | None = None) -> None:
        code, text = cli(capsys, *argv)
        assert expect is None or code in expect, f"{label}: exit {code}: {text}"
        assert_clean(label, text)
        seen[label] = code

    # Pull-request mode, every field (config drive too): validate, then plan --base.
    tree.put(secret_vm("web", 1))
    _git(tree.root, "init", "-q", "-b", "main")
    _git(tree.root, "add", "-A")
    _git(tree.root, "commit", "-q", "-m", "base")
    for fmt in ("text", "json", "github"):
        check(f"validate {fmt}", "validate", root, "--format", fmt, "--no-cache", expect={0})
    tree.put(secret_vm("web", 2, cores=2))  # every secret changes, and the CPU
    _git(tree.root, "commit", "-qam", "rotate secrets")
    for fmt in ("text", "markdown", "json"):
        check(f"plan --base {fmt}", "plan", root, "--base", "HEAD~1", "-o", fmt,
              "--color", "always", expect={1})

    # Host mode on the test driver (no config drive there).
    tree.put(secret_vm("web", 1, drive=False))
    saved = tmp_path / "plan.json"
    for fmt in ("text", "markdown", "json"):
        check(f"plan host {fmt}", "plan", root, "-o", fmt, "--color", "always",
              "--out-file", str(saved), expect={1})
        assert_clean(f"saved plan ({fmt})", saved.read_bytes())
    check("apply create", "apply", root, "--auto-approve", expect={0})
    tree.put(secret_vm("web", 2, cores=2, drive=False))
    for fmt in ("text", "markdown", "json"):
        check(f"plan host {fmt} (changed)", "plan", root, "-o", fmt, expect={1})
    check("apply refused", "apply", root, expect={1})
    check("apply update", "apply", root, "--allow-restart", "--auto-approve", expect={0})
    check("status table", "status", root, expect={0})
    check("status json", "status", root, "-o", "json", expect={0})

    # Broken input around the secrets: the error messages must not quote them either.
    broken = secret_vm("web", 2)
    for volume in broken["spec"]["template"]["spec"]["volumes"]:
        for src in ("cloudInitNoCloud", "cloudInitConfigDrive"):
            for key, value in list(volume.get(src, {}).items()):
                volume[src][key] = [value, {"nested": value}]  # wrong type everywhere
    tree.put(broken)
    for fmt in ("text", "json", "github"):
        check(f"validate {fmt} (wrong types)", "validate", root, "--format", fmt,
              "--no-cache", expect={1})
    check("plan (wrong types)", "plan", root, expect={2})
    check("apply (wrong types)", "apply", root, "--auto-approve", expect={2})

    for path in sorted((tmp_path / "state").rglob("*")):
        if path.is_file():
            assert_clean(f"state file {path.relative_to(tmp_path)}", path.read_bytes())
    for dom in conn.listAllDomains():
        assert_clean(f"domain XML {dom.name()}", dom.XMLDesc())
    assert len(seen) == 22  # every command above ran


def _watch(cwd: Path, state: Path) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "VIRTSYNC_STATE_DIR": str(state), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "watch", "repo", "--no-agent", "--interval",
         "3600", "--debounce", "0.05", "--log-level", "debug", "--allow-restart"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _wait(lines: list[str], event: str, count: int) -> bool:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sum(f'"event": "{event}"' in line or f'"event":"{event}"' in line
               for line in list(lines)) >= count:
            return True
        time.sleep(0.05)
    return False


def test_no_canary_in_watch_logs_or_state(tree: Tree, tmp_path: Path) -> None:
    tree.put(secret_vm("web", 1, drive=False))
    proc, lines = _watch(tmp_path, tmp_path / "state")
    try:
        assert _wait(lines, "cycle.done", 1), lines
        (tree.root / "vms" / "web.yaml").write_text(yaml.safe_dump(secret_vm("web", 2, cores=2, drive=False)))
        assert _wait(lines, "cycle.done", 2), lines
        broken = secret_vm("web", 2, drive=False)
        broken["spec"]["template"]["spec"]["volumes"][2]["cloudInitNoCloud"]["userData"] = \
            {"x": canary("nc-user", 2)}
        (tree.root / "vms" / "web.yaml").write_text(yaml.safe_dump(broken))
        assert _wait(lines, "tree.finding", 1), lines
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = "".join(lines)
    assert '"object.created"' in text or "object.created" in text, text
    assert_clean("watch log", text)
    for path in sorted((tmp_path / "state").rglob("*")):
        if path.is_file():
            assert_clean(f"state file {path.relative_to(tmp_path)}", path.read_bytes())
