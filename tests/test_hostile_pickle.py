"""Hostile pickles: each is refused in one line, quickly, before it can crash, hang or fill
memory."""

from __future__ import annotations

import struct
from collections import OrderedDict

import numpy as np
import pytest
from clirun import one_line_error, run
from hang import no_hang
from models import write_tiny_model
from py2pickle import Global, Reduce, dumps_py2

from uvs import legacy
from uvs.errors import UVSError
from uvs.legacy import load_pickle


def write(tmp_path, data: bytes, name: str = "f.pkl") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def refused(path: str, *fragments: str, allow_numpy: bool = False) -> str:
    with pytest.raises(UVSError) as info:
        load_pickle(path, allow_numpy=allow_numpy)
    message = str(info.value)
    assert message.startswith(path + ": ") and "\n" not in message and message.isprintable()
    for fragment in fragments:
        assert fragment in message, message
    return message


def binunicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def laughs(levels: int = 9, width: int = 10) -> bytes:
    """The billion laughs: each list holds `width` references to the one before."""
    out = bytearray(b"\x80\x02" + binunicode("lol") + b"q\x00")
    for level in range(1, levels + 1):
        out += b"](" + (b"h" + bytes([level - 1])) * width + b"eq" + bytes([level])
    return bytes(out + b".")


# --------------------------------------------------------------------------- nesting
def test_tuple_nested_a_million_deep_as_a_dict_key(tmp_path):
    # Built by the C unpickler, hashing this key overflowed the C stack (SIGSEGV).
    data = b"\x80\x02}" + b")" + b"\x85" * 10**6 + b"K\x01s."
    message = refused(write(tmp_path, data), f"deeper than {legacy.MAX_DEPTH} levels")
    assert "refusing the pickle" in message


def test_marks_nested_a_million_deep(tmp_path):
    refused(write(tmp_path, b"(" * 10**6 + b"t."), f"deeper than {legacy.MAX_DEPTH}")


def test_lists_nested_beyond_the_limit(tmp_path):
    n = 5000
    refused(write(tmp_path, b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."), "deeper than")


def test_nesting_at_the_limit_still_loads(tmp_path):
    value: object = "x"
    for _ in range(legacy.MAX_DEPTH - 1):
        value = [value]
    loaded = load_pickle(write(tmp_path, dumps_py2(value, protocol=2)))
    for _ in range(legacy.MAX_DEPTH - 1):
        loaded = loaded[0]
    assert loaded == "x"


def test_a_list_that_contains_itself(tmp_path):
    refused(write(tmp_path, b"\x80\x02]q\x00h\x00a."), "contains itself")


# --------------------------------------------------------------------------- expansion
def test_billion_laughs(tmp_path):
    data = laughs()
    assert len(data) < 1024
    refused(write(tmp_path, data), f"more than {legacy.MAX_OBJECTS} objects")


def test_billion_laughs_in_a_model_ends_info_and_convert_in_one_line(tmp_path):
    base, *_ = write_tiny_model(tmp_path, layout="order", name="bomb")
    with open(base + ".pkl", "wb") as f:
        f.write(laughs())
    one_line_error(run("info", base), "bomb.pkl", "refusing the pickle")
    out = tmp_path / "out.npz"
    one_line_error(run("convert", base, "-o", out), "bomb.pkl")
    assert not out.exists()


def test_a_large_string_shared_thousands_of_times(tmp_path):
    # 1 MiB referenced 4000 times: 4 GiB once expanded (printed, converted to JSON).
    data = (b"\x80\x02" + b"T" + struct.pack("<I", 2**20) + b"a" * 2**20 + b"q\x00"
            + b"](" + b"h\x00" * 4000 + b"e.")
    refused(write(tmp_path, data), f"expand to more than {legacy.MAX_TEXT} bytes")


def test_a_shared_string_is_decoded_once(tmp_path):
    word = "é" * 1000
    loaded = load_pickle(write(tmp_path, dumps_py2([word] * 500)))
    assert loaded == [word] * 500
    assert all(item is loaded[0] for item in loaded)


def test_too_many_operations(tmp_path, monkeypatch):
    monkeypatch.setattr(legacy, "MAX_OBJECTS", 1000)
    refused(write(tmp_path, b"\x80\x02" + b"N0" * 600 + b"N."), "more than 1000 objects")


def test_huge_integer(tmp_path):
    data = b"\x80\x02\x8b" + struct.pack("<i", 4096) + b"\x01" * 4096 + b"."
    refused(write(tmp_path, data), f"more than {legacy.MAX_INT_BITS} bits")


def test_lengths_beyond_the_file_are_not_allocated(tmp_path):
    refused(write(tmp_path, b"\x80\x04\x8d" + b"\xff" * 7 + b"\x7f"), "not a readable pickle")
    refused(write(tmp_path, b"\x80\x02T\xff\xff\xff\x7fab."), "not a readable pickle")


# --------------------------------------------------------------------------- containers
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x80\x02]K\x01K\x02s.", "sets an item of something that is not a plain container"),
        (b"\x80\x02}K\x01a.", "appends to something that is not a plain container"),
        (b"\x80\x02ccollections\nOrderedDict\n)R}b.", "sets the state of an object"),
        (b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R.", "other than a list of pairs"),
        (b"\x80\x02K\x01K\x02R.", "arguments are not a tuple"),
        (b"\x80\x02K\x01)R.", "it calls"),
    ],
)
def test_containers_are_only_used_as_plain_data(tmp_path, data, fragment):
    refused(write(tmp_path, data), fragment)


