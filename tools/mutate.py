"""Mutation testing over the modules that carry promises (issue 14): a small AST runner.

Each mutant changes one thing in one module — a comparison, a boolean, a constant, a
disruption class, a row of a table, an element of a key set, an alternative of a regular
expression, a guard statement — and runs only that module's fast tests against it. A
mutant no test notices ("survived") is either a missing test or an equivalent change;
EQUIVALENT below lists the ones explained as equivalent.

    python tools/mutate.py                      # every module, 2 workers
    python tools/mutate.py classify sensitive   # some modules
    python tools/mutate.py --root /tmp/base --json out.json   # another checkout

Bounded: only the listed functions/tables are mutated, only fast tests run (no real lane,
no fuzz), each mutant has a timeout, and the test run is forked from a warm interpreter.
Not part of the CI suite; see docs/testing.md.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    path: str
    scope: tuple[str, ...]  # function/method/assignment names mutated; "*" = all
    tests: tuple[str, ...]  # pytest arguments (paths, node ids, -k)


TARGETS: dict[str, Target] = {
    "classify": Target(
        "reconciler/planning/classify.py",
        ("RULES", "_volume", "_hotpluggable", "_volume_holds_data", "_holds_data",
         "_any_holds_data", "_quantities", "_shrink", "_grow", "_within_max_guest",
         "matches", "_match_one", "classify"),
        ("tests/plan/test_classify_table.py", "tests/plan/test_golden.py",
         "tests/e2e/test_data_loss_gate.py")),
    "sensitive": Target(
        "reconciler/core/sensitive.py", ("*",),
        ("tests/unit/test_sensitive.py", "tests/plan/test_canary.py",
         "tests/e2e/test_secret_canaries.py::test_no_canary_in_any_output_or_state_file")),
    "metadata": Target(
        "node/identity/metadata.py", ("*",),
        ("tests/node/test_domain_metadata.py", "tests/node/test_owner_marker_parse.py",
         "tests/node/test_backend_testdriver.py",
         "tests/e2e/test_apply_testdriver.py")),
    "host-ownership": Target(
        "node/cluster/host.py", ("scan", "lookup", "record", "_read_record"),
        ("tests/node/test_host_scan_errors.py", "tests/node/test_backend_testdriver.py", "tests/e2e/test_apply_testdriver.py")),
    "inventory": Target(
        "reconciler/execute/inventory.py", ("*",),
        ("tests/unit/test_inventory.py", "tests/e2e/test_apply_testdriver.py",
         "tests/watch/test_watch_testdriver.py", "-k",
         "prune or broken or nothing_to_do or inventory or source_id or entry or save")),
    "prune-cap": Target(
        "reconciler/execute/cycle.py", ("prune_cap", "check_prune_cap"),
        ("tests/unit/test_inventory.py", "tests/e2e/test_apply_testdriver.py",
         "tests/watch/test_watch_testdriver.py", "-k", "prune")),
    "apply-gate": Target(
        "reconciler/execute/apply.py", ("allowed_by_policy", "gate"),
        ("tests/plan/test_gate.py", "tests/e2e/test_apply_testdriver.py",
         "tests/e2e/test_data_loss_gate.py", "-k",
         "gate or restart or policy or prune or refuses")),
    "freshness": Target(
        "reconciler/planning/plan_model.py", ("content_hash", "check_fresh"),
        ("tests/plan/test_freshness.py",
         "tests/e2e/test_apply_testdriver.py::test_plan_host_mode_and_stale_plan_file",
         "tests/plan/test_cli_plan.py", "tests/plan/test_plan_model.py")),
    "yamlsafe": Target(
        "reconciler/tree/yamlsafe.py", ("*",),
        ("tests/unit/test_yamlsafe_limits.py", "tests/unit/test_loader.py",
         "tests/unit/test_fixtures.py", "tests/unit/test_yaml_tags_and_merges.py")),
    "loader": Target(
        "reconciler/tree/loader.py", ("load_bytes",),
        ("tests/unit/test_loader_edges.py", "tests/unit/test_loader.py",
         "tests/unit/test_fixtures.py")),
    "identity": Target(
        "node/identity/node_store.py", ("Identity", "_merge", "ensure", "forget", "_macs_of_others",
                             "_Excluding", "new_mac"),
        ("tests/node/test_identity.py", "tests/node/test_pin.py",
         "tests/plan/test_plan_identity.py")),
}

# (target, line, description) → why the mutant cannot change behaviour.
_NONE = "falls through to the same `return None`: no volume is named None"
EQUIVALENT: dict[tuple[str, int, str], str] = {
    ("classify", 177, "delete statement (line 186: 'return None')"):
        "a function's implicit return value is None too",
    ("classify", 177, "delete statement (line 180: 'if name is None:\\n    return None')"):
        _NONE,
    ("classify", 180, "delete statement (line 181: 'return None')"): _NONE,
    ("classify", 234, "LtE -> Lt"):
        "equal quantities never reach classify: the diff compares quantities by value",
    ("classify", 298, "delete statement (line 307: 'return False')"):
        "unreachable: patterns compile to key/any/item/marker/rest, and rest returns "
        "before _match_one",
    ("classify", 307, "False -> True"): "unreachable (as above)",
    ("classify", 310,
     "delete statement (line 324: \"raise AssertionError('the last rule matches everyt\")"):
        "unreachable: the last row matches every field of every kind",
    # sensitive.py: redact/digest_sensitive recurse with (*path, key)
    **{("sensitive", line, f"drop element 0 (line {line}: *path)"):
       "the ancestors were just checked and are not sensitive (else the function returned): "
       "only the new key decides" for line in (40, 42, 71, 73)},
    **{("sensitive", line, f"drop element 1 (line {line}: i)"):
       "a list index is never a sensitive key (is_sensitive_path looks at strings only)"
       for line in (42, 73)},
    # node/identity/metadata.py: _PARSER's hardening flags (line 39) back each other up: either of
    # resolve_entities=False / load_dtd=False stops entity expansion (the one that alone
    # stops it is killed by test_entities_are_not_expanded); no_network matters only when
    # a DTD is loaded; remove_blank_text drops whitespace between elements, not their text.
    ("metadata", 39, "True -> False"): "redundant hardening flag (see above)",
    ("metadata", 39, "False -> True"): "redundant hardening flag (see above)",
    ("metadata", 49, "1 -> 2"):
        "a default the product never uses: every OwnerMetadata it builds names its generation",
    ("host-ownership", 139, "0 -> 1"):
        "XMLDesc(VIR_DOMAIN_XML_SECURE) adds graphics passwords, never the owner marker read",
    ("inventory", 33, "False -> True"):
        "entries are compared and sorted only among unique keys: the body never decides",
    ("inventory", 86, "1 -> 2"):
        "JSON indentation of the file: load parses it, save compares with its own output",
    ("apply-gate", 81, "Disruption.REPLACE -> RESTART"):
        "allowed_by_policy returns only LIVE, REPLACE or DATA_LOSS: `policy < REPLACE` and "
        "`policy < RESTART` agree on each",
    ("yamlsafe", 41, "0 -> 1"):
        "a default the module never uses: every YamlProblem it raises names its document",
    ("yamlsafe", 133, "drop element 2 (line 133: TypeError)"):
        "defensive: no input makes PyYAML's bool/int/float constructors raise TypeError "
        "(none in the randomized fuzz either)",
    ("yamlsafe", 133, "drop element 3 (line 133: OverflowError)"):
        "defensive: Python ints do not overflow and !!float 1e400 reads as inf",
    ("yamlsafe", 182, "1 -> 2"): "every YAMLError PyYAML raises while loading has a mark",
    ("yamlsafe", 183, "1 -> 2"): "every YAMLError PyYAML raises while loading has a mark",
    ("yamlsafe", 188, "Or -> And"):
        "libyaml's tab message names neither; load_bytes rewrites it by the character at "
        "the location (tests/fixtures/invalid/yaml-tab-indent.yaml)",
    ("yamlsafe", 207,
     "delete statement (line 208: \"raise YamlProblem('yaml.too-deep', f'nesting deepe\")"):
        "unreachable: libyaml refuses nesting beyond 1000 levels before PyYAML's "
        "constructor can hit the recursion limit",
    ("yamlsafe", 209, "1 -> 2"): "unreachable (as above)",
    ("loader", 199,
     "delete statement (line 217: \"if text.startswith('\\\\ufeff'):\\n    text = text[1:]\")"):
        "libyaml and ruamel skip a leading byte-order mark themselves "
        "(test_byte_order_mark_is_not_content passes either way)",
    ("loader", 225, "And -> Or"):
        "a problem at 1:1 lies in the first document, which doc_start also finds at 1:1",
}

_SWAP_CMP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SWAP_BIN: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
}
# Disruption classes, each to a milder neighbour (the dangerous direction).
_MILDER = {"D": "R", "X": "R", "R": "L", "L": "N", "N": "L", "DATA_LOSS": "RESTART",
           "REPLACE": "RESTART", "RESTART": "LIVE", "LIVE": "NONE", "NONE": "LIVE"}
_GROUP = re.compile(r"\(([^()]*\|[^()]*)\)")


@dataclass(frozen=True)
class Mutant:
    target: str
    index: int
    line: int
    description: str
    source: str


@dataclass
class Result:
    target: str
    line: int
    description: str
    status: str  # killed, survived, timeout, equivalent
    seconds: float


# --- generating mutants ------------------------------------------------------------------

_SKIP_FIELDS = {"annotation", "returns", "type_comment", "decorator_list"}


def _children(node: ast.AST) -> Iterator[ast.AST]:
    for name, value in ast.iter_fields(node):
        if name in _SKIP_FIELDS:
            continue
        if isinstance(value, list):
            yield from (v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            yield value


def _in_scope(tree: ast.Module, scope: tuple[str, ...]) -> list[ast.AST]:
    if scope == ("*",):
        return [n for n in tree.body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in scope:
            roots.append(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in scope for t in targets):
                roots.append(node)
    return roots


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    for child in _children(node):
        if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
            continue  # docstrings
        yield from _walk(child)


Edit = Callable[[ast.AST], str]  # mutates the node in place, returns a description


def _edits(node: ast.AST) -> Iterator[Edit]:
    """The mutations that apply to this node (each a function doing one in place)."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _SWAP_CMP:
                def swap(n: ast.AST, i: int = i) -> str:
                    assert isinstance(n, ast.Compare)
                    old = type(n.ops[i])
                    n.ops[i] = _SWAP_CMP[old]()
                    return f"{old.__name__} -> {_SWAP_CMP[old].__name__}"
                yield swap
    elif isinstance(node, ast.BoolOp):
        def flip(n: ast.AST) -> str:
            assert isinstance(n, ast.BoolOp)
            old = type(n.op)
            n.op = ast.Or() if old is ast.And else ast.And()
            return f"{old.__name__} -> {type(n.op).__name__}"
        yield flip
    elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP_BIN:
        def arith(n: ast.AST) -> str:
            assert isinstance(n, ast.BinOp)
            old = type(n.op)
            n.op = _SWAP_BIN[old]()
            return f"{old.__name__} -> {type(n.op).__name__}"
        yield arith
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield lambda n: "drop `not`"
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            def bool_flip(n: ast.AST) -> str:
                assert isinstance(n, ast.Constant)
                n.value = not n.value
                return f"{not n.value} -> {n.value}"
            yield bool_flip
        elif isinstance(node.value, int):
            def inc(n: ast.AST) -> str:
                assert isinstance(n, ast.Constant)
                n.value += 1
                return f"{n.value - 1} -> {n.value}"
            yield inc
        elif isinstance(node.value, str):
            for m in _GROUP.finditer(node.value):
                alternatives = m.group(1).split("|")
                for k, alt in enumerate(alternatives):
                    def drop_alt(n: ast.AST, m: re.Match[str] = m, k: int = k,
                                 alt: str = alt) -> str:
                        assert isinstance(n, ast.Constant)
                        rest = alternatives_of(m)[:k] + alternatives_of(m)[k + 1:]
                        n.value = n.value[:m.start(1)] + "|".join(rest) + n.value[m.end(1):]
                        return f"regex: drop alternative {alt!r}"
                    yield drop_alt
    elif isinstance(node, ast.Name) and node.id in _MILDER:
        def milder(n: ast.AST) -> str:
            assert isinstance(n, ast.Name)
            old, n.id = n.id, _MILDER[n.id]
            return f"class {old} -> {n.id}"
        yield milder
    elif isinstance(node, ast.Attribute) and node.attr in _MILDER and \
            isinstance(node.value, ast.Name) and node.value.id == "Disruption":
        def milder_attr(n: ast.AST) -> str:
            assert isinstance(n, ast.Attribute)
            old, n.attr = n.attr, _MILDER[n.attr]
            return f"Disruption.{old} -> {n.attr}"
        yield milder_attr
    if isinstance(node, ast.Set | ast.List | ast.Tuple) and len(node.elts) >= 2 and \
            isinstance(getattr(node, "ctx", ast.Load()), ast.Load):
        for i in range(len(node.elts)):
            def drop(n: ast.AST, i: int = i) -> str:
                assert isinstance(n, ast.Set | ast.List | ast.Tuple)
                gone = n.elts.pop(i)
                return f"drop element {i} (line {gone.lineno}: {ast.unparse(gone)[:60]})"
            yield drop
    for field in ("body", "orelse"):
        stmts = getattr(node, field, None)
        if not isinstance(stmts, list) or isinstance(node, ast.Module | ast.ClassDef):
            continue
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, ast.If | ast.Raise | ast.Continue | ast.Break | ast.Return):
                def delete(n: ast.AST, i: int = i, field: str = field) -> str:
                    body = getattr(n, field)
                    gone = body[i]
                    body[i] = ast.Pass(lineno=gone.lineno, col_offset=gone.col_offset)
                    return f"delete statement (line {gone.lineno}: {ast.unparse(gone)[:50]!r})"
                yield delete


