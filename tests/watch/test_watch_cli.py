"""`virtsync watch` as a process: JSON-lines logs, metrics endpoint, SIGTERM exits 0, the
state lock, git mode (commits only, never the working tree), secrets never logged."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watch_helpers import cluster_yaml, vm_yaml, wait_for

from reconciler.cli import main

SECRET = "hunter2-canary-userdata"
NS = "cli"


class WatchProcess:
    def __init__(self, cwd: Path, state: Path, *args: str) -> None:
        env = {**os.environ, "VIRTSYNC_STATE_DIR": str(state), "NO_COLOR": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "watch", *args], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["event"] == event]

    def wait_event(self, event: str, count: int = 1, timeout: float = 20) -> bool:
        return wait_for(lambda: len(self.events(event)) >= count, timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "cluster.yaml").write_text(cluster_yaml(tmp_path))
    (root / "a.yaml").write_text(vm_yaml("a", NS, user_data=f"#cloud-config\npassword: {SECRET}\n"))
    (root / "b.yaml").write_text(vm_yaml("b", NS))
    return root


@pytest.fixture
def watch_proc(tmp_path: Path, tree: Path) -> Iterator[WatchProcess]:
    w = WatchProcess(tmp_path, tmp_path / "state", "tree", "--metrics-port", "0",
                     "--no-agent", "--interval", "3600", "--debounce", "0.05")
    yield w
    w.stop()


def test_watch_process_logs_serves_metrics_and_exits_0_on_sigterm(
        tmp_path: Path, tree: Path, watch_proc: WatchProcess) -> None:
    w = watch_proc
    assert w.wait_event("metrics.serve"), w.lines
    created = {r["key"] for r in w.events("object.created")}
    assert created == {"Cluster/local", f"VirtualMachine/{NS}/a", f"VirtualMachine/{NS}/b"}

    (tree / "b.yaml").write_text(vm_yaml("b", NS, labels={"edited": "yes"}))
    assert w.wait_event("object.configured"), w.lines
    assert w.events("object.configured")[0]["key"] == f"VirtualMachine/{NS}/b"
    # The outcome is logged mid-cycle; the cycle's counter moves when it ends.
    assert wait_for(lambda: any(r["details"].get("trigger") == "change"
                                for r in w.events("cycle.done")), 20), w.lines

    port = w.events("metrics.serve")[0]["details"]["port"]
    assert w.events("metrics.serve")[0]["details"]["address"] == "127.0.0.1"
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'virtsync_reconcile_total{result="ok",trigger="startup"} 1.0' in text
    assert 'virtsync_reconcile_total{result="ok",trigger="change"} 1.0' in text
    assert 'virtsync_vms{status="Stopped"} 2.0' in text  # both are runStrategy Halted
    assert 'virtsync_actions_total{result="created"} 3.0' in text
    assert "virtsync_reconcile_duration_seconds_bucket" in text

    assert w.stop() == 0
    records = w.records()  # every line is one JSON object with the fixed fields
    assert all(set(r) == {"ts", "level", "event", "key", "details"} for r in records)
    assert records[-1]["event"] == "watch.stopped"
    assert any(r["event"] == "watch.stopping" and r["details"]["reason"] == "SIGTERM"
               for r in records)
    assert SECRET not in "".join(w.lines)
    assert w.proc.stdout is not None and w.proc.stdout.read() == ""


# tgkill(2): a signal to one thread of another process (Python has no wrapper).
_TGKILL = {"x86_64": 234, "aarch64": 131}


def test_sigterm_the_kernel_gives_a_worker_thread_still_stops_watch(
        watch_proc: WatchProcess) -> None:
    """With a resync an hour away the main thread waits long; a SIGTERM delivered to
    another of its threads must still stop it promptly."""
    w = watch_proc
    assert w.wait_event("cycle.done"), w.lines
    pid = w.proc.pid
    workers = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert workers, "watch runs threads besides the main one"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(_TGKILL[platform.machine()], pid, workers[0], signal.SIGTERM) == 0
    assert w.proc.wait(timeout=15) == 0
    assert w.events("watch.stopped")


def test_sigterm_the_kernel_gives_a_worker_thread_still_stops_the_agent(
        tmp_path: Path, tree: Path) -> None:
    """`virtsync agent` waits for nothing but a signal, beside libvirt's event thread and
    its own worker (it once ignored SIGTERM when the kernel picked one of them)."""
    env = {**os.environ, "VIRTSYNC_STATE_DIR": str(tmp_path / "state")}
    agent = subprocess.Popen([sys.executable, "-m", "reconciler", "agent", str(tree)],
                             env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert agent.stderr is not None
        assert "enforcing run strategies on node n1" in agent.stderr.readline()
        pid = agent.pid
        workers = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
        assert workers, "the agent runs threads besides the main one"
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(_TGKILL[platform.machine()], pid, workers[-1], signal.SIGTERM) == 0
        assert agent.wait(timeout=15) == 0
        assert "virtsync agent: stopped" in agent.stderr.read()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_second_reconciler_fails_fast_naming_the_watch(
        tmp_path: Path, watch_proc: WatchProcess, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert watch_proc.wait_event("cycle.done")
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    assert main(["apply", "tree", "--auto-approve"]) == 2
    err = capsys.readouterr().err
    assert "another virtsync holds" in err and "watch" in err
    assert main(["watch", "tree", "--no-agent"]) == 2
    assert f"pid {watch_proc.proc.pid}" in capsys.readouterr().err


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"})


def test_git_mode_applies_commits_never_the_working_tree(tmp_path: Path, tree: Path) -> None:
    _git(tree, "init", "-q", "-b", "main")
    _git(tree, "add", ".")
    _git(tree, "commit", "-q", "-m", "first")
    w = WatchProcess(tmp_path, tmp_path / "state", "tree", "--git", "--no-agent",
                     "--interval", "3600", "--debounce", "0.05")
    try:
        assert w.wait_event("cycle.done"), w.lines
        assert len(w.events("object.created")) == 3
        # A half-written working tree (here: broken YAML) is never read.
        (tree / "b.yaml").write_text("kind: VirtualMachine\nmetadata: [\n")
        (tree / "c.yaml").write_text(vm_yaml("c", NS))
        assert not w.wait_event("object.configured", timeout=1.0)
        assert not w.events("tree.invalid")
        # Committing is what makes it real.
        (tree / "b.yaml").write_text(vm_yaml("b", NS, labels={"committed": "yes"}))
        _git(tree, "add", "b.yaml")
        _git(tree, "commit", "-q", "-m", "label b")
        assert w.wait_event("object.configured"), w.lines
        assert [r["key"] for r in w.events("object.configured")] == [f"VirtualMachine/{NS}/b"]
        assert len(w.events("object.created")) == 3  # c.yaml is not committed
    finally:
        assert w.stop() == 0
