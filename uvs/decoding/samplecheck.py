"""Checking captions generated for the synthetic sample against the grammar that made it.

`uvs.sample` writes `{a|the} [colour] subject {verb | is verb-ing} [place] .`; `parse` reads
a sentence back into its scene parts, or None when the grammar cannot produce it.
"""

from __future__ import annotations

import re

from uvs import sample


def parse(sentence: str) -> dict | None:
    """{'subject', 'colour', 'action', 'place'} of a sentence of the sample's grammar, else None."""
    colours = "|".join(sample.COLOURS)
    subjects = "|".join(sample.SUBJECTS)
    verbs = "|".join([a for a, _ in sample.ACTIONS] + [f"is {b}" for _, b in sample.ACTIONS])
    places = "|".join(re.escape(p) for pair in sample.PLACES for p in pair)
    m = re.fullmatch(rf"(a|the) (?:({colours}) )?({subjects}) ({verbs})(?: ({places}))? \.",
                     sentence)
    if not m:
        return None
    verb = m.group(4).removeprefix("is ")
    action = next(i for i, pair in enumerate(sample.ACTIONS) if verb in pair)
    place = None if m.group(5) is None else next(
        i for i, pair in enumerate(sample.PLACES) if m.group(5) in pair)
    return {"subject": sample.SUBJECTS.index(m.group(3)),
            "colour": None if m.group(2) is None else sample.COLOURS.index(m.group(2)),
            "action": action, "place": place}


def rates(captions: list[str], names: list[str]) -> dict:
    """How often generated captions are grammatical and name the image's subject / action."""
    parsed = [parse(c) for c in captions]
    scenes = [sample.scene_of(n) for n in names]
    n = len(captions)
    return {"grammatical": sum(p is not None for p in parsed) / n,
            "subject": sum(p is not None and p["subject"] == s["subject"]
                           for p, s in zip(parsed, scenes, strict=True)) / n,
            "action": sum(p is not None and p["action"] == s["action"]
                          for p, s in zip(parsed, scenes, strict=True)) / n,
            "subject_chance": 1 / len(sample.SUBJECTS),
            "action_chance": 1 / len(sample.ACTIONS)}
