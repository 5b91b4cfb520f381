"""CI is strict (issue 14): under CI=true (set by .ci/run) the run fails, saying what is
missing, instead of going green while checking less.

- the upstream reference data is missing → the run stops before collecting;
- VIRTSYNC_UPDATE_GOLDEN=1 → the run stops (goldens are compared in CI, never written);
- a test skipped for a reason not in ALLOWED_CI_SKIPS (e.g. "real lane: qemu-... not
  installed") → the run fails after the summary lists them.

Outside CI the same skips are allowed; every run lists the skips with their reason at the
end (`-ra` in pyproject.toml, and the section below under CI).
"""

from __future__ import annotations

import pytest
from golden_files import UPDATE_ENV, under_ci, updating
from refdata import REFERENCE, missing_parts

# Reasons (prefixes) a test may be skipped for even under CI. CI runs as root with QEMU,
# libvirt and the reference data, so every lane runs; only checks against a tool that is
# no dependency of virtsync and that a fresh machine lacks may skip, each declared here:
# - kubectl (`kubectl kustomize` of `render --out` equals the stream, issue 11:
#   tests/gitops/test_render.py); Debian's kubectl is too old for kustomize 5.
# - a real Kubernetes cluster with KubeVirt (the kubevirt backend's opt-in lane, issue 12:
#   tests/kubevirt/test_kubevirt_real.py); no API server runs on the CI machines.
ALLOWED_CI_SKIPS: tuple[str, ...] = ("optional tool: kubectl not installed",
                                     "opt-in lane: no reachable Kubernetes cluster")

_SKIPS: list[tuple[str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    if not under_ci():
        return
    if updating():
        raise pytest.UsageError(f"CI: {UPDATE_ENV}=1 is refused: goldens are compared in CI, "
                                "never regenerated")
    missing = missing_parts(REFERENCE)
    if missing:
        raise pytest.UsageError(
            f"CI: upstream reference data missing at {REFERENCE}: {'; '.join(missing)}. "
            "Lay shared/reference beside the clone or set VIRTSYNC_REFERENCE_DIR; without it "
            "the schema, example and reference-plan tests would silently skip.")


def _record(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        _SKIPS.append((report.nodeid, reason))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record(report)


def _refused() -> list[tuple[str, str]]:
    return [(n, r) for n, r in _SKIPS if not r.startswith(ALLOWED_CI_SKIPS or ("\0",))]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if under_ci() and _refused() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    refused = _refused()
    if not under_ci() or not refused:
        return
    tr = terminalreporter
    tr.section("CI: skipped tests fail the run", sep="=", red=True, bold=True)
    reasons: dict[str, int] = {}
    for _, reason in refused:
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items()):
        tr.write_line(f"{count} test(s) skipped: {reason}", red=True)
    tr.write_line(f"CI: {len(refused)} test(s) were skipped; under CI every lane must run "
                  "(allowed reasons: ALLOWED_CI_SKIPS in tests/ci_strict.py)", red=True)
