"""The offline rewriter: an imperative, user-style instruction from the judge's structured verdict.

It writes the kind of instruction the paper's rewriter produces ("Make the woman turn her
head toward the dog.") from the category and the geometry the offline judge measured, so
the instruction states exactly the motion seen in the two frames and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

PROMPT_VERSION = "offline-rewrite-v1"


def _fits(details: dict[str, Any]) -> list[dict[str, Any]]:
    return details.get("fits") or [{}]


def instruction_for(category: str | None, details: dict[str, Any]) -> str:
    fits = _fits(details)
    colour = fits[0].get("colour", "main")
    if category == "locomotion":
        where = details.get("to")
        tail = f", ending up {where}" if where and where != details.get("from") else ""
        return f"Move the {colour} subject {details.get('direction', 'forward')}{tail}."
    if category == "orientation":
        deg = details.get("degrees")
        amount = f" by about {deg} degrees" if deg else ""
        return f"Turn the {colour} subject {details.get('turn', 'around')}{amount}."
    if category == "pose":
        if "turn" in details:
            return f"Make the {colour} figure swing its limb {details['turn']}."
        return f"Make the {colour} figure change its posture."
    if category == "deformation":
        how = "stretch and grow larger" if details.get("grows", True) else "squash down smaller"
        return f"Make the {colour} object {how}."
    if category == "subject_object":
        other = fits[1].get("colour", "other") if len(fits) > 1 else "other"
        return (
            f"Make the {colour} subject push the {other} object {details.get('direction', 'away')}."
        )
    if category == "subject_subject":
        who = (
            f"the {colour} and the {fits[1]['colour']} subjects"
            if len(fits) > 1
            else "the two subjects"
        )
        how = "move toward each other" if details.get("meet", True) else "move apart"
        return f"Make {who} {how}."
    return "Change the subject's motion as shown."


class OfflineRewriter:
    backend = "offline"
    model = "templates"
    prompt_version = PROMPT_VERSION

    def rewrite(self, verdict: dict[str, Any]) -> str:
        details = verdict.get("details") or {}
        if isinstance(details, str):
            details = json.loads(details)
        return instruction_for(verdict.get("category"), details)
