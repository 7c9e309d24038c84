"""Decoder files: the released skip-thoughts layout read unchanged, uvs's format, bad input."""

from collections import OrderedDict

import numpy as np
import pytest
from py2pickle import dumps_py2

from uvs.decoding import tools
from uvs.decoding.files import read_decoder, write_decoder
from uvs.decoding.model import init_params
from uvs.decoding.search import gen_sample
from uvs.errors import UVSError

WORDS = ["a", "dog", "café", "runs", "on", "the", "beach", "."]


def released_options():
    # what skip-thoughts/decoding's trainer pickled (model_options)
    return {"dimctx": 6, "dim_word": 4, "dim": 5, "encoder": "gru", "decoder": "gru",
            "doutput": False, "max_epochs": 5, "dispFreq": 1, "decay_c": 0.0,
            "grad_clip": 5.0, "n_words": 9, "maxlen_w": 100, "optimizer": "adam",
            "batch_size": 16, "saveto": "/u/rkiros/toy.npz", "dictionary": "/ais/dict.pkl",
            "embeddings": None, "saveFreq": 1000, "sampleFreq": 100, "reload_": False}


def write_released(folder, dictionary_pickles=2):
    options = released_options()
    params = init_params(options, rng=np.random.RandomState(0))
    npz = folder / "toydec.npz"
    np.savez(npz, history_errs=[], **params)
    (folder / "toydec.npz.pkl").write_bytes(dumps_py2(options))
    worddict = OrderedDict((w, i + 2) for i, w in enumerate(WORDS))
    wordcount = OrderedDict((w, 10 - i) for i, w in enumerate(WORDS))
    blob = dumps_py2(worddict) + (dumps_py2(wordcount) if dictionary_pickles == 2 else b"")
    (folder / "dictionary.pkl").write_bytes(blob)
    return npz, folder / "dictionary.pkl", params


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    folder = tmp_path_factory.mktemp("released")
    npz, dictionary, params = write_released(folder)
    return npz, dictionary, params, tools.load_model(npz, dictionary)


def test_released_layout_loads_unchanged(released):
    npz, dictionary, params, dec = released
    assert dec["layout"] == "skip-thoughts"
    assert list(dec["tparams"]) == list(params)
    for k, v in params.items():
        np.testing.assert_array_equal(dec["tparams"][k].get_value(), v)
    assert dec["worddict"]["café"] == 4 and dec["word_idict"][4] == "café"
    assert dec["word_idict"][0] == "<eos>" and dec["word_idict"][1] == "UNK"


def test_run_sampler_drops_the_last_token(released):
    npz, dictionary, params, dec = released
    c = np.random.RandomState(1).randn(6).astype("float32")
    sample, _ = gen_sample(dec["tparams"], dec["f_init"], dec["f_next"], c[None],
                           dec["options"], k=3, maxlen=4, stochastic=False)
    text = tools.run_sampler(dec, c, beam_width=3, maxlen=4)
    assert text == [" ".join(dec["word_idict"][w] for w in s[:-1]) for s in sample]


def test_uvs_format_round_trip(released, tmp_path):
    npz, dictionary, params, dec = released
    out = tmp_path / "dec.npz"
    write_decoder(out, dec["params"], dec["options"], dec["worddict"])
    mf = read_decoder(out)
    assert mf.layout == "uvs" and mf.extra["kind"] == "decoder"
    assert mf.worddict == dec["worddict"]
    for k, v in params.items():
        np.testing.assert_array_equal(mf.params[k], v)


def test_one_pickle_dictionary_is_refused(tmp_path):
    npz, dictionary, _ = write_released(tmp_path, dictionary_pickles=1)
    with pytest.raises(UVSError, match="holds 1 pickle, expected 2") as err:
        read_decoder(npz, dictionary)
    assert str(err.value).startswith(str(dictionary)) and "\n" not in str(err.value)


def test_missing_dictionary_is_named(tmp_path):
    npz, _, _ = write_released(tmp_path)
    with pytest.raises(UVSError, match="word dictionary .* not found"):
        read_decoder(npz)


def test_wrong_context_width(released):
    dec = released[3]
    with pytest.raises(UVSError, match="conditioned on 6-d vectors; got shape"):
        tools.run_sampler(dec, np.zeros(7, dtype="float32"))


def test_vse_model_given_as_decoder(tmp_path):
    from uvs.model import init_params as vse_init
    from uvs.modelfile import write_model

    o = {"dim": 4, "dim_word": 3, "dim_image": 6, "encoder": "gru", "n_words": 5}
    write_model(tmp_path / "vse.npz", vse_init(o), o, {"a": 2})
    with pytest.raises(UVSError, match="this is a vse model, not a decoder model .a visual-sem"):
        read_decoder(tmp_path / "vse.npz")


DECODER_AS_VSE = "this is a decoder model, not a vse model .a generator: use it with"


def test_decoder_given_as_vse_model(released, tmp_path):
    from uvs.modelfile import read_model

    npz, dictionary, params, dec = released
    with pytest.raises(UVSError, match=DECODER_AS_VSE):
        read_model(npz, kind="vse")
    write_decoder(tmp_path / "d.npz", dec["params"], dec["options"], dec["worddict"])
    with pytest.raises(UVSError, match=DECODER_AS_VSE):
        read_model(tmp_path / "d.npz", kind="vse")


def test_shape_mismatch_is_named(tmp_path):
    npz, dictionary, params = write_released(tmp_path)
    params["ff_state_W"] = params["ff_state_W"][:5]
    np.savez(npz, history_errs=[], **params)
    with pytest.raises(UVSError, match=r"ff_state_W has shape \(5, 5\), options say \(6, 5\)"):
        read_decoder(npz, dictionary)


def test_dictionary_goes_through_the_restricted_unpickler(tmp_path, monkeypatch):
    npz, dictionary, _ = write_released(tmp_path, dictionary_pickles=1)
    monkeypatch.chdir(tmp_path)
    dictionary.write_bytes(dictionary.read_bytes() + b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(UVSError, match="refusing to load os.system") as err:
        read_decoder(npz, dictionary)
    assert str(err.value).startswith(str(dictionary)) and "\n" not in str(err.value)
    assert not (tmp_path / "pwned").exists()
