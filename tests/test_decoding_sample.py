"""The sample's grammar, as the checker of generated captions reads it."""

from uvs.datasets import load_split
from uvs.decoding.samplecheck import parse


def test_grammar_parses_the_sample_and_nothing_else(tmp_path):
    caps = load_split("sample", "dev", str(tmp_path)).caps
    assert all(parse(c) is not None for c in caps)
    for bad in ("a dog runs", "a dog dog runs .", "the red runs .", "a dog is runs ."):
        assert parse(bad) is None