def alternatives_of(m: re.Match[str]) -> list[str]:
    return m.group(1).split("|")


def _unwrap_not(tree: ast.AST) -> ast.AST:
    """Apply the `drop not` edit: replace UnaryOp(Not, x) by x wherever it is marked."""
    class Unwrap(ast.NodeTransformer):
        def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
            self.generic_visit(node)
            if getattr(node, "_drop_not", False):
                return node.operand
            return node
    return Unwrap().visit(tree)


def mutants(name: str, target: Target, root: Path) -> list[Mutant]:
    source = (root / target.path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    original = ast.unparse(tree)
    nodes = [n for r in _in_scope(tree, target.scope) for n in _walk(r)]
    out: list[Mutant] = []
    seen: set[str] = set()
    for index, node in enumerate(nodes):
        for k, edit in enumerate(_edits(node)):
            clone = copy.deepcopy(tree)
            twin = [n for r in _in_scope(clone, target.scope) for n in _walk(r)][index]
            if isinstance(twin, ast.UnaryOp) and isinstance(twin.op, ast.Not) and k == 0:
                twin._drop_not = True  # type: ignore[attr-defined]
                description = edit(twin)
                clone = _unwrap_not(clone)  # type: ignore[assignment]
            else:
                description = edit(twin)
            text = ast.unparse(ast.fix_missing_locations(clone))
            if text == original or text in seen:
                continue
            seen.add(text)
            out.append(Mutant(name, len(out), getattr(node, "lineno", 0), description, text))
    return out


# --- running them --------------------------------------------------------------------------

_WORKDIR: Path | None = None


def _prepare_copy(root: str, parent: str) -> None:
    global _WORKDIR
    work = Path(tempfile.mkdtemp(prefix="worker-", dir=parent))
    for part in ("reconciler", "node", "tests", "schemas", "examples", "pyproject.toml"):
        src = Path(root) / part
        if src.is_dir():
            shutil.copytree(src, work / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, work / part)
    _WORKDIR = work


def _pytest_in_child(work: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: a fresh import of the project from the mutated copy
        try:
            os.chdir(work)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            sys.dont_write_bytecode = True
            os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
            os.environ["PYTHONPATH"] = str(work)
            sys.path.insert(0, str(work))
            import pytest

            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
                                "-o", "addopts=", "-W", "ignore", *tests])
            os._exit(int(code))
        except BaseException:
            os._exit(3)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("survived" if code == 0 else "killed"), time.monotonic() - start
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - start
        time.sleep(0.05)