@pytest.mark.parametrize("opcode", [b"\x81", b"\x92", b"\x82\x01", b"\x97", b"\x98"])
def test_object_building_opcodes_are_refused(tmp_path, opcode):
    refused(write(tmp_path, b"\x80\x05N)" + opcode + b"."), "not a readable pickle")


# --------------------------------------------------------------------------- NumPy
ND = Global("numpy.core.multiarray", "_reconstruct")


def f8(code: str = "f8", state: tuple = (3, "<", None, None, None, -1, -1, 0), copy: int = 1):
    return Reduce(Global("numpy", "dtype"), (code, 0, copy), state)


def array(shape, dtype, data: bytes, version: int = 1):
    return Reduce(ND, (Global("numpy", "ndarray"), (0,), "b"),
                  (version, shape, dtype, False, data))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        # numpy.ndarray(shape, dtype, buffer, offset, strides): pointers or a 3.6 TiB view
        (Reduce(Global("numpy", "ndarray"), ((2**20, 2**20), f8(), b"x" * 8, 0, (0, 0))),
         "it calls ndarray"),
        (Reduce(Global("numpy", "ndarray"), ((4,), f8())), "it calls ndarray"),
        (array((2,), f8("O8"), b"\0" * 16), "numpy dtype 'O8' is not a plain numeric type"),
        (array((2,), f8("V8"), b"\0" * 16), "'V8' is not a plain numeric type"),
        (array((2,), f8("S8"), b"\0" * 16), "'S8' is not a plain numeric type"),
        (array((2,), f8("f8", (3, "<", None, ("a",), {"a": (f8(), 0)}, 8, 1, 0)), b"\0" * 16),
         "dtype state that is not a plain numeric type"),
        (array((2,), f8(copy=0), b"\0" * 16), "'f8' is not a plain numeric type"),
        (array((10**4, 10**4), f8(), b"\0" * 16), "whose data is not 800000000 bytes"),
        (array((2**40, 2**40), f8(), b""), "arrays hold more than"),
        (array((2,), f8(), [1.0, 2.0]), "whose data is not 16 bytes"),
        (array((-2,), f8(), b""), "shape is not a tuple of sizes"),
        (array((2,), f8(), b"\0" * 16, version=7), "state version 7"),
        (Reduce(ND, (Global("numpy", "dtype"), (0,), "b")), "other than (ndarray, (0,), 'b')"),
        (Reduce(ND, (Global("numpy", "ndarray"), (10**12,), "b")), "other than (ndarray"),
        (Reduce(Global("numpy.core.multiarray", "scalar"), (f8("O8"), b"\0" * 8)),
         "not a plain numeric type"),
        (Reduce(Global("numpy.core.multiarray", "scalar"), (f8(), b"\0" * 3)),
         "not plain numeric data"),
    ],
)
def test_numpy_only_as_plain_numeric_arrays(tmp_path, value, fragment):
    path = write(tmp_path, dumps_py2({"param values": [value]}, protocol=2))
    refused(path, "refusing the pickle", fragment, allow_numpy=True)


