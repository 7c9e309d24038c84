"""Checking SC-NLM captions of the synthetic sample: does each follow its template?"""

from __future__ import annotations

from uvs import sample


def follows(caption: str, template: str) -> bool:
    """Whether every word has the template's tag at its position, and there are as many words
    as tags (the sample's lexicon tags the words)."""
    words, tags = caption.split(), template.split()
    return len(words) == len(tags) and all(
        sample.LEXICON.get(w) == t for w, t in zip(words, tags, strict=True))


def follow_rate(captions: list[str], templates: list[str]) -> float:
    """The fraction of captions that follow their template."""
    pairs = list(zip(captions, templates, strict=True))
    return sum(follows(c, t) for c, t in pairs) / max(len(pairs), 1)
