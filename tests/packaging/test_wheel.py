"""The wheel, installed into a fresh virtualenv outside the checkout, runs validate, plan
and `python -m virtsync` on examples/ (issue 11: a regular install crashed on the first
validate, and installed `node`/`reconciler` modules would collide with other packages).

Builds from a copy of the source tree (pip builds in place: the checkout stays clean),
installs the dependencies from PyPI through pip's cache, and runs every command from a
temporary directory with no checkout on sys.path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
# What the sdist carries (MANIFEST.in) and the build reads; everything else stays behind.
SOURCES = ("pyproject.toml", "README.md", "MANIFEST.in", "reconciler", "node", "virtsync",
           "schemas", "tools/build_backend")


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path
    work: Path  # a git repository holding a copy of examples/, outside the checkout
    env: dict[str, str]

    def run(self, *argv: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        exe = argv[0] if argv[0].startswith("/") else str(self.venv / "bin" / argv[0])
        done = subprocess.run([exe, *argv[1:]], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if check is not None:
            assert done.returncode == check, (argv, done.stdout, done.stderr)
        return done


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for rel in SOURCES:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=ignore)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@virtsync.invalid", "-c", "user.name=t",
                    *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    # Its own directory: pytest's shared basetemp keeps only the last few runs, and a
    # parallel run may remove it while this module is still using the venv.
    with tempfile.TemporaryDirectory(prefix="virtsync-wheel-") as name:
        yield from _install(Path(name))


def _install(tmp: Path) -> Iterator[Installed]:
    src, dist, venv, work = tmp / "src", tmp / "dist", tmp / "venv", tmp / "work"
    _copy_sources(src)
    # No PYTHONPATH: pip must not take the checkout for an installed virtsync.
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                   check=True, capture_output=True, timeout=300, env=clean)
    (wheel,) = dist.glob("virtsync-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=600, env=clean)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    shutil.copytree(ROOT / "examples", work)
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "examples")
    env = clean | {"PATH": f"{venv / 'bin'}:{clean.get('PATH', '')}",
            "VIRTSYNC_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    yield Installed(venv, Path(purelib), work, env)


def test_one_namespace_in_site_packages(installed: Installed) -> None:
    top = {p.name for p in installed.site.iterdir()}
    assert "virtsync" in top
    assert not top & {"reconciler", "node", "schemas"}, sorted(top)
    assert (installed.site / "virtsync/schemas/virtualmachine.schema.json").is_file()
    assert (installed.site / "virtsync/py.typed").is_file()  # typed for mypy users
    # nothing of the checkout is importable: the installed copy answers
    probe = installed.run("python", "-c", "import virtsync.reconciler.check.schema as s;"
                          "print(s.SCHEMA_DIR)")
    assert Path(probe.stdout.strip()) == installed.site / "virtsync" / "schemas"
    missing = installed.run("python", "-c", "import reconciler", check=1)
    assert "ModuleNotFoundError" in missing.stderr
    assert str(ROOT) not in installed.run("python", "-c", "import sys; print(sys.path)").stdout


def test_validate_and_schema_errors(installed: Installed) -> None:
    done = installed.run("virtsync", "validate", "vms")
    assert "objects in 2 files: valid" in done.stdout + done.stderr
    (installed.work / "bad").mkdir()
    (installed.work / "bad/vm.yaml").write_text(
        (installed.work / "vms/tiny.yaml").read_text().replace("cores: 1", "cores: many"))
    bad = installed.run("virtsync", "validate", "bad", check=1)
    assert "bad/vm.yaml:" in bad.stdout + bad.stderr and "cores" in bad.stdout + bad.stderr


def test_plan_base_with_either_target(installed: Installed) -> None:
    tiny = installed.work / "vms/tiny.yaml"
    text = tiny.read_text()
    tiny.write_text(text.replace("guest: 128Mi", "guest: 256Mi"))
    try:
        classes = {}
        for target in ("libvirt", "kubevirt"):
            done = installed.run("virtsync", "plan", "vms", "--base", "HEAD~0", "-o", "json",
                                 "--target", target, check=1)
            (change,) = json.loads(done.stdout)["changes"]
            classes[target] = change["disruption"]
        # the backend registry's modules load in the wheel's layout too
        assert classes == {"libvirt": "restart", "kubevirt": "live"}
        md = installed.run("virtsync", "plan", "vms", "--base", "HEAD", "-o", "markdown",
                           check=1).stdout
        assert md.startswith("<!-- virtsync-plan -->")
    finally:
        tiny.write_text(text)


def test_python_dash_m_and_every_subcommand_loads(installed: Installed) -> None:
    assert "usage: virtsync" in installed.run("python", "-m", "virtsync", "--help").stdout
    assert installed.run("virtsync", "--version").stdout.startswith("virtsync ")
    for word in sorted(SUBCOMMANDS):  # each subcommand module resolves in the wheel
        installed.run("virtsync", word, "--help")


def test_render_from_the_wheel(installed: Installed) -> None:
    """`render` runs from the wheel, byte-identical twice."""
    first = installed.run("virtsync", "render", "vms").stdout
    assert "kind: VirtualMachine" in first
    assert installed.run("virtsync", "render", "vms").stdout == first