def test_numpy_dtype_state_is_set_once(tmp_path):
    state = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    built = b"\x80\x02cnumpy\ndtype\nU\x02f8K\x00K\x01\x87R(K\x03U\x01<" + state
    assert str(load_pickle(write(tmp_path, built + b"."), allow_numpy=True)) == "float64"
    refused(write(tmp_path, built + b"(K\x03U\x01>" + state + b"."),
            "sets the state of an object", allow_numpy=True)


def test_plain_arrays_of_every_numeric_kind_still_load(tmp_path):
    arrays = [np.arange(6).astype(t).reshape(2, 3) for t in
              ("f2", "f4", ">f8", "i1", "<i8", "u2", "?", "c8")]
    loaded = load_pickle(write(tmp_path, dumps_py2({"a": arrays}, protocol=0)), allow_numpy=True)
    for got, want in zip(loaded["a"], arrays, strict=True):
        assert got.dtype.str[1:] == want.dtype.str[1:] and got.flags.writeable
        np.testing.assert_array_equal(got, want)
    assert np.dtype("f8").byteorder == "="  # NumPy's own dtypes were never modified


def test_vgg_weights_refused_in_one_line(tmp_path):
    pytest.importorskip("torchvision")
    from uvs import vgg

    bad = {"param values": [array((2**30, 2**30), f8(), b"")]}
    path = write(tmp_path, dumps_py2(bad, protocol=2), "vgg19.pkl")
    with pytest.raises(UVSError, match="refusing the pickle: its arrays hold more than"):
        vgg.build_convnet(path, device="cpu")


def test_two_pickles_in_a_row(tmp_path):
    worddict = OrderedDict((f"w{i}", i + 2) for i in range(50))
    path = write(tmp_path, dumps_py2(worddict) + dumps_py2({"w1": 3}))
    assert legacy.load_pickles(path, 2, "worddict then wordcount") == [worddict, {"w1": 3}]
    with pytest.raises(UVSError, match="holds 2 pickles, expected 3 in a row"):
        legacy.load_pickles(path, 3, "three")
    with pytest.raises(UVSError, match="refusing the pickle"):
        legacy.load_pickles(write(tmp_path, dumps_py2(worddict) + laughs()), 2, "two")


# --------------------------------------------------------------- shared tuples as keys
def doubling(levels: int, use: bytes) -> bytes:
    """A tuple shared twice at each of `levels` levels (2**levels leaves once expanded, in
    ~8 bytes a level), then `use` with it on the stack: b's' after '}' and a value, etc."""
    out = bytearray(b"\x80\x04)q\x000")
    for level in range(levels):
        out += b"h" + bytes([level]) + b"h" + bytes([level]) + b"\x86q" + bytes([level + 1]) + b"0"
    return bytes(out) + use.replace(b"TOP", b"h" + bytes([levels])) + b"."


DICT_KEY = b"}TOPK\x01s"
ORDERED_KEY = b"ccollections\nOrderedDict\n)RTOPK\x01s"
FROZEN = b"(TOP\x91"
SET_MEMBER = b"\x8f(TOP\x90"
PAIRS = b"ccollections\nOrderedDict\n]TOPK\x01\x86a\x85R"


