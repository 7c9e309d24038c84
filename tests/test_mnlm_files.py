"""Log-bilinear model files: the original's Python-2 pickles, read unchanged and safely, and
uvs's own format."""

import json

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from mnlm_reference import RefMLBL, RefMLBLF
from py2pickle import Global, Py2Instance, Reduce, dumps_py2

from uvs.errors import UVSError
from uvs.legacy import MNLM_CLASSES, LegacyObject, load_pickle
from uvs.mnlm import lm_tools
from uvs.mnlm.mlbl import MLBL
from uvs.mnlm.mlblf import MLBLF

KW = dict(V=17, K=5, D=4, h=3, context=2, eta_t=0.3, gamma_r=1e-4, p_i=0.2, p_f=0.6)


def trained_ref(cls, T, **extra):
    """An original model after one update and one schedule step, as `train` leaves it."""
    ref = cls(**KW, T=T, **extra)
    ref.init_params(None, None)
    rng = np.random.RandomState(0)
    X = rng.randint(0, 17, size=(4, 2))
    import scipy.sparse as sp

    Y = sp.csr_matrix((np.ones(4), (np.arange(4), rng.randint(0, 17, 4))), shape=(4, 17))
    ref.step = 0
    ref.step_once(X, rng.randn(4, 4), Y)
    ref.update_hyperparams()
    ref.step = 1
    ref.start, ref.epoch = ref.seed, 0
    return ref


def write_py2(path, ref, module, name, protocol):
    attrs = {k: v for k, v in vars(ref).items()}
    path.write_bytes(dumps_py2(Py2Instance(module, name, attrs), protocol))
    return path


CASES = [(RefMLBL, "lm.mlbl", "MLBL", MLBL, {}), (RefMLBLF, "lm.mlblf", "MLBLF", MLBLF,
                                                 {"factors": 2})]


