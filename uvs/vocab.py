"""Tokenising as Python 2 did on byte strings, and the training vocabulary."""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Iterable

# Python 2's str.split() on byte strings split on ASCII whitespace only.
_TOKEN = re.compile(r"[^ \t\n\r\x0b\x0c]+")
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"


def tokenize(sentence: str) -> list[str]:
    """Split on ASCII whitespace only: a no-break space stays inside its token."""
    return _TOKEN.findall(sentence)


def build_dictionary(text: Iterable[str]) -> tuple[OrderedDict, OrderedDict]:
    """Word → index by decreasing count, indices from 2 (0 is `<eos>`, 1 is UNK).

    Ties keep the order of first appearance (the original's unstable sort left them arbitrary).
    Returns (worddict, wordcount).
    """
    wordcount: Counter = Counter()
    for cc in text:
        wordcount.update(tokenize(cc))
    ordered = sorted(wordcount, key=lambda w: -wordcount[w])  # stable: first seen first
    worddict = OrderedDict((w, idx + 2) for idx, w in enumerate(ordered))
    return worddict, OrderedDict(wordcount)


def word_ids(tokens: list[str], worddict: dict, n_words: int) -> list[int]:
    """Indices of `tokens`; a word outside the dictionary or at index ≥ n_words becomes 1 (UNK)."""
    ids = []
    for w in tokens:
        i = worddict.get(w, 1)
        ids.append(i if i < n_words else 1)
    return ids


def unknown_words(sentences: Iterable[str], worddict: dict, n_words: int) -> list[str]:
    """The distinct tokens of `sentences` that `word_ids` reads as UNK, in order of appearance."""
    seen: dict[str, None] = {}
    for s in sentences:
        for w in tokenize(s):
            if word_ids([w], worddict, n_words) == [1]:
                seen.setdefault(w, None)
    return list(seen)


def inverse(worddict: dict) -> dict[int, str]:
    """Index → word of `worddict`, with 0 as `<eos>` and 1 as UNK (the originals' word_idict)."""
    word_idict = {vv: kk for kk, vv in worddict.items()}
    word_idict[0] = "<eos>"
    word_idict[1] = "UNK"
    return word_idict


def text(word_idict: dict, ids: Iterable[int], eos: bool = True) -> str:
    """Word indices as text, an index outside `word_idict` as UNK; up to the first 0 (`<eos>`)
    when `eos`, else every index."""
    out = []
    for i in ids:
        if eos and i == 0:
            break
        out.append(word_idict.get(int(i), "UNK"))
    return " ".join(out)
