"""CI strictness (issue 14), shown on tiny selections run by pytest in a subprocess:
under CI=true a missing reference set, a skipped real lane or a golden regeneration
fails the run with a message naming what is missing; outside CI they do not. Plus the
golden helper's own rules (rewrite fails, orphans fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from golden_files import UPDATE_ENV, assert_no_orphans, check_golden

REPO = Path(__file__).resolve().parents[2]
GOLDEN_TEST = "tests/plan/test_golden.py::test_golden[mixed-txt]"
QEMU_TEST = "tests/node/test_domain_golden.py::test_golden_domain_accepted_by_qemu[minimal]"


def pytest_run(*args: str, path: str | None = None, **env: str) -> tuple[int, str]:
    full = {k: v for k, v in os.environ.items()
            if k not in ("CI", UPDATE_ENV, "VIRTSYNC_REFERENCE_DIR", "PYTEST_ADDOPTS")}
    full.update(env, PYTHONPATH=str(REPO))
    if path is not None:
        full["PATH"] = path
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--benchmark-disable", *args], cwd=REPO, env=full,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_missing_reference_data_fails_under_ci(tmp_path: Path) -> None:
    code, out = pytest_run(GOLDEN_TEST, CI="true", VIRTSYNC_REFERENCE_DIR=str(tmp_path))
    assert code == pytest.ExitCode.USAGE_ERROR, out
    assert f"CI: upstream reference data missing at {tmp_path}" in out
    assert "kubevirt/ (KubeVirt OpenAPI" in out and "containerized-data-importer/" in out


def test_missing_reference_data_is_allowed_outside_ci(tmp_path: Path) -> None:
    code, out = pytest_run(GOLDEN_TEST, VIRTSYNC_REFERENCE_DIR=str(tmp_path))
    assert code == 0, out


def _python_only_path() -> str:
    # The interpreter's folder only: no qemu-system-*, qemu-img (libvirtd is found in
    # /usr/sbin regardless), as on a machine without QEMU.
    return str(Path(sys.executable).parent)


def test_skipped_real_lane_fails_under_ci() -> None:
    code, out = pytest_run(QEMU_TEST, CI="true", path=_python_only_path())
    assert code == pytest.ExitCode.TESTS_FAILED, out
    assert "CI: skipped tests fail the run" in out
    assert "real lane: qemu-system-x86_64, qemu-img not installed" in out
    # ... and the skip is listed with its reason at the end (-ra).
    assert "SKIPPED [1] tests/node/test_domain_golden.py" in out


def test_skipped_real_lane_is_listed_but_allowed_outside_ci() -> None:
    code, out = pytest_run(QEMU_TEST, path=_python_only_path())
    assert code == 0, out
    assert "SKIPPED [1]" in out and "real lane: qemu-system-x86_64" in out
    assert "CI: skipped" not in out


KUBECTL_TEST = "tests/gitops/test_render.py::test_kubectl_kustomize_of_out_equals_the_stream"


def test_declared_optional_kubectl_skip_passes_under_ci() -> None:
    # kubectl is declared optional (ALLOWED_CI_SKIPS): absent, its tests skip under CI
    # too, listed with their reason, and the run stays green.
    code, out = pytest_run(KUBECTL_TEST, CI="true", path=_python_only_path())
    assert code == 0, out
    assert "SKIPPED [2]" in out and "optional tool: kubectl not installed" in out
    assert "CI: skipped" not in out


def test_golden_regeneration_is_refused_under_ci() -> None:
    code, out = pytest_run(GOLDEN_TEST, CI="true", **{UPDATE_ENV: "1"})
    assert code == pytest.ExitCode.USAGE_ERROR, out
    assert f"CI: {UPDATE_ENV}=1 is refused" in out


def test_regenerating_a_golden_fails_the_test_that_rewrote_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(UPDATE_ENV, "1")
    (tmp_path / "same.txt").write_text("same")
    check_golden(tmp_path, "same.txt", "same")  # unchanged: passes, file untouched
    (tmp_path / "old.txt").write_text("old")
    with pytest.raises(pytest.fail.Exception, match="rewritten"):
        check_golden(tmp_path, "old.txt", "regressed")
    assert (tmp_path / "old.txt").read_text() == "regressed"
    with pytest.raises(pytest.fail.Exception, match="created"):
        check_golden(tmp_path, "new.txt", "x")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI"):
        check_golden(tmp_path, "old.txt", "again")
    assert (tmp_path / "old.txt").read_text() == "regressed"


def test_missing_or_differing_golden_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           ) -> None:
    monkeypatch.delenv(UPDATE_ENV, raising=False)
    with pytest.raises(AssertionError, match="missing golden"):
        check_golden(tmp_path, "none.txt", "x")
    assert not (tmp_path / "none.txt").exists()
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(AssertionError, match="differs"):
        check_golden(tmp_path, "a.txt", "b")


def test_orphaned_golden_fails(tmp_path: Path) -> None:
    for name in ("used.txt", "stray.txt"):
        (tmp_path / name).write_text("x")
    assert_no_orphans(tmp_path, ["used.txt", "stray.txt"])
    with pytest.raises(AssertionError, match=r"orphaned golden file.*stray\.txt"):
        assert_no_orphans(tmp_path, ["used.txt"])
