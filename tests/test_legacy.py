"""Safe reading of Python-2.7 pickles (uvs.legacy), against streams written the way cPickle did."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from py2pickle import Global, Py2Long, Py2Unicode, Reduce, dumps_py2, py2_reduce_payload

from uvs.errors import UVSError
from uvs.legacy import load_pickle

VSE_OPTIONS = {
    "data": "f8k",
    "cnn": "vgg19",
    "margin": 0.2,
    "dim": 1024,
    "dim_image": 4096,
    "dim_word": 300,
    "encoder": "gru",
    "max_epochs": 15,
    "dispFreq": 10,
    "decay_c": 0.0,
    "grad_clip": 2.0,
    "maxlen_w": 100,
    "optimizer": "adam",
    "batch_size": 128,
    "saveto": "/ais/gobi3/u/rkiros/uvsmodels/f8k.npz",
    "validFreq": 100,
    "lrate": 0.0002,
    "reload_": False,
    "use_dropout": True,
    "dictionary": None,
    "n_words": 8481,
    "big": 2**70,
    "neg": -3,
}

WORDS = ["<eos>", "UNK", "a", "dog", "café", "naïve", "日本", "dog\u00a0runs", "it's", 'say "hi"',
         "back\\slash", "é", "x"]


def write(tmp_path, data: bytes, name: str = "f.pkl") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ----------------------------------------------------------------------------- the writer
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1}, b"(dp1\nS'a'\nI1\ns."),
        ({"ab": 1}, b"(dp1\nS'ab'\np2\nI1\ns."),
        (OrderedDict([("dog", 2)]),
         b"ccollections\nOrderedDict\np1\n((lp2\n(lp3\nS'dog'\np4\naI2\naatRp5\n."),
        # PicklingTools' test suite holds these two, taken from real cPickle output:
        (OrderedDict([("a", 1), ("b", 2)]),
         b"ccollections\nOrderedDict\np1\n((lp2\n(lp3\nS'a'\naI1\naa(lp4\nS'b'\naI2\naatRp5\n."),
        (OrderedDict(), b"ccollections\nOrderedDict\np1\n((ltRp2\n."),
        ([0.2, True, False, None, -7], b"(lp1\nF0.20000000000000001\naI01\naI00\naNaI-7\na."),
        ((1, "ab"), b"(I1\nS'ab'\ntp1\n."),
        ((), b"(t."),
        ([], b"(lp1\n."),
        ({"k": {}}, b"(dp1\nS'k'\n(dp2\ns."),
        (2**70, b"L1180591620717411303424L\n."),
        (Py2Long(5), b"L5L\n."),
        (1.0, b"F1\n."),
        (1e22, b"F1e+22\n."),
        (0.1 + 0.2, b"F0.30000000000000004\n."),
        ("café", b"S'caf\\xc3\\xa9'\np1\n."),
        ("it's", b"S\"it's\"\np1\n."),
        ("it's \"x\"", b"S'it\\'s \"x\"'\np1\n."),
        ("a\tb\nc\\", b"S'a\\tb\\nc\\\\'\np1\n."),
        (Py2Unicode("café 日本\n"), b"Vcaf\xe9 \\u65e5\\u672c\\u000a\np1\n."),
        (["ab", "ab"], b"(lp1\nS'ab'\np2\nag2\na."),
    ],
)
def test_writer_matches_cpickle_protocol_0(value, expected):
    assert dumps_py2(value) == expected


def test_writer_protocol_2_and_str_repr_agree_with_python():
    assert dumps_py2({"a": [1, 300, 70000, -1]}, protocol=2) == (
        b"\x80\x02}q\x01U\x01a]q\x02(K\x01M,\x01J\x70\x11\x01\x00J\xff\xff\xff\xffes."
    )
    for raw in (b"", b"'", b'"', b"'\"", bytes(range(256))):
        # Python 2's str repr and Python 3's bytes repr are the same algorithm.
        assert dumps_py2(raw)[1:-1].split(b"\n")[0] == repr(raw)[1:].encode("latin-1")


def test_writer_output_is_what_python3_reads_back():
    value = {"options": dict(VSE_OPTIONS), "worddict": OrderedDict((w, i) for i, w in
                                                                   enumerate(WORDS))}
    raw = pickle.loads(dumps_py2(value), encoding="bytes")
    assert raw[b"options"][b"margin"] == 0.2
    assert list(raw[b"worddict"])[4] == "café".encode()


# ----------------------------------------------------------------------------- loading
def test_vse_options_round_trip(tmp_path):
    path = write(tmp_path, dumps_py2(VSE_OPTIONS), "f8k.npz.pkl")
    loaded = load_pickle(path)
    assert type(loaded) is dict
    assert loaded == VSE_OPTIONS
    assert list(loaded) == list(VSE_OPTIONS)
    assert type(loaded["margin"]) is float and type(loaded["reload_"]) is bool
    assert all(type(k) is str for k in loaded)


def test_worddict_non_ascii_words_keep_text_and_order(tmp_path):
    worddict = OrderedDict((w, i) for i, w in enumerate(WORDS))
    path = write(tmp_path, dumps_py2(worddict), "f8k.npz.dictionary.pkl")
    with pytest.raises(UnicodeDecodeError):
        with open(path, "rb") as fh:
            pickle.load(fh)  # what the plain Python-3 reader does with these files
    loaded = load_pickle(path)
    assert type(loaded) is OrderedDict
    assert list(loaded.items()) == list(worddict.items())
    assert "café" in loaded and "dog\u00a0runs" in loaded and "日本" in loaded


def test_order_embedding_snapshot(tmp_path):
    worddict = OrderedDict((w, i + 2) for i, w in enumerate(WORDS[2:]))
    options = {"method": "order", "abs": True, "cnn": "10crop", "margin": 0.05, "dim": 1024,
               "n_words": len(worddict) + 2, "lrate": 0.001}
    path = write(tmp_path, dumps_py2({"options": options, "worddict": worddict}), "order.pkl")
    loaded = load_pickle(path)
    assert loaded == {"options": options, "worddict": worddict}
    assert type(loaded["worddict"]) is OrderedDict
    assert list(loaded["worddict"]) == list(worddict)


def test_containers_keep_their_types_and_sharing(tmp_path):
    shared = ["xy", "xy"]
    value = {"t": (1, "ab", ("cd",)), "l": [shared, shared], "u": Py2Unicode("ünï")}
    loaded = load_pickle(write(tmp_path, dumps_py2(value)))
    assert loaded["t"] == (1, "ab", ("cd",)) and type(loaded["t"]) is tuple
    assert loaded["l"][0] is loaded["l"][1] and loaded["l"][0] == ["xy", "xy"]
    assert loaded["u"] == "ünï"


def test_invalid_utf8_decodes_as_latin1(tmp_path):
    loaded = load_pickle(write(tmp_path, dumps_py2({b"caf\xe9": b"\xff\xfe", "ok": "é"})))
    assert loaded == {"café": "ÿþ", "ok": "é"}


@pytest.mark.parametrize("protocol", [0, 2])
def test_numpy_arrays_as_python2_wrote_them(tmp_path, protocol):
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4), np.ones(5, dtype=np.float32),
              np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.array([1, 255], np.uint8),
              np.array([True, False])]
    value = {"param values": arrays, "synset words": ["tench", "goldfish"],
             "mean value": np.array([103.939, 116.779, 123.68])}
    path = write(tmp_path, dumps_py2(value, protocol=protocol), "vgg19.pkl")
    with pytest.raises(UVSError, match="refusing to load numpy.core.multiarray._reconstruct"):
        load_pickle(path)
    loaded = load_pickle(path, allow_numpy=True)
    assert list(loaded) == ["param values", "synset words", "mean value"]
    assert loaded["synset words"] == ["tench", "goldfish"]
    for got, want in zip(loaded["param values"] + [loaded["mean value"]],
                         arrays + [value["mean value"]], strict=True):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_numpy_scalar_as_python2_wrote_it(tmp_path):
    f8 = Reduce(Global("numpy", "dtype"), ("f8", 0, 1), (3, "<", None, None, None, -1, -1, 0))
    value = {"lr": Reduce(Global("numpy.core.multiarray", "scalar"),
                          (f8, np.float64(0.25).tobytes()))}
    loaded = load_pickle(write(tmp_path, dumps_py2(value)), allow_numpy=True)
    assert loaded == {"lr": 0.25} and type(loaded["lr"]) is np.float64


def test_numpy_array_pickled_by_python3(tmp_path):
    arr = np.arange(4, dtype=np.float32)
    path = write(tmp_path, pickle.dumps({"w": arr}, protocol=4))
    np.testing.assert_array_equal(load_pickle(path, allow_numpy=True)["w"], arr)


# ----------------------------------------------------------------------------- refusing
def test_os_system_payload_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned"
    path = write(tmp_path, py2_reduce_payload(str(target)))
    for allow_numpy in (False, True):
        with pytest.raises(UVSError) as info:
            load_pickle(path, allow_numpy=allow_numpy)
        assert "refusing to load os.system from an untrusted pickle" in str(info.value)
        assert str(info.value).startswith(path + ": ")
    assert not target.exists()


@pytest.mark.parametrize(
    ("callable_", "args"),
    [
        (Global("posix", "system"), ("touch {target}",)),
        (Global("__builtin__", "eval"), ("open({target!r}, 'w')",)),
        (Global("builtins", "eval"), ("open({target!r}, 'w')",)),
        (Global("builtins", "exec"), ("open({target!r}, 'w')",)),
        (Global("subprocess", "call"), (["touch", "{target}"],)),
        (Global("numpy", "load"), ("{target}",)),
        (Global("numpy.testing._private.utils", "runstring"), ("open({target!r}, 'w')", {})),
        (Global("_codecs", "encode"), ("x", "latin1")),
        (Global("copy_reg", "_reconstructor"), ()),
        (Global("collections", "namedtuple"), ("T", "a b")),
    ],
)
def test_other_globals_are_refused(tmp_path, callable_, args):
    target = str(tmp_path / "pwned")

    def fill(x):
        if isinstance(x, str):
            return x.format(target=target)
        if isinstance(x, (list, tuple)):
            return type(x)(fill(y) for y in x)
        return x

    path = write(tmp_path, dumps_py2([Reduce(callable_, fill(args))]))
    refused = f"refusing to load {callable_.module}.{callable_.name} "
    for allow_numpy in (False, True):
        with pytest.raises(UVSError, match=refused):
            load_pickle(path, allow_numpy=allow_numpy)
    assert not os.path.exists(target)


def test_inst_opcode_is_refused(tmp_path):
    inst = write(tmp_path, b"(ios\nsystem\n(S'true'\ntb.", "inst.pkl")
    with pytest.raises(UVSError, match="refusing to load os.system"):
        load_pickle(inst)


# ----------------------------------------------------------------------------- broken files
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "not a readable pickle (the file is empty)"),
        (dumps_py2(VSE_OPTIONS)[:57], "not a readable pickle ("),
        (dumps_py2(OrderedDict([("dog", 2), ("cat", 3)]))[:-1], "not a readable pickle ("),
        (bytes(range(7, 256)) * 3, "not a readable pickle ("),
        (b"\x80\x02}q\x01(U\x01aK\x01", "not a readable pickle ("),
        (b"PK\x03\x04\x14\x00\n\x00", "not a readable pickle (a zip archive"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", "not a readable pickle (a .npy file"),
        (b"\x1f\x8b\x08\x00", "not a readable pickle (gzip-compressed"),
        (b"Pabc\n.", "not a readable pickle ("),
        (b"g99\n.", "not a readable pickle ("),
        (b"\x80\x04\x8d" + b"\xff" * 7 + b"\x7f", "not a readable pickle ("),
        (b"\x80\x04\x8e" + b"\x00" * 7 + b"\x40", "not a readable pickle ("),
    ],
)
def test_unreadable_files_give_one_line_naming_the_path(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(UVSError) as info:
        load_pickle(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {expected}")
    assert "\n" not in message and message.isprintable()
    assert info.value.path == path


def test_random_bytes_never_escape_as_other_errors(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(300):
        path = write(tmp_path, rng.bytes(int(rng.integers(1, 200))), f"r{i}.pkl")
        try:
            load_pickle(path, allow_numpy=bool(i % 2))
        except UVSError as err:
            assert "\n" not in str(err) and str(err).startswith(path + ": ")


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.pkl"
    with pytest.raises(UVSError) as info:
        load_pickle(missing)
    assert str(info.value) == f"{missing}: file not found"
    with pytest.raises(UVSError, match="a folder, not a regular file"):
        load_pickle(tmp_path)
