"""Part-of-speech tags beside caption files: `X_tags.txt` for `X_caps.txt`, one line per
caption, one Penn-Treebank tag per token.

The sample's grammar writes exact tags; real captions are tagged with spaCy (the `[pos]`
extra, an English pipeline installed as spaCy documents it) and the tags cached beside them.
"""

from __future__ import annotations

import os

from uvs import sample
from uvs.errors import UVSError
from uvs.fileio import atomic_path, read_lines

SPACY_MODEL = "en_core_web_sm"


def tags_path(caps_path: str) -> str:
    """`X_tags.txt` beside `X_caps.txt` (else `CAPS.tags.txt`)."""
    if caps_path.endswith("_caps.txt"):
        return caps_path[: -len("_caps.txt")] + "_tags.txt"
    return caps_path + ".tags.txt"


def read_tags(path: str, caps: list[str]) -> list[list[str]]:
    """The tag file of `caps`, checked: as many lines as captions, as many tags as tokens."""
    lines = read_lines(path)  # split at \n only, as the captions: line i tags caption i
    if len(lines) != len(caps):
        raise UVSError(path, f"has {len(lines)} lines, the captions {len(caps)}")
    tags = [line.split() for line in lines]
    for i, (t, c) in enumerate(zip(tags, caps, strict=True)):
        if len(t) != len(c.split()):
            raise UVSError(path, f"line {i + 1} has {len(t)} tags for the {len(c.split())} "
                           "tokens of its caption")
    return tags


def tag_with_spacy(caps: list[str], model: str = SPACY_MODEL) -> list[list[str]]:
    """Penn-Treebank tags (`token.tag_`) of whitespace-split captions from a spaCy pipeline."""
    import spacy
    from spacy.tokens import Doc

    nlp = spacy.load(model)
    out = []
    for cap in caps:
        doc = Doc(nlp.vocab, words=cap.split())
        for _, proc in nlp.pipeline:
            doc = proc(doc)
        out.append([t.tag_ for t in doc])
    return out


def load_tags(caps_path: str, caps: list[str]) -> list[list[str]]:
    """The tags of a caption file: its tag file if there is one; else tagged with spaCy and
    cached beside it; else a one-line error naming both ways out."""
    path = tags_path(caps_path)
    if os.path.exists(path):
        return read_tags(path, caps)
    folder = os.path.dirname(os.path.abspath(caps_path))
    if os.path.basename(folder) == "sample" and os.path.basename(caps_path).startswith(
            "sample_"):  # a sample made before uvs wrote its tags: the grammar knows them

        try:
            sample.write_tags(folder)
            return read_tags(path, caps)
        except (KeyError, OSError):
            pass
    try:
        tags = tag_with_spacy(caps)
    except (ImportError, OSError):
        raise UVSError(caps_path, f"no part-of-speech tags ({path} is missing) and no tagger:"
                       " write that file (one line of tags per caption) or install the "
                       f"[pos] extra and an English spaCy pipeline (python -m spacy download "
                       f"{SPACY_MODEL})") from None

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(" ".join(t) + "\n" for t in tags)
    return tags
