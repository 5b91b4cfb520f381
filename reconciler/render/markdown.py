"""Markdown for pull-request comments: summary first, data loss and restarts called out
at the top, one <details> per object with a diff block, a hidden marker so a CI job can
find and update its own comment, and a hard size cap below GitHub's 65,536 characters
(whole objects are left out, never half a code block)."""

from __future__ import annotations

import html

from reconciler.core.model import Action
from reconciler.planning.classify import Disruption
from reconciler.planning.plan_model import ObjectChange, Plan
from reconciler.render.common import (
    change_lines,
    data_loss_line,
    disk_lines,
    heading,
    placement_line,
    summary_line,
    unpinned_summary,
)

MARKER = "<!-- virtsync-plan -->"
# GitHub refuses comment bodies over 65,536 characters; keep clear of it.
MAX_CHARS = 65_000
MAX_CALLOUT_ITEMS = 20


def code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fence(body: str) -> str:
    run, longest = 0, 0
    for ch in body:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def render_markdown(plan: Plan, *, max_chars: int = MAX_CHARS, title: str = "virtsync plan",
                    footer: str = "") -> str:
    head = [MARKER, f"### {title}", "", f"**{summary_line(plan.summary)}**", ""]
    loss = data_loss_line(plan.summary)
    if loss:
        head += [f"**{loss}**", ""]
    if plan.empty:
        head.append(f"No changes: {plan.summary.unchanged} objects are up to date.")
    head.extend(_callouts(plan))
    note = unpinned_summary(plan)
    if note:
        head += [f"<sub>{html.escape(note)}</sub>", ""]
    fp = plan.fingerprints
    desired = fp.desired_commit[:12] if fp.desired_commit else "work tree"
    tail = ["", f"<sub>desired: {html.escape(desired)} · live: {html.escape(fp.live_source)} "
            f"· backend: {html.escape(plan.backend)}</sub>"]
    if footer:
        tail += ["", footer]
    text = "\n".join(head) + "\n"
    tail_text = "\n".join(tail) + "\n"
    omitted = 0
    reserve = 400 + len(tail_text)  # room for the "N objects not shown" line and footer
    for i, c in enumerate(plan.changes):
        section = _section(c)
        if len(text) + len(section) + reserve > max_chars:
            omitted = len(plan.changes) - i
            break
        text += section
    if omitted:
        text += (f"\n> [!NOTE]\n> {omitted} more object{'s' if omitted != 1 else ''} not shown "
                 "(comment size limit). Run `virtsync plan` or see the JSON plan artifact "
                 "for the full list.\n")
    text += tail_text
    return text


def _callouts(plan: Plan) -> list[str]:
    out: list[str] = []
    loss = [c for c in plan.changes if c.disruption == Disruption.DATA_LOSS]
    restart = [c for c in plan.changes if Action.RESTART in c.actions]
    replace = [c for c in plan.changes if Action.REPLACE in c.actions
               and c.disruption != Disruption.DATA_LOSS]
    migrate = [c for c in plan.changes if Action.MIGRATE in c.actions]
    for kind, title, items in (("CAUTION", "Destroys data", loss),
                               ("WARNING", "Restarts", restart),
                               ("WARNING", "Replaced", replace),
                               ("NOTE", "Live migrations", migrate)):
        if not items:
            continue
        out += [f"> [!{kind}]", f"> **{title}: {len(items)} object"
                f"{'s' if len(items) != 1 else ''}**"]
        for c in items[:MAX_CALLOUT_ITEMS]:
            out.append(f"> - {code(str(c.key))}: {html.escape(c.cause)}")
        if len(items) > MAX_CALLOUT_ITEMS:
            out.append(f"> - … and {len(items) - MAX_CALLOUT_ITEMS} more")
        out.append("")
    return out


def _section(c: ObjectChange) -> str:
    lines = []
    for line in change_lines(c):
        sign = "-" if line.sign == "-" else "+" if line.sign == "+" else "!"
        note = f"  # {line.note}" if line.note else ""
        lines.append(f"{sign} {line.text}{note}")
    if c.unchanged:
        lines.append(f"  ({c.unchanged} unchanged fields hidden)")
    for line in disk_lines(c):  # deleted files and kept claims (rule 13)
        lines.append(f"{'-' if line.sign == '-' else ' '} {line.text}  # {line.note}")
    body = "\n".join(lines)
    fence = _fence(body)
    summary = (f"<code>{html.escape(str(c.key))}</code> {html.escape(heading(c))} "
               f"<sub>({html.escape(c.disruption.label)})</sub>")
    where = placement_line(c)
    placed = f"{html.escape(where)}\n\n" if where is not None else ""
    return (f"<details><summary>{summary}</summary>\n\n"
            f"{code(c.source)}: {html.escape(c.cause)}\n\n{placed}"
            f"{fence}diff\n{body}\n{fence}\n</details>\n\n")
