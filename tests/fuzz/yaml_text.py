"""YAML *text* mutations for the fuzz tests (issue 14): what `yaml.safe_dump` never writes.

Seeds are the real files in examples/ and tests/fixtures/ plus the plan scenarios; each
input is a seed with one or two text edits:

- anchors and aliases (a scalar or a whole block reused), merge keys (`<<:`),
- several documents (`---`, `...`, empty ones, another seed appended),
- duplicate keys, explicit tags (`!!str`, `!!int`, `!!binary`, `!custom`, ...),
- YAML 1.1 scalars (yes/no/on/off, octal, hex, sexagesimal, MAC-like 01:02:03, dates),
- non-ASCII and very long names, and mutated leaves (other scalars, quoting, removal).

Most edits keep the file meaningful, so many inputs pass validation and reach the
planner — where the earlier fuzz (random structures) rarely got.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]


def _seeds() -> list[str]:
    files = sorted(REPO.glob("examples/**/*.yaml")) + sorted(
        REPO.glob("tests/fixtures/**/*.yaml"))
    out: list[str] = []
    for path in files:
        try:
            out.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            continue  # the non-UTF-8 fixture: the bytes fuzz covers those
    sys.path.insert(0, str(REPO / "tests" / "plan"))
    from plan_scenarios import SCENARIOS

    for base, head in SCENARIOS.values():
        out += [t for t in (base, head) if t.strip()]
    # Biggest realistic files first: Hypothesis shrinks towards index 0.
    return sorted(dict.fromkeys(out), key=lambda t: (-("kind: VirtualMachine\n" in t), t))


def _valid(text: str) -> bool:
    from reconciler.check.validate import check_bytes

    try:
        report = check_bytes(text.encode(), "seed.yaml")
    except Exception:  # a crash on a seed: leave the seed to the fuzz, which reports it
        return False
    return not [f for f in report.result.findings if f.severity == "error"]


SEEDS = _seeds()
# Valid seeds get most of the draws: an edit to them is what reaches the planner. The
# invalid fixtures (one error each, by design) exercise the error paths.
VALID_SEEDS = [t for t in SEEDS if _valid(t)]
# A "key: value" line with a plain scalar value (group 1: indent and "- ", 2: key, 3: value).
_SCALAR = re.compile(r"^(\s*(?:- )?)([A-Za-z0-9_./-]+): (?![&*!|>{\[])(.+)$")
# A "key:" line opening a block.
_BLOCK = re.compile(r"^(\s*(?:- )?)([A-Za-z0-9_./-]+):\s*$")
_NAME = re.compile(r"^(\s*)name: (.+)$")

YAML11 = ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "True", "false", "~", "null",
          "0o17", "017", "0x1F", "1_000", "1:20:30", "01:02:03", "52:54:00:12:34:56",
          "2001-12-14", "2001-12-14t21:59:43.10-05:00", ".inf", "-.Inf", ".NaN", "1e3",
          "+1", "-0", "0.", "'yes'", '"017"', "''", "!!null ''"]
TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!timestamp",
        "!!map", "!!seq", "!!set", "!custom", "!<tag:example.com,2000:x>",
        "!!python/object:os.system"]
NAMES = ["vm-ü", "вм", "虚拟机", "vm-😀", "ｖｍ", "vm\u200b", "e\u0301", "שלום", "Vm",
         "a" * 63, "a" * 64, "a" * 253, "b" * 254, "c" * 5000, "-x", "x-", "x.y", "x_y",
         "'quoted name'", '"esc\\u00e9"']
LEAVES = ["0", "-1", "2147483648", "99999999999999999999", "1.5", '""', "x", "[]", "{}",
          "null", "' '", '"\\t"', "|\n  block", "1Gi", "-1Gi", "0Mi", "1e400", "'Always'"]

Lines = list[str]
Draw = st.DrawFn


def _pick(draw: Draw, lines: Lines, rx: re.Pattern[str]) -> int | None:
    hits = [i for i, line in enumerate(lines) if rx.match(line)]
    return draw(st.sampled_from(hits)) if hits else None


def _children(lines: Lines, i: int) -> int:
    """Index after the block opened at line i (lines indented deeper)."""
    indent = len(lines[i]) - len(lines[i].lstrip(" -"))
    j = i + 1
    while j < len(lines) and (not lines[j].strip()
                              or len(lines[j]) - len(lines[j].lstrip(" ")) > indent):
        j += 1
    return j


def anchor_scalar(draw: Draw, lines: Lines) -> Lines:
    i = _pick(draw, lines, _SCALAR)
    if i is None:
        return lines
    m = _SCALAR.match(lines[i])
    assert m
    lines[i] = f"{m[1]}{m[2]}: &s{i} {m[3]}"
    later = [j for j in range(i + 1, len(lines)) if _SCALAR.match(lines[j])]
    if later and draw(st.booleans()):
        j = draw(st.sampled_from(later))
        mj = _SCALAR.match(lines[j])
        assert mj
        lines[j] = f"{mj[1]}{mj[2]}: *s{i}"
    return lines


def anchor_block(draw: Draw, lines: Lines) -> Lines:
    """Anchor a block; reuse it as the value of a later key with the same name, or as a
    merge into a later block."""
    i = _pick(draw, lines, _BLOCK)
    if i is None:
        return lines
    m = _BLOCK.match(lines[i])
    assert m
    lines[i] = f"{m[1]}{m[2]}: &b{i}"
    end = _children(lines, i)
    later = [j for j in range(end, len(lines)) if _BLOCK.match(lines[j])]
    if not later:
        return lines
    j = draw(st.sampled_from(later))
    mj = _BLOCK.match(lines[j])
    assert mj
    if draw(st.booleans()):  # replace the later block by an alias
        lines[j:_children(lines, j)] = [f"{mj[1]}{mj[2]}: *b{i}"]
    else:  # merge the anchored block into it
        indent = " " * (len(mj[1]) + 2)
        lines.insert(j + 1, f"{indent}<<: *b{i}")
    return lines


def merge_key(draw: Draw, lines: Lines) -> Lines:
    """Move one scalar child of a block into a flow `<<:` merge: same meaning."""
    i = _pick(draw, lines, _SCALAR)
    if i is None or not lines[i].startswith(" ") or "- " in lines[i]:
        return lines
    m = _SCALAR.match(lines[i])
    assert m
    value = m[3].split(" #")[0]
    lines[i] = f"{m[1]}<<: {{{m[2]}: {value}}}"
    if draw(st.booleans()):  # a list of merges, the second one overridden by the first
        lines[i] = f"{m[1]}<<: [{{{m[2]}: {value}}}, {{{m[2]}: other}}]"
    return lines


def documents(draw: Draw, lines: Lines) -> Lines:
    choice = draw(st.sampled_from(["start", "end-marker", "empty", "append", "split"]))
    if choice == "start":
        return ["---", *lines]
    if choice == "end-marker":
        return [*lines, "..."]
    if choice == "empty":
        return ["---", "---", *lines, "---"]
    if choice == "append":
        other = draw(st.sampled_from(SEEDS)).splitlines()
        return [*lines, "---", *other]
    cut = draw(st.integers(0, len(lines)))
    return [*lines[:cut], "---", *lines[cut:]]


def duplicate_key(draw: Draw, lines: Lines) -> Lines:
    i = _pick(draw, lines, _SCALAR)
    if i is None:
        return lines
    m = _SCALAR.match(lines[i])
    assert m
    indent = " " * len(m[1])
    lines.insert(i + 1, f"{indent}{m[2]}: {draw(st.sampled_from([*LEAVES, 'dup']))}")
    return lines


def tag(draw: Draw, lines: Lines) -> Lines:
    i = _pick(draw, lines, _SCALAR)
    if i is None:
        return lines
    m = _SCALAR.match(lines[i])
    assert m
    lines[i] = f"{m[1]}{m[2]}: {draw(st.sampled_from(TAGS))} {m[3]}"
    return lines


def yaml11_scalar(draw: Draw, lines: Lines) -> Lines:
    i = _pick(draw, lines, _SCALAR)
    if i is None:
        return lines
    m = _SCALAR.match(lines[i])
    assert m
    lines[i] = f"{m[1]}{m[2]}: {draw(st.sampled_from(YAML11))}"
    return lines


def name(draw: Draw, lines: Lines) -> Lines:
    i = _pick(draw, lines, _NAME)
    if i is None:
        return lines
    m = _NAME.match(lines[i])
    assert m
    new = draw(st.sampled_from(NAMES))
    if draw(st.booleans()):  # rename every use of the old name (references follow)
        old = m[2].strip()
        lines = [line.replace(f": {old}", f": {new}") if old else line for line in lines]
    else:
        lines[i] = f"{m[1]}name: {new}"
    return lines


def leaf(draw: Draw, lines: Lines) -> Lines:
    i = _pick(draw, lines, _SCALAR)
    if i is None:
        return lines
    m = _SCALAR.match(lines[i])
    assert m
    action = draw(st.sampled_from(["replace", "quote", "delete", "flow"]))
    if action == "replace":
        lines[i] = f"{m[1]}{m[2]}: {draw(st.sampled_from(LEAVES))}"
    elif action == "quote":
        value = m[3].replace("'", "''")
        lines[i] = f"{m[1]}{m[2]}: '{value}'"
    elif action == "delete":
        del lines[i]
    else:
        lines[i] = f"{m[1]}{{{m[2]}: {m[3]}}}" if m[1].strip() == "-" else lines[i]
    return lines


EDITS: dict[str, Callable[[Draw, Lines], Lines]] = {
    "anchor-scalar": anchor_scalar, "anchor-block": anchor_block, "merge-key": merge_key,
    "documents": documents, "duplicate-key": duplicate_key, "tag": tag,
    "yaml11-scalar": yaml11_scalar, "name": name, "leaf": leaf,
}


@st.composite
def yaml_texts(draw: Draw) -> tuple[str, tuple[str, ...]]:
    """(text, names of the edits applied)."""
    seeds = VALID_SEEDS if draw(st.integers(0, 9)) < 8 else SEEDS
    lines = draw(st.sampled_from(seeds)).splitlines()
    edits = draw(st.lists(st.sampled_from(sorted(EDITS)), min_size=1, max_size=2))
    for edit in edits:
        lines = EDITS[edit](draw, lines)
    return "\n".join(lines) + "\n", tuple(edits)