def _run(job: tuple[Mutant, str, tuple[str, ...], float]) -> Result:
    mutant, path, tests, timeout = job
    assert _WORKDIR is not None
    file = _WORKDIR / path
    original = file.read_text(encoding="utf-8")
    try:
        file.write_text(mutant.source, encoding="utf-8")
        status, seconds = _pytest_in_child(_WORKDIR, tests, timeout)
    finally:
        file.write_text(original, encoding="utf-8")
    return Result(mutant.target, mutant.line, mutant.description, status, seconds)


def _warm_imports() -> None:
    """Third-party modules the tests import, loaded once before forking (not the project:
    each child must import the mutated copy)."""
    for module in ("pytest", "hypothesis", "yaml", "ruamel.yaml", "jsonschema",
                   "jsonschema_rs", "lxml.etree", "libvirt", "rich", "watchdog",
                   "prometheus_client", "pycdlib", "_pytest.pytester"):
        try:
            __import__(module)
        except ImportError:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", choices=[*TARGETS, []], default=[],
                    help="which modules (default: all)")
    ap.add_argument("--root", type=Path, default=REPO, help="checkout to mutate and test")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    ap.add_argument("--limit", type=int, default=0, help="at most N mutants per module")
    ap.add_argument("--json", type=Path, help="write every result here")
    args = ap.parse_args(argv)
    names = args.targets or list(TARGETS)
    _warm_imports()
    ctx = mp.get_context("fork")
    results: list[Result] = []
    parent = tempfile.mkdtemp(prefix="virtsync-mutate-")  # the workers' copies, removed below
    try:
        _run_all(ctx, args, names, parent, results)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


