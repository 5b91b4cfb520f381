"""The measuring helper every bench uses (bench/measure.py): statistics, paired order,
the child's own rusage, the table row. Fast; run with

    pytest -q -p no:cacheprovider bench/test_bench_measure.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import measure
from measure import Row, Sample, Stats


def test_stats_median_min_max_odd_and_even() -> None:
    assert Stats.of([3.0, 1.0, 2.0, 10.0, 0.5]) == Stats(2.0, 0.5, 10.0, 5)
    assert Stats.of([4.0, 1.0, 3.0, 2.0]) == Stats(2.5, 1.0, 4.0, 4)
    with pytest.raises(ValueError):
        Stats.of([])


def test_paired_alternates_which_side_goes_first() -> None:
    order: list[str] = []

    def side(name: str) -> Sample:
        order.append(name)
        return Sample(float(len(order)), 0.0, 0.0, 0)

    a, b = measure.paired(lambda: side("a"), lambda: side("b"), 5)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]
    assert [s.wall for s in a] == [1, 4, 5, 8, 9] and [s.wall for s in b] == [2, 3, 6, 7, 10]
    order.clear()
    a, b = measure.paired(lambda: side("a"), None, 3)
    assert order == ["a", "a", "a"] and len(a) == 3 and b == []


def test_run_reads_the_childs_own_peak_rss_and_cpu() -> None:
    big = measure.run([sys.executable, "-c",
                       "b = bytearray(80 << 20); sum(range(3_000_000))"])
    small = measure.run([sys.executable, "-c", "pass"])  # after big: not RUSAGE_CHILDREN
    assert big.rss_mib >= 80 > small.rss_mib
    assert big.cpu > small.cpu > 0
    assert big.wall >= big.cpu * 0.5 and big.rc == 0


def test_run_refuses_an_unexpected_exit_code_and_shows_stderr() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"]
    with pytest.raises(measure.ProcessFailed, match="exit 3\nboom"):
        measure.run(argv)
    assert measure.run(argv, ok=(3,)).rc == 3


def test_run_until_times_to_the_marker_then_stops_the_process() -> None:
    script = ("import sys, time\nprint('warming', file=sys.stderr, flush=True)\n"
              "time.sleep(0.3)\nprint('ready', file=sys.stderr, flush=True)\ntime.sleep(60)")
    argv = [sys.executable, "-c", script]
    s = measure.run_until(argv, lambda line: "ready" in line, ok=(-15,))
    assert 0.3 <= s.wall < 5  # SIGTERM ended the sleep long before 60 s
    assert s.rc == -15
    with pytest.raises(measure.ProcessFailed, match="exit -15 after SIGTERM"):
        measure.run_until(argv, lambda line: "ready" in line)


def test_row_markdown_and_json_round_trip(tmp_path: Path) -> None:
    vs = [Sample(w, w / 2, 50.0 + w, 0) for w in (1.0, 2.0, 3.0)]
    fs = [Sample(w, w, 10.0, 0) for w in (0.5, 1.0, 2.0)]
    row = measure.row("k", "thing", vs, fs, floor_what="floor")
    assert row.ratio == 2.0
    assert row.markdown() == ("| thing | 2.00 s (1.00 s–3.00 s) | 1.00 s (0.500 s–2.00 s) "
                              "floor | 2.00× | 52 MiB |")
    cpu = measure.row("k", "thing", vs, fs, metric="cpu")
    assert cpu.virtsync == Stats(1.0, 0.5, 1.5, 3)
    assert row.extra == {"virtsync_cpu_s": 1.0, "floor_cpu_s": 1.0}
    out = tmp_path / "rows.json"
    measure.emit([row], out)
    (back,) = json.loads(out.read_text())["rows"]
    assert measure.row_from_json(back) == row and back["ratio"] == 2.0
    only = Row("k", "ms row", Stats(125.0, 110.0, 140.0, 5), None, None, unit="ms")
    assert only.markdown() == "| ms row | 125 ms (110 ms–140 ms) | — | — | — |"