@pytest.mark.parametrize("protocol", [0, 2])
@pytest.mark.parametrize("T", [20, 20.0])
@pytest.mark.parametrize("ref_cls,module,name,cls,extra", CASES, ids=["mlbl", "mlblf"])
def test_released_pickle_loads_unchanged(tmp_path, ref_cls, module, name, cls, extra, T,
                                         protocol):
    ref = trained_ref(ref_cls, T, **extra)
    path = write_py2(tmp_path / "model.pkl", ref, module, name, protocol)
    net = lm_tools.load_model(path)
    assert type(net) is cls
    assert type(net.T) is type(T) and net.T == T
    assert net.step == 1 and net.eta_t == ref.eta_t and net.p_t == ref.p_t
    assert net.V == 17 and net.context == 2 and net.name == "lbl"
    for p, d in net.PARAMS.items():
        np.testing.assert_allclose(getattr(net, p), getattr(ref, p), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(getattr(net, d), getattr(ref, d), rtol=1e-6, atol=1e-9)
    X = np.array([[0, 3], [5, 5]])
    Im = np.random.RandomState(1).randn(2, 4)
    np.testing.assert_allclose(net.forward(X, Im)[-1], ref.forward(X, Im)[-1], rtol=1e-5)


def test_pickle_is_plain_attributes(tmp_path):
    ref = trained_ref(RefMLBL, 20)
    path = write_py2(tmp_path / "m.pkl", ref, "lm.mlbl", "MLBL", 0)
    obj = load_pickle(path, allow_numpy=True, objects=MNLM_CLASSES)
    assert type(obj) is LegacyObject and obj.class_name == "lm.mlbl.MLBL"
    assert set(obj.attrs) >= {"R", "deltaR", "dR", "eta_t", "T"} and obj.attrs["name"] == "lbl"
    with pytest.raises(UVSError, match="refusing to load copy_reg._reconstructor"):
        load_pickle(path, allow_numpy=True)  # not admitted unless asked for


@pytest.mark.parametrize("protocol", [0, 2])
@pytest.mark.parametrize("module,name", [("lm.mlbl", "Evil"), ("os", "system"),
                                         ("__main__", "MLBL")])
def test_other_classes_refused(tmp_path, module, name, protocol):
    ref = trained_ref(RefMLBL, 20)
    path = write_py2(tmp_path / "m.pkl", ref, module, name, protocol)
    with pytest.raises(UVSError) as err:
        lm_tools.load_model(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    assert f"{module}.{name}" in str(err.value)


def test_reconstructor_with_other_arguments_refused(tmp_path):
    payload = Reduce(Global("copy_reg", "_reconstructor"),
                     (Global("lm.mlbl", "MLBL"), Global("__builtin__", "object"), 1), {"V": 3})
    path = tmp_path / "m.pkl"
    path.write_bytes(dumps_py2(payload, 0))
    with pytest.raises(UVSError, match="_reconstructor is called with other than"):
        lm_tools.load_model(path)


def test_code_in_attributes_refused(tmp_path):
    ref = trained_ref(RefMLBL, 20)
    attrs = dict(vars(ref))
    attrs["name"] = Reduce(Global("os", "system"), ("touch " + str(tmp_path / "owned"),))
    path = tmp_path / "m.pkl"
    path.write_bytes(dumps_py2(Py2Instance("lm.mlbl", "MLBL", attrs), 0))
    with pytest.raises(UVSError, match="refusing to load os.system"):
        lm_tools.load_model(path)
    assert not (tmp_path / "owned").exists()


def test_missing_or_misshapen_attribute_is_one_line(tmp_path):
    ref = trained_ref(RefMLBL, 20)
    attrs = dict(vars(ref))
    attrs["M"] = np.zeros((2, 2))
    path = tmp_path / "m.pkl"
    path.write_bytes(dumps_py2(Py2Instance("lm.mlbl", "MLBL", attrs), 2))
    with pytest.raises(UVSError, match=r"attribute M has shape \(2, 2\)"):
        lm_tools.load_model(path)
    del attrs["M"]
    path.write_bytes(dumps_py2(Py2Instance("lm.mlbl", "MLBL", attrs), 2))
    with pytest.raises(UVSError, match="attribute M is missing"):
        lm_tools.load_model(path)


@pytest.mark.parametrize("cls,extra", [(MLBL, {}), (MLBLF, {"factors": 2})])
def test_uvs_format_round_trip(tmp_path, cls, extra):
    net = cls(**KW, T=20, **extra)
    net.init_params()
    net.eta_t, net.p_t, net.step = 0.25, 0.4, 3
    net.deltaC = np.full_like(net.C, 0.5)
    net.word_dict = {"<start>": 0, "<end>": 1, "unk": 2}
    lm_tools.save_model(net, tmp_path / "m.npz")
    back = lm_tools.load_model(tmp_path / "m.npz")
    assert type(back) is cls and type(back.T) is int and back.step == 3
    assert (back.eta_t, back.p_t) == (0.25, 0.4) and back.word_dict == net.word_dict
    for p, d in net.PARAMS.items():
        np.testing.assert_array_equal(getattr(back, p), getattr(net, p))
        np.testing.assert_array_equal(getattr(back, d), getattr(net, d))
    meta = json.loads(np.load(tmp_path / "m.npz")["__uvs__"].tobytes())
    assert meta["kind"] == cls.__name__.lower()


def test_cli_info_and_convert_released_pickle(tmp_path):
    ref = trained_ref(RefMLBLF, 20.0, factors=2)
    path = write_py2(tmp_path / "mlblf.pkl", ref, "lm.mlblf", "MLBLF", 0)
    info = json.loads(ok(run("info", path, "--json")).stdout)
    assert info["kind"] == "mlblf" and info["layout"] == "mnlm-pickle"
    assert info["parameters"]["Whf"] == [2, 17] and info["options"]["T"] == 20.0
    ok(run("convert", path, "-o", tmp_path / "mlblf.npz"))
    net = lm_tools.load_model(tmp_path / "mlblf.npz")
    assert type(net) is MLBLF and net.T == 20.0 and type(net.T) is float and net.step == 1
    np.testing.assert_allclose(net.deltaWfx, ref.deltaWfx, rtol=1e-6)
    info = json.loads(ok(run("info", tmp_path / "mlblf.npz", "--json")).stdout)
    assert info["kind"] == "mlblf" and info["layout"] == "uvs"


def test_cli_info_refuses_other_class(tmp_path):
    ref = trained_ref(RefMLBL, 20)
    path = write_py2(tmp_path / "m.pkl", ref, "lm.other", "MLBL", 2)
    one_line_error(run("info", path), "lm.other.MLBL")


def test_mnlm_reader_refuses_a_vse_model(tmp_path):
    from uvs.modelfile import write_model

    params = {"Wemb": np.zeros((5, 2), "float32"), "ff_image_W": np.zeros((4, 2), "float32"),
              "ff_image_b": np.zeros(2, "float32")}
    write_model(tmp_path / "v.npz", params, {"dim": 2, "dim_word": 2, "dim_image": 4,
                                             "encoder": "bow"}, {"a": 2})
    with pytest.raises(UVSError, match="not a multimodal log-bilinear model"):
        lm_tools.load_model(tmp_path / "v.npz")


# --- part-of-speech tags ------------------------------------------------------------------

def test_sample_tags_are_the_grammars(sample_data):
    from uvs import sample
    from uvs.datasets import load_split
    from uvs.mnlm.tags import load_tags

    sp = load_split("sample", "dev", str(sample_data))
    tags = load_tags(sp.caps_path, sp.caps)
    assert len(tags) == len(sp.caps)
    for cap, t in zip(sp.caps[:50], tags[:50], strict=True):
        assert t == sample.caption_tags(cap)
        assert t[0] == "DT" and t[-1] == "." and "NN" in t and "VBZ" in t


def test_tag_file_must_match_captions(tmp_path):
    from uvs.mnlm.tags import load_tags

    caps_path = tmp_path / "x_caps.txt"
    caps = ["a dog runs .", "the cat sits ."]
    (tmp_path / "x_tags.txt").write_text("DT NN VBZ .\n")
    with pytest.raises(UVSError, match="has 1 lines, the captions 2"):
        load_tags(str(caps_path), caps)
    (tmp_path / "x_tags.txt").write_text("DT NN VBZ .\nDT NN .\n")
    with pytest.raises(UVSError, match="line 2 has 3 tags for the 4 tokens"):
        load_tags(str(caps_path), caps)
    (tmp_path / "x_tags.txt").write_text("DT NN VBZ .\nDT NN VBZ .\n")
    assert load_tags(str(caps_path), caps)[1] == ["DT", "NN", "VBZ", "."]


def test_no_tags_and_no_tagger_names_both_ways_out(tmp_path, monkeypatch):
    import builtins

    from uvs.mnlm.tags import load_tags

    real_import = builtins.__import__

    def no_spacy(name, *a, **kw):
        if name == "spacy" or name.startswith("spacy."):
            raise ImportError("No module named 'spacy'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_spacy)
    with pytest.raises(UVSError) as err:
        load_tags(str(tmp_path / "y_caps.txt"), ["a dog ."])
    msg = str(err.value)
    assert "y_tags.txt" in msg and "[pos]" in msg and "\n" not in msg