def _run_all(ctx: Any, args: argparse.Namespace, names: list[str], parent: str,
             results: list[Result]) -> None:
    with ctx.Pool(args.jobs, initializer=_prepare_copy,
                  initargs=(str(args.root), parent)) as pool:
        for name in names:
            target = TARGETS[name]
            # Test files this checkout does not have yet (an older one) are left out.
            tests = tuple(t for t in target.tests if not t.startswith("tests/")
                          or (args.root / t.split("::")[0]).exists())
            found = mutants(name, target, args.root)
            if args.limit:
                found = found[:args.limit]
            jobs = [(m, target.path, tests, args.timeout) for m in found]
            start = time.monotonic()
            mine = list(pool.imap_unordered(_run, jobs))
            for r in mine:
                reason = EQUIVALENT.get((r.target, r.line, r.description))
                if r.status == "survived" and reason:
                    r.status = "equivalent"
            results += mine
            _report(name, mine, time.monotonic() - start)


def _report(name: str, results: list[Result], seconds: float) -> None:
    by: dict[str, int] = {}
    for r in results:
        by[r.status] = by.get(r.status, 0) + 1
    scored = len(results) - by.get("equivalent", 0)
    killed = by.get("killed", 0) + by.get("timeout", 0)
    score = 100.0 * killed / scored if scored else 100.0
    print(f"{name}: {len(results)} mutants, killed {killed}, survived "
          f"{by.get('survived', 0)}, equivalent {by.get('equivalent', 0)}: "
          f"score {score:.1f}% ({seconds:.0f} s)", flush=True)
    for r in sorted(results, key=lambda r: r.line):
        if r.status == "survived":
            print(f"  SURVIVED {name} line {r.line}: {r.description}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
