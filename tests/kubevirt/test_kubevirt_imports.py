"""The `kubernetes` client is imported only when the kubevirt backend is opened: never by
`virtsync --help`, by validation, by git-mode plans (even for the kubevirt target: its
rules are a profile), or by a libvirt run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kube_tree import KUBE_CLUSTER, vm, write

PROBE = """
import sys
from reconciler.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
opener = ("reconciler.backends.kubevirt.backend", "reconciler.backends.kubevirt.client")
loaded = sorted(m for m in sys.modules if m == "kubernetes" or m.startswith("kubernetes.")
                or m in opener)
print("LOADED", ",".join(loaded))
"""


def _loaded(*argv: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=120)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("LOADED"))
    return line.removeprefix("LOADED").strip()


def test_help_validate_and_git_plans_never_import_the_client(tmp_path: Path) -> None:
    write(tmp_path, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web")})
    for git in (["init", "-q"], ["add", "-A"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(tmp_path), *git], check=True)
    write(tmp_path, {"vms/web.yaml": vm("web", memory="2Gi")})
    assert _loaded("--help", cwd=tmp_path) == ""
    assert _loaded("validate", str(tmp_path), cwd=tmp_path) == ""
    # the kubevirt target's rules, from git alone: the profile, no client
    assert _loaded("plan", str(tmp_path), "--base", "HEAD", cwd=tmp_path) == ""
    assert _loaded("plan", str(tmp_path), "--base", "HEAD", "--target", "libvirt",
                   cwd=tmp_path) == ""
    # opening the backend is what loads it (here it fails: no kubeconfig context)
    assert "kubernetes" in _loaded("plan", str(tmp_path), cwd=tmp_path).split(",")
