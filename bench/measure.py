"""The one way every bench measures (issue 13): whole processes, paired runs, medians.

- `run(argv)` runs one process and returns its wall time, CPU time (user + system of the
  child and everything it waited for) and peak RSS, read with os.wait4 from the kernel's
  rusage of that child alone (not RUSAGE_CHILDREN, which mixes every child so far).
- `paired(a, b, runs)` alternates the two sides (a b, b a, a b, ...) so that drift of the
  machine (page cache, another job) falls on both alike.
- `Stats` is median with min and max; `Row` is one line of the results table:
  `| what | virtsync median (min–max) | floor median (min–max) | ratio | peak RSS |`.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
VIRTSYNC = str(Path(sys.executable).parent / "virtsync")
FLOORS = str(BENCH / "floors.py")


def ensure_bytecode() -> None:
    """Compile virtsync's modules, as installing the wheel does. Where the environment
    says PYTHONDONTWRITEBYTECODE (as sessions here do), a module edited since its last
    .pyc would otherwise be compiled from source in every timed process (~0.2 s)."""
    root = BENCH.parent
    for package in ("reconciler", "node"):
        if not compileall.compile_dir(root / package, quiet=1):
            raise SystemExit(f"cannot compile {root / package}")


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    cpu: float  # seconds, user + system
    rss_mib: float  # peak resident set of the process
    rc: int
    out: str = ""  # stdout, when asked for


class ProcessFailed(RuntimeError):
    pass


def _finish(proc: subprocess.Popen[bytes], started: float) -> tuple[float, int, Any]:
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    return wall, proc.returncode, usage


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None, ok: Sequence[int] = (0,),
        capture: bool = False) -> Sample:
    """One whole process: wall, CPU and peak RSS (ru_maxrss, KiB on Linux)."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None,
                                cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out if capture else subprocess.DEVNULL, stderr=err)
        wall, rc, usage = _finish(proc, started)
        err.seek(0)
        out.seek(0)
        if rc not in ok:
            tail = err.read()[-3000:].decode(errors="replace")
            raise ProcessFailed(f"{' '.join(argv)}: exit {rc}\n{tail}")
        text = out.read().decode(errors="replace") if capture else ""
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rc, text)


def run_until(argv: Sequence[str], marker: Callable[[str], bool], *,
              env: Mapping[str, str] | None = None, timeout: float = 1800,
              stop_timeout: float = 120, ok: Sequence[int] = (0,)) -> Sample:
    """A long-running process (watch): wall time from start until a line of its stderr
    satisfies `marker`; then SIGTERM, and CPU and peak RSS of its whole life."""
    seen = threading.Event()
    lines: list[str] = []
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if not seen.is_set() and marker(line):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reached = seen.wait(timeout)
    wall = time.perf_counter() - started
    # Not at once: virtsync watch (before issue 13) logs from its SIGTERM handler and
    # deadlocks when the signal lands while it is still writing the marker line.
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            proc.kill()
            break
        time.sleep(0.05)
    _, rc, usage = _finish(proc, started)
    reader.join(5)
    if not reached or rc not in ok:
        tail = "".join(lines[-20:])[-3000:]
        raise ProcessFailed(f"{' '.join(argv)}: marker {'seen' if reached else 'not seen'}, "
                            f"exit {rc} after SIGTERM\n{tail}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rc)


def paired(a: Callable[[], Sample], b: Callable[[], Sample] | None,
           runs: int) -> tuple[list[Sample], list[Sample]]:
    """`runs` samples of each side, alternating which goes first; `b=None`: only a."""
    got_a: list[Sample] = []
    got_b: list[Sample] = []
    for i in range(runs):
        if b is None:
            got_a.append(a())
        elif i % 2 == 0:
            got_a.append(a())
            got_b.append(b())
        else:
            got_b.append(b())
            got_a.append(a())
    return got_a, got_b


@dataclass(frozen=True)
class Stats:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, unit: str) -> str:
        return f"{_num(self.median, unit)} ({_num(self.min, unit)}–{_num(self.max, unit)})"


def _num(v: float, unit: str) -> str:
    if unit == "ms":
        return f"{v:.0f} ms"
    if unit == "s":
        return f"{v:.3f} s" if v < 1 else f"{v:.2f} s"
    return f"{v:.3g} {unit}"


@dataclass(frozen=True)
class Row:
    key: str  # stable id for --rows
    what: str
    virtsync: Stats
    floor: Stats | None
    rss_mib: Stats | None
    unit: str = "s"
    floor_what: str = ""
    target: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor.median == 0:
            return None
        return self.virtsync.median / self.floor.median

    def markdown(self) -> str:
        floor = "—" if self.floor is None else f"{self.floor.text(self.unit)} {self.floor_what}"
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}×"
        rss = "—" if self.rss_mib is None else f"{self.rss_mib.median:.0f} MiB"
        return f"| {self.what} | {self.virtsync.text(self.unit)} | {floor.strip()} | " \
               f"{ratio} | {rss} |"

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return doc


def row(key: str, what: str, vs: Sequence[Sample], fs: Sequence[Sample], *,
        metric: str = "wall", **kw: Any) -> Row:
    """A row from paired samples: `metric` is wall or cpu; RSS is virtsync's."""
    def pick(s: Sample) -> float:
        return s.cpu if metric == "cpu" else s.wall

    # CPU medians beside the wall times: on a shared machine CPU is the steadier figure.
    cpu = {"virtsync_cpu_s": round(statistics.median(s.cpu for s in vs), 3)}
    if fs:
        cpu["floor_cpu_s"] = round(statistics.median(s.cpu for s in fs), 3)
    kw["extra"] = {**cpu, **kw.get("extra", {})}
    return Row(key, what, Stats.of([pick(s) for s in vs]),
               Stats.of([pick(s) for s in fs]) if fs else None,
               Stats.of([s.rss_mib for s in vs]), **kw)


def row_from_json(doc: Mapping[str, Any]) -> Row:
    def stats(d: Mapping[str, Any] | None) -> Stats | None:
        return None if d is None else Stats(**d)

    v = stats(doc["virtsync"])
    assert v is not None
    return Row(doc["key"], doc["what"], v, stats(doc["floor"]), stats(doc["rss_mib"]),
               doc["unit"], doc["floor_what"], doc["target"], doc["extra"])


HEADER = ("| what | virtsync median (min–max) | floor median (min–max) | ratio | peak RSS |\n"
          "| --- | --- | --- | --- | --- |")


def table(rows: Sequence[Row]) -> str:
    return "\n".join([HEADER, *(r.markdown() for r in rows)])


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def add_common_arguments(ap: argparse.ArgumentParser, *, files: int = 10_000) -> None:
    ap.add_argument("--files", type=int, default=files, help="generated VM files (or VMs)")
    ap.add_argument("--runs", type=int, default=5, help="paired runs per row (>= 5 to report)")
    ap.add_argument("--json", type=Path, help="also write the rows here as JSON")


def emit(rows: Sequence[Row], json_path: Path | None) -> None:
    print(table(rows), flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps({"machine": machine(),
                                         "rows": [r.as_json() for r in rows]}, indent=2) + "\n")


def virtsync_env(state: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, VIRTSYNC_STATE_DIR=str(state), **extra)


def floor_argv(*args: str) -> list[str]:
    return [sys.executable, FLOORS, *args]
