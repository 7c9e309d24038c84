"""Hostile model archives: each ends in one line naming the file and the problem, before any
parameter data is allocated, and nothing is written."""

from __future__ import annotations

import io
import json
import os
import struct
import time
import zipfile

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from models import tiny_options, tiny_worddict, write_tiny_model
from py2pickle import dumps_py2

from uvs import modelfile
from uvs.errors import UVSError
from uvs.modelfile import read_model, read_npz, write_model


@pytest.fixture()
def tiny(tmp_path):
    """(params, options, worddict) of a valid tiny uvs model."""
    path, params, options, worddict = write_tiny_model(tmp_path, "uvs", name="ok")
    return dict(params), dict(options, n_words=len(worddict) + 2), dict(worddict)


def npy(array: np.ndarray | None = None, header: dict | None = None, data: bytes = b"") -> bytes:
    """A .npy member: a real array, or a forged header followed by `data`."""
    out = io.BytesIO()
    if header is None:
        np.lib.format.write_array(out, array, allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(out, header)
        out.write(data)
    return out.getvalue()


def meta_bytes(options, worddict, **extra) -> bytes:
    return json.dumps({"format": "uvs-model", "version": 1, "options": options,
                       "worddict": worddict, **extra}).encode()


def write_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


def write_uvs(tmp_path, params, options, worddict, meta: bytes | None = None,
              extra: dict[str, bytes] | None = None, name: str = "m.npz") -> str:
    members = {f"{k}.npy": npy(np.asarray(v)) for k, v in params.items()}
    members["__uvs__.npy"] = npy(np.frombuffer(
        meta if meta is not None else meta_bytes(options, worddict), np.uint8))
    members.update(extra or {})
    return write_zip(tmp_path / name, members)


def refused(path, *fragments, reader=read_model) -> str:
    with pytest.raises(UVSError) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and message.isprintable(), message
    assert "allow_pickle" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def patch_central(path: str, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of every central-directory entry (offset from its signature)."""
    data = bytearray(open(path, "rb").read())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        old = struct.unpack_from(fmt, data, at + offset)[0]
        struct.pack_into(fmt, data, at + offset, value(old) if callable(value) else value)
        at = data.find(b"PK\x01\x02", at + 4)
    open(path, "wb").write(bytes(data))


# --------------------------------------------------------------------------- the JSON header
@pytest.mark.parametrize(
    ("meta", "fragment"),
    [
        (b"[]", "a JSON list, not an object"),
        (b"null", "a JSON NoneType, not an object"),
        (b'"uvs-model"', "a JSON str, not an object"),
        (b"\xff\xfe", "unreadable uvs metadata"),
        (b'{"format": "uvs-model", "version": 1, "worddict": {}}', "'options' is missing"),
        (b'{"format": "uvs-model", "version": 1, "options": {}}', "'worddict' is missing"),
        (b'{"format": "uvs-model", "version": 1, "options": [], "worddict": {}}',
         "'options' is missing or not an object"),
        (b'{"format": "uvs-model", "version": 1, "options": {}, "worddict": "a"}',
         "'worddict' is missing or not an object"),
        (b'{"format": "uvs-model", "version": "1", "options": {}, "worddict": {}}',
         "no format/version"),
        (b'{"format": "uvs-model", "version": true, "options": {}, "worddict": {}}',
         "no format/version"),
        (b'{"format": "uvs-model", "version": 0, "options": {}, "worddict": {}}', "version 0"),
        (b'{"format": 5, "version": 1, "options": {}, "worddict": {}}', "no format/version"),
        (b'{"format": "uvs-model", "version": 1' + b"0" * 5000 + b', "options": {}}',
         "a number of 5001 characters"),
        (b'{"format": "uvs-model", "version": 1, "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",
         "unreadable uvs metadata (nested"),
        (b'{"format": "uvs-model", "version": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}",
         "nested deeper than 32"),
        (b'{"format": "uvs-model", "format": "uvs-model", "version": 1}', "appears twice"),
        (b'{"format": "uvs-model", "version": 1, "options": {}, "worddict": {}, "kind": 3}',
         "'kind' is not text"),
        (b'{"format": "uvs-model", "version": 1, "options": {}, "worddict": {}, "kind": "x"}',
         "unknown kind of model 'x'"),
    ],
)
def test_header_schema(tmp_path, tiny, meta, fragment):
    path = write_uvs(tmp_path, *tiny, meta=meta)
    refused(path, path, fragment)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"n_words": "18"}, "option 'n_words' is str '18', not int"),
        ({"n_words": 18.0}, "option 'n_words' is float 18.0, not int"),
        ({"n_words": -3}, "option 'n_words' is -3, below 1"),
        ({"n_words": float("nan")}, "option 'n_words' is float nan, not int"),
        ({"n_words": True}, "option 'n_words' is bool True, not int"),
        ({"n_words": 10**6}, "n_words = 1000000 but Wemb has 18 rows"),
        ({"dim": "8"}, "option 'dim' is str '8', not int"),
        ({"dim": 0}, "option 'dim' is 0, below 1"),
        ({"dim": 10**9}, "option 'dim' is 1000000000, above 65536"),
        ({"dim_image": None}, "option 'dim_image' is NoneType None"),
        ({"encoder": "lstm"}, "option 'encoder' is 'lstm', not one of gru, bow"),
        ({"method": 1}, "option 'method' is int 1, not str"),
        ({"abs": "yes"}, "option 'abs' is str 'yes', not bool"),
        ({"dim": 9}, "parameter ff_image_W has shape (10, 8), options say (10, 9)"),
    ],
)
def test_options_schema(tmp_path, tiny, change, fragment):
    params, options, worddict = tiny
    refused(write_uvs(tmp_path, params, {**options, **change}, worddict), fragment)


@pytest.mark.parametrize("missing", ["dim", "dim_word", "dim_image", "encoder"])
def test_options_lacking(tmp_path, tiny, missing):
    params, options, worddict = tiny
    del options[missing]
    refused(write_uvs(tmp_path, params, options, worddict), f"options lack {missing!r}")


@pytest.mark.parametrize(
    ("word", "index", "fragment"),
    [
        ("dog", -1, "word 'dog' has index -1, outside 0..17"),
        ("dog", 10**9, "has index 1000000000, outside"),
        ("dog", 10**30, "has index 1000000000000000000000000000000, outside"),
        ("dog", "3", "not a mapping of words to indices"),
        ("dog", True, "not a mapping of words to indices"),
        ("dog", 2.0, "not a mapping of words to indices"),
    ],
)
def test_worddict_schema(tmp_path, tiny, word, index, fragment):
    params, options, worddict = tiny
    refused(write_uvs(tmp_path, params, options, {**worddict, word: index}), fragment)


def test_released_layouts_are_checked_alike(tmp_path):
    base, params, options, worddict = write_tiny_model(tmp_path, "vse", name="v")
    with open(base + ".dictionary.pkl", "wb") as f:
        f.write(dumps_py2({**worddict, "dog": -4}))
    refused(base, "v.npz.dictionary.pkl", "word 'dog' has index -4")
    base, params, options, worddict = write_tiny_model(tmp_path, "order", name="o")
    with open(base + ".pkl", "wb") as f:
        f.write(dumps_py2({"options": {**options, "n_words": float("nan")}, "worddict": worddict}))
    refused(base, "o.pkl", "option 'n_words' is float nan")
    with open(base + ".pkl", "wb") as f:
        f.write(dumps_py2({"options": {**options, "x": {1: 2}}, "worddict": worddict}))
    refused(base, "o.pkl", "a key that is not text")


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (lambda a: a.astype(np.int32), "parameter Wemb is int32, not floating point"),
        (lambda a: a.astype(bool), "parameter Wemb is bool, not floating point"),
        (lambda a: a.astype(np.complex64), "parameter Wemb is complex64, not floating point"),
        (lambda a: a.astype("U3"), "parameter Wemb is <U3, not floating point"),
        (lambda a: a.astype("S4"), "parameter Wemb is |S4, not floating point"),
        (lambda a: a.astype("V4"), "parameter Wemb is |V4, not floating point"),
        (lambda a: np.zeros(a.shape, "f4,f4"), "parameter Wemb is"),
        (lambda a: a.astype(object), "is not a plain array"),
    ],
)
def test_parameters_must_be_floating_point(tmp_path, tiny, value, fragment):
    params, options, worddict = tiny
    message = refused(write_uvs(tmp_path, {**params, "Wemb": value(params["Wemb"])}, options,
                                worddict), fragment)
    assert "m.npz" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_parameters_must_be_finite(tmp_path, tiny, bad):
    params, options, worddict = tiny
    W = params["encoder_U"].copy()
    W[1, 2] = bad
    refused(write_uvs(tmp_path, {**params, "encoder_U": W}, options, worddict),
            "encoder_U holds NaN or Inf")


def test_encode_with_a_nan_model_writes_nothing(tmp_path, tiny):
    params, options, worddict = tiny
    W = params["Wemb"].copy()
    W[3] = np.nan
    model = write_uvs(tmp_path, {**params, "Wemb": W}, options, worddict)
    text = tmp_path / "s.txt"
    text.write_text("a dog\n", encoding="utf-8")
    out = tmp_path / "s.npy"
    one_line_error(run("encode", "sentences", model, text, "-o", out, "-q"), "Wemb holds NaN")
    assert not out.exists()


def test_float16_and_float64_parameters_are_read_as_float32(tmp_path, tiny):
    params, options, worddict = tiny
    mixed = {**params, "Wemb": params["Wemb"].astype(np.float64),
             "ff_image_b": params["ff_image_b"].astype(">f2")}
    mf = read_model(write_uvs(tmp_path, mixed, options, worddict))
    assert all(v.dtype == np.float32 for v in mf.params.values())
    np.testing.assert_array_equal(mf.params["Wemb"], params["Wemb"])


# --------------------------------------------------------------------------- the archive
def test_npy_header_declaring_a_trillion_elements(tmp_path, tiny):
    params, options, worddict = tiny
    forged = npy(header={"descr": "<f4", "fortran_order": False, "shape": (10**12, 6)},
                 data=b"\0" * 64)
    path = write_uvs(tmp_path, params, options, worddict, extra={"Wemb.npy": forged})
    refused(path, "member 'Wemb.npy' declares shape (1000000000000, 6) of float32")


def test_zip_sizes_forged_to_match_a_huge_header(tmp_path, tiny):
    params, options, worddict = tiny
    forged = npy(header={"descr": "<f4", "fortran_order": False, "shape": (2**28,)})
    path = write_uvs(tmp_path, params, options, worddict, extra={"Wemb.npy": forged})
    patch_central(path, 24, "<I", 2**30 + 128)
    refused(path, "declares", "compressed (damaged or forged)")


def test_deflated_members_are_read(tmp_path, tiny):
    params, options, worddict = tiny
    path = tmp_path / "c.npz"
    np.savez_compressed(path, **params, __uvs__=np.frombuffer(
        meta_bytes(options, worddict), np.uint8))
    mf = read_model(path)
    np.testing.assert_array_equal(mf.params["encoder_U"], params["encoder_U"])


def test_deflate64_and_encrypted_members(tmp_path, tiny):
    path = write_uvs(tmp_path, *tiny, name="d64.npz")
    patch_central(path, 10, "<H", 9)
    refused(path, "uses compression method 9 (only stored and deflate are read)")
    path = write_uvs(tmp_path, *tiny, name="enc.npz")
    patch_central(path, 8, "<H", lambda flags: flags | 1)
    refused(path, "is encrypted")


def test_duplicate_members(tmp_path, tiny):
    params, options, worddict = tiny
    path = write_uvs(tmp_path, params, options, worddict)
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as z:
        z.writestr("Wemb.npy", npy(np.zeros_like(params["Wemb"])))
    refused(path, "member 'Wemb.npy' appears twice")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../../x.npy", r"member '../../x.npy' is not a plain .npy array name"),
        ("x.txt", "member 'x.txt' is not a plain .npy array name"),
        ("\x1b[2J\x1b[31mred.npy", r"member '\x1b[2J\x1b[31mred.npy' is not a plain .npy"),
        ("extra.npy", "member 'extra' is not a parameter of a vse model"),
    ],
)
def test_member_names(tmp_path, tiny, name, fragment):
    path = write_uvs(tmp_path, *tiny, extra={name: npy(np.zeros(2, np.float32))})
    refused(path, fragment)
    out = tmp_path / "out.npz"
    one_line_error(run("convert", path, "-o", out), fragment)
    one_line_error(run("info", path), fragment)
    assert not out.exists()


def test_damaged_archives(tmp_path, tiny):
    path = write_uvs(tmp_path, *tiny)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    refused(path, "damaged .npz archive")
    good = write_uvs(tmp_path, *tiny, name="crc.npz")
    data = bytearray(open(good, "rb").read())
    at = data.find(b"NUMPY", data.find(b"encoder_U.npy")) + 200
    data[at] ^= 0xFF
    open(good, "wb").write(bytes(data))
    refused(good, "encoder_U", "Bad CRC-32")


def test_a_text_file_is_not_a_model(tmp_path):
    text = tmp_path / "model.txt"
    text.write_text("a dog runs\n" * 10)
    one_line_error(run("info", text), "model.txt", "not a model file")
    npz = tmp_path / "notes.npz"
    npz.write_text("hello")
    message = refused(npz, "not a model file")
    assert "allow_pickle" not in message
    single = tmp_path / "single.npz"
    np.save(tmp_path / "single.npy", np.zeros(3))
    os.rename(tmp_path / "single.npy", single)
    refused(single, "not a model file")


def test_info_escapes_what_it_prints(tmp_path, tiny):
    params, options, worddict = tiny
    options["\x1b[2Jevil"] = "\x1b[31mred"
    result = ok(run("info", write_uvs(tmp_path, params, options, worddict)))
    assert "\x1b" not in result.output
    assert r"\x1b[2Jevil" in result.output


# --------------------------------------------------------------------------- checkpoints
def write_checkpoint(tmp_path, tiny, state=None, arrays=None, name="c.last.npz") -> str:
    params, options, worddict = tiny
    path = str(tmp_path / name)
    if arrays is None:
        arrays = {f"{k}_adam_m": np.zeros_like(v) for k, v in params.items()}
        arrays["adam_t"] = np.float32(3)
    meta = {} if state is False else {"train_state": state or {
        "epoch": 1, "batch": 2, "uidx": 7, "best": 12.5, "best_metrics": None}}
    write_model(path, params, options, worddict, extra_meta=meta, extra_arrays=arrays)
    return path


def test_checkpoint_optimizer_arrays(tmp_path, tiny):
    # train_state itself is checked on resume (uvs.runs.TrainState.read, tests/test_runs.py)
    params = tiny[0]
    mf = read_model(write_checkpoint(tmp_path, tiny))
    assert mf.extra["train_state"]["uidx"] == 7 and mf.extra["arrays"]["adam_t"] == 3
    wrong = {"Wemb_adam_m": np.zeros((3, 3), np.float32)}
    refused(write_checkpoint(tmp_path, tiny, arrays=wrong), "optimizer array optim:Wemb_adam_m "
            f"has shape (3, 3), expected {params['Wemb'].shape}")
    refused(write_checkpoint(tmp_path, tiny, arrays={"adam_t": np.int64(3)}),
            "is int64, not floating point")
    refused(write_checkpoint(tmp_path, tiny, arrays={"adam_t": np.float32(np.nan)}),
            "optim:adam_t holds NaN or Inf")


# --------------------------------------------------------------------------- the kind registry
def test_a_registered_kind_is_read_and_checked(tmp_path, monkeypatch):
    kinds = dict(modelfile.KINDS)
    monkeypatch.setattr(modelfile, "KINDS", kinds)
    modelfile.register_kind(modelfile.ModelKind(
        name="toy", options={"width": modelfile.OptionSpec(int, low=1, high=64)},
        shapes=lambda o: {"Wemb": (None, o["width"]), "w": (o["width"],)}))
    path = str(tmp_path / "toy.npz")
    params = {"Wemb": np.ones((5, 4), np.float32), "w": np.ones(4, np.float32)}
    write_model(path, params, {"width": 4}, {"a": 2}, extra_meta={"kind": "toy"})
    mf = read_model(path, kind="toy")
    assert mf.kind == "toy" and mf.options["n_words"] == 5
    refused(path, "this is a toy model, not a vse model", reader=lambda p: read_model(p, "vse"))
    write_model(path, params, {"width": 5}, {"a": 2}, extra_meta={"kind": "toy"})
    refused(path, "parameter Wemb has shape (5, 4), options say (?, 5)")


# --------------------------------------------------------------------------- caches, temporaries
def test_read_npz_takes_exactly_what_is_expected(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, vectors=np.ones((3, 4), np.float32), key=np.array("k"))
    got = read_npz(path, {"vectors": ((3, 4), "f"), "key": ((), "U")})
    assert str(got["key"]) == "k"
    with pytest.raises(UVSError, match=r"vectors has shape \(3, 4\), expected \(2, 4\)"):
        read_npz(path, {"vectors": ((2, 4), "f"), "key": ((), "U")})
    with pytest.raises(UVSError, match="holds vectors, key, expected vectors"):
        read_npz(path, {"vectors": ((3, 4), "f")})


@pytest.mark.parametrize("bad", ["shape", "nan", "dtype", "huge", "garbage"])
def test_stale_search_cache_with_a_matching_key(tmp_path, bad):
    from uvs import corpus as demo
    from uvs import tools

    model_path, *_ = write_tiny_model(tmp_path, "uvs")
    model = tools.load_model(model_path)
    caps = tmp_path / "caps.txt"
    caps.write_text("a dog runs\nthe cat sits\nred car\n", encoding="utf-8")
    _, first, status = demo.caption_collection(model, str(caps))
    assert status == "stored"
    digest = demo.model_fingerprint(model)
    cache = demo.cache_path(str(caps), digest)
    key = np.array(f"v{demo.CACHE_VERSION}:{digest}:{demo.file_sha256(str(caps))}")
    vectors = {"shape": np.ones((2, first.shape[1]), np.float32),
               "nan": np.full_like(first, np.nan), "dtype": first.astype(np.int64),
               "huge": None, "garbage": None}[bad]
    if bad == "huge":
        forged = npy(header={"descr": "<f4", "fortran_order": False, "shape": (10**12, 8)})
        write_zip(cache, {"vectors.npy": forged, "key.npy": npy(key)})
    elif bad == "garbage":
        open(cache, "wb").write(b"PK\x03\x04garbage")
    else:
        np.savez(cache, vectors=vectors, key=key)
    _, again, status = demo.caption_collection(model, str(caps))
    assert status == "stored"
    np.testing.assert_array_equal(again, first)
    assert demo.caption_collection(model, str(caps))[2] == "hit"


def test_convert_removes_stale_temporaries_of_its_target_only(tmp_path):
    model, *_ = write_tiny_model(tmp_path, "vse", name="v")
    out = tmp_path / "out.npz"
    old = time.time() - 2 * modelfile.STALE_TEMP_SECONDS
    stale = tmp_path / ".out.npz.abcd_123.tmp.npz"
    fresh = tmp_path / ".out.npz.zzzzzzzz.tmp.npz"
    other = tmp_path / ".other.npz.abcd_123.tmp.npz"
    victim = tmp_path / "victim.txt"
    link = tmp_path / ".out.npz.linklink.tmp.npz"
    for path in (stale, fresh, other, victim):
        path.write_bytes(b"x")
    os.symlink(victim, link)
    for path in (stale, other, victim):
        os.utime(path, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    ok(run("convert", model, "-o", out))
    assert out.exists() and not stale.exists()
    assert fresh.exists() and other.exists() and link.is_symlink() and victim.read_bytes() == b"x"


def test_round_trip_still_exact(tmp_path):
    path, params, options, worddict = write_tiny_model(tmp_path, "order")
    out = tmp_path / "conv.npz"
    ok(run("convert", path, "-o", out))
    mf = read_model(out)
    assert mf.worddict == worddict and mf.options["n_words"] == options["n_words"]
    for k, v in params.items():
        np.testing.assert_array_equal(mf.params[k], v)
    assert tiny_options()["dim"] == mf.options["dim"] and tiny_worddict() == worddict


def test_info_reads_headers_not_arrays(tmp_path, tiny):
    import tracemalloc

    from clirun import ok, run

    params, options, worddict = tiny
    rows = 2**17  # Wemb: 2**17 x dim_word float32 of zeros, deflated to a few hundred KB
    params["Wemb"] = np.zeros((rows, params["Wemb"].shape[1]), np.float32)
    options["n_words"] = rows
    path = tmp_path / "big.npz"
    np.savez_compressed(path, **params, __uvs__=np.frombuffer(
        meta_bytes(options, worddict), np.uint8))
    declared = params["Wemb"].nbytes
    assert os.path.getsize(path) < declared / 50
    tracemalloc.start()
    try:
        text = ok(run("info", path)).stdout
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < declared / 4, peak
    assert f"Wemb           {rows} x {params['Wemb'].shape[1]}" in text
    full = read_model(path)
    assert json.loads(ok(run("info", path, "--json")).stdout)["parameters"] == {
        k: list(v.shape) for k, v in full.params.items()}


def test_absurd_parameter_magnitudes(tmp_path, tiny):
    params, options, worddict = tiny
    params["encoder_U"] = params["encoder_U"] + np.float32(3e38)
    path = write_uvs(tmp_path, params, options, worddict)
    refused(path, "encoder_U holds values up to 3e+38, beyond ±100000")
    params["encoder_U"] = params["encoder_U"] * 0 + np.float32(modelfile.MAX_PARAM)
    assert read_model(write_uvs(tmp_path, params, options, worddict, name="edge.npz"))


def test_a_deflated_model_bomb(tmp_path, tiny, monkeypatch):
    params, options, worddict = tiny
    monkeypatch.setattr(modelfile, "DEFLATED_FREE_BYTES", 2**20)
    params["Wemb"] = np.zeros((2**16, params["Wemb"].shape[1]), np.float32)
    options["n_words"] = 2**16
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, **params, __uvs__=np.frombuffer(
        meta_bytes(options, worddict), np.uint8))
    refused(str(path), "compressed members expand to", "a zip bomb?")
