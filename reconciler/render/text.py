"""Terminal rendering, Terraform-like: a heading per object, + ~ - lines, the field that
forces the class marked, hidden-field counts, a legend and a one-line summary.

Colour goes through rich only when asked for; without it the output is plain text with
no escape sequences.
"""

from __future__ import annotations

import io

from reconciler.planning.classify import Disruption
from reconciler.planning.plan_model import ObjectChange, Plan
from reconciler.render.color import want_color as want_color
from reconciler.render.common import (
    LEGEND,
    Line,
    change_lines,
    data_loss_line,
    disk_lines,
    heading,
    placement_line,
    summary_line,
    symbol,
    unpinned_summary,
)

# (text, style) pieces of one output line; style "" is plain.
Piece = tuple[str, str]

SIGN_STYLE = {"+": "green", "~": "yellow", "-": "red", "-/+": "magenta", "!": "bold red",
              "=": "cyan"}
CLASS_STYLE = {
    Disruption.NONE: "", Disruption.LIVE: "cyan", Disruption.RESTART: "yellow",
    Disruption.REPLACE: "magenta", Disruption.DATA_LOSS: "bold red",
}


def render_text(plan: Plan, *, color: bool = False) -> str:
    lines = plan_lines(plan)
    if not color:
        return "".join("".join(text for text, _ in line) + "\n" for line in lines)
    from rich.console import Console  # colour only: plain output never pays for rich
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="standard", width=10_000,
                      highlight=False, emoji=False, soft_wrap=True, no_color=False)
    for line in lines:
        console.print(Text.assemble(*line), end="\n")
    return buf.getvalue()


def plan_lines(plan: Plan) -> list[list[Piece]]:
    out: list[list[Piece]] = []
    if plan.empty:
        out.append([(f"No changes. {plan.summary.unchanged} objects are up to date.", "bold")])
    else:
        out.append([("virtsync will perform the following actions:", "bold")])
        used: set[str] = set()
        for c in plan.changes:
            out.append([])
            out.extend(_object_lines(c, used))
        out.append([])
        out.append([("Symbols: ", ""), *_legend(used)])
    note = unpinned_summary(plan)
    if note:
        out.append([(note, "dim")])
    loss = data_loss_line(plan.summary)
    if loss:
        out.append([(loss, "bold red")])
    out.append([(summary_line(plan.summary), "bold")])
    return out


def _legend(used: set[str]) -> list[Piece]:
    pieces: list[Piece] = []
    for sign, meaning in LEGEND.items():
        if sign in used:
            if pieces:
                pieces.append(("  ", ""))
            pieces.append((sign, SIGN_STYLE[sign]))
            pieces.append((f" {meaning}", ""))
    return pieces


def _object_lines(c: ObjectChange, used: set[str]) -> list[list[Piece]]:
    sign = symbol(c)
    used.add(sign)
    style = CLASS_STYLE[c.disruption] or "bold"
    out: list[list[Piece]] = [
        [("  # ", "dim"), (str(c.key), "bold"), (" ", ""), (heading(c), style)],
        [(f"  # ({c.source}; {c.disruption.label}: {c.cause})", "dim")],
    ]
    where = placement_line(c)
    if where is not None:
        out.append([(f"  # {where}", "bold" if c.placement and c.placement.moves else "dim")])
    if c.disruption == Disruption.DATA_LOSS:
        used.add("!")
        out.append([("  ! ", SIGN_STYLE["!"]), ("data loss: " + c.cause, SIGN_STYLE["!"])])
    out.append([(f"  {sign} ", SIGN_STYLE[sign]), (str(c.key), "bold")])
    body = change_lines(c)
    out.extend(_field_piece(line, used) for line in body)
    if c.unchanged:
        out.append([(f"      ({c.unchanged} unchanged fields hidden)", "dim")])
    out.extend(_field_piece(line, used) for line in disk_lines(c))
    return out


def _field_piece(line: Line, used: set[str]) -> list[Piece]:
    used.add(line.sign)
    pieces: list[Piece] = [(f"      {line.sign} ", SIGN_STYLE[line.sign]), (line.text, "")]
    if line.note:
        pieces.append((f"  # {line.note}", "bold"))
    return pieces