@pytest.mark.parametrize("use", [DICT_KEY, ORDERED_KEY, FROZEN, SET_MEMBER, PAIRS])
@pytest.mark.parametrize("levels", [64, 28])
def test_a_shared_tuple_is_refused_before_anything_hashes_it(tmp_path, use, levels):
    data = doubling(levels, use)
    assert len(data) < 800
    with no_hang():
        message = refused(write(tmp_path, data), "refusing the pickle")
    assert f"expands to more than {legacy.MAX_OBJECTS} objects" in message


@pytest.mark.parametrize("use", [DICT_KEY, ORDERED_KEY, FROZEN, SET_MEMBER, PAIRS])
def test_only_scalars_are_hashed(tmp_path, use):
    # small enough to pass the expansion bound: refused for being a container key at all
    refused(write(tmp_path, doubling(3, use)), "is a tuple: only text, numbers and None")


def test_colliding_integer_keys_are_refused(tmp_path):
    # i and i + (2**61 - 1) hash alike: a million such keys make a dict quadratic
    data = b"\x80\x02}" + b"\x8a\x09" + (2**70).to_bytes(9, "little") + b"K\x01s."
    refused(write(tmp_path, data), f"integer of more than {legacy.MAX_KEY_INT_BITS} bits")


def test_scalar_keys_still_load(tmp_path):
    value = {"a": 1, b"b": 2, 3: 4, 2.5: None, None: True, True: 0}
    assert load_pickle(write(tmp_path, dumps_py2(value, protocol=2))) == {
        "a": 1, "b": 2, 3: 4, 2.5: None, None: True, True: 0}
    assert load_pickle(write(tmp_path, b"\x80\x04(K\x01X\x01\x00\x00\x00a\x91.")) == frozenset(
        {1, "a"})


def test_a_third_pickle_or_trailing_bytes_after_a_dictionary(tmp_path):
    two = dumps_py2(OrderedDict(a=2)) + dumps_py2({"a": 3})
    for tail in (dumps_py2({"b": 1}), b"\0", b"garbage"):
        path = write(tmp_path, two + tail)
        with pytest.raises(UVSError) as info:
            legacy.load_pickles(path, 2, "worddict then wordcount")
        assert str(info.value).startswith(path + ": holds more than the 2 pickles expected")
    assert legacy.load_pickles(write(tmp_path, two), 2, "two") == [{"a": 2}, {"a": 3}]


# ----------------------------------------------------- the hostile pickle at each entry
def released_decoder(tmp_path):
    from test_decoding_files import write_released

    npz, dictionary, _ = write_released(tmp_path)
    return npz, dictionary


def test_shared_tuple_through_a_model_options_pickle(tmp_path):
    base, *_ = write_tiny_model(tmp_path, layout="order", name="keys")
    with open(base + ".pkl", "wb") as f:
        f.write(doubling(64, DICT_KEY))
    with no_hang():
        one_line_error(run("info", base), "keys.pkl", "expands to more than")


@pytest.mark.parametrize("which", [0, 1])
def test_shared_tuple_through_either_pickle_of_a_decoder_dictionary(tmp_path, which):
    npz, dictionary = released_decoder(tmp_path)
    pickles = [dumps_py2({"a": 2}), dumps_py2({"a": 3})]
    pickles[which] = doubling(64, ORDERED_KEY)
    dictionary.write_bytes(b"".join(pickles))
    out = tmp_path / "out.npz"
    one_line_error(run("convert", npz, "--dictionary", dictionary, "-o", out),
                   str(dictionary), "expands to more than")
    assert not out.exists()


def test_trailing_bytes_after_a_decoder_dictionary(tmp_path):
    npz, dictionary = released_decoder(tmp_path)
    dictionary.write_bytes(dictionary.read_bytes() + dumps_py2({"x": 1}))
    one_line_error(run("info", npz, "--dictionary", dictionary), str(dictionary),
                   "holds more than the 2 pickles expected")


