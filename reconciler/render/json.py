"""JSON rendering: the plan's versioned document (schemas/plan.schema.json)."""

from __future__ import annotations

import json

from reconciler.planning.plan_codec import to_document
from reconciler.planning.plan_model import Plan


def render_json(plan: Plan) -> str:
    return json.dumps(to_document(plan), indent=2, ensure_ascii=False) + "\n"