def decoder_train(tmp_path, data, *extra):
    """`uvs decoder train` on the sample in `data` with tiny dimensions; nothing written."""
    saveto = tmp_path / "run" / "dec.npz"
    saveto.parent.mkdir()
    res = run("decoder", "train", "--data", "sample", "--data-dir", data,
              "--condition", "features", "--dim", 8, "--dim-word", 4, "--batch-size", 500,
              "--max-epochs", 1, "--saveto", saveto, "-q", *extra)
    assert list(saveto.parent.iterdir()) == []
    return res


@pytest.mark.parametrize("flag", ["--dictionary", "--embeddings"])
def test_shared_tuple_through_decoder_train_inputs(tmp_path, sample_data, flag):
    path = write(tmp_path, doubling(64, DICT_KEY if flag == "--embeddings" else FROZEN))
    if flag == "--dictionary":
        path = write(tmp_path, doubling(64, b"}(TOP\x91K\x01s"), "d.pkl")
    one_line_error(decoder_train(tmp_path, sample_data, flag, path), path, "expands to more than")


def embeddings_pickle(tmp_path, value) -> str:
    return write(tmp_path, dumps_py2(value, protocol=2), "emb.pkl")


@pytest.mark.parametrize(("value", "fragment"), [
    ({"a": "0.1 0.2"}, "not a list or array of numbers (str)"),
    ({"a": {"x": 1.0}}, "not a list or array of numbers (dict)"),
    ({"a": [1.0, [2.0, 3.0]]}, "not a list or array of numbers (list)"),
    ({"a": [1.0, 2.0], "b": [1.0]}, "word vectors of different lengths (2 and 1"),
    ({"a": []}, "word vectors of 0 values"),
    ({"a": [0.0] * 70000}, "word vectors of 70000 values (1 to 65536 allowed)"),
    ({"a": [1e300, 0.0]}, "holds NaN, Inf or values beyond float32"),
    ({"a": [float("nan"), 0.0]}, "holds NaN, Inf or values beyond float32"),
    ([1.0, 2.0], "expected a non-empty pickle of {word: vector}"),
])
def test_bad_embeddings_are_one_line_errors(tmp_path, sample_data, value, fragment):
    path = embeddings_pickle(tmp_path, value)
    one_line_error(decoder_train(tmp_path, sample_data, "--embeddings", path), path, fragment)


def test_embeddings_beyond_the_wemb_bound_are_refused_before_building(tmp_path, sample_data,
                                                                    monkeypatch):
    from uvs.decoding import train

    # a Wemb of n_words x dim_word beyond the bound is refused before it is allocated
    monkeypatch.setattr(train, "MAX_WEMB_VALUES", 1000)
    path = embeddings_pickle(tmp_path, {w: [0.5] * 64 for w in ("a", "dog", "the")})
    res = decoder_train(tmp_path, sample_data, "--embeddings", path)  # after the data is read
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.splitlines()[-1] == f"Error: {path}: a 53 x 64 Wemb is more than 1000 values"


def test_good_embeddings_fill_their_rows(tmp_path):
    from uvs.decoding.train import load_embeddings, read_embeddings

    shared = np.arange(3, dtype="float64")
    path = embeddings_pickle(tmp_path, {"dog": shared, "cat": shared, "sea": [1, 2.5, -3],
                                        "unused": [0.0, 0.0, 0.0]})
    worddict = OrderedDict([("dog", 2), ("sea", 3), ("cat", 4)])
    wemb = load_embeddings(path, worddict, 5, np.random.RandomState(0), read_embeddings(path))
    assert wemb.shape == (5, 3) and wemb.dtype == np.float32
    np.testing.assert_array_equal(wemb[2], [0, 1, 2])
    np.testing.assert_array_equal(wemb[3], [1, 2.5, -3])
    np.testing.assert_array_equal(wemb[4], [0, 1, 2])
