"""The training loss sees the embeddings that the encoders give at evaluation, `abs` included."""

import numpy as np
import pytensor
import pytest
import reference
from models import tiny_options, tiny_worddict

from uvs.homogeneous_data import prepare_data
from uvs.model import (
    build_image_encoder,
    build_model,
    build_sentence_encoder,
    init_params,
    order_lineage,
)
from uvs.utils import init_tparams

BATCH = ["a dog runs", "the cat sits on", "red car", "blue grass beach", "dog"]


@pytest.mark.parametrize("recipe, method", [("vse", "cosine"), ("symmetric", "cosine"),
                                            ("order", "order")])
@pytest.mark.parametrize("abs_", [True, False])
# PyTensor's own default mode runs uvs's C Ops' `perform` in Numba's object mode, and says so;
# Numba notes once per cache that PyTensor's generated code multiplies a transposed matrix
@pytest.mark.filterwarnings("ignore:Numba will use object mode:UserWarning")
@pytest.mark.filterwarnings(r"ignore:np\.dot\(\) is faster on contiguous arrays")
def test_loss_and_encoders_agree(recipe, method, abs_):
    options = tiny_options(encoder="bow")  # compiles in seconds; abs acts after any encoder
    options.update(recipe=recipe, method=method, abs=abs_, margin=0.5)
    worddict = tiny_worddict()
    options["n_words"] = len(worddict) + 2
    params = init_params(options, rng=np.random.RandomState(3))
    tparams = init_tparams(params)
    rng = np.random.RandomState(4)
    x, mask, im = prepare_data(BATCH, rng.rand(len(BATCH), options["dim_image"]).astype(
        "float32"), worddict, n_words=options["n_words"])

    inputs, cost = build_model(tparams, options)
    f_cost = pytensor.function(inputs, cost)
    f_senc = pytensor.function(*build_sentence_encoder(tparams, options))
    f_ienc = pytensor.function(*build_image_encoder(tparams, options))
    s = f_senc(x, mask).astype(np.float64)
    e = f_ienc(im).astype(np.float64)
    assert (s.min() >= 0 and e.min() >= 0) == abs_  # random weights: some negative without abs
    if not order_lineage(options):  # the vse loss leaves the image side unnormalised
        e *= np.linalg.norm(im @ params["ff_image_W"] + params["ff_image_b"], axis=1)[:, None]
    errors = reference.order_errors(s, e) if method == "order" else -e @ s.T
    d = np.diag(errors)
    hinge = (np.maximum(0, 0.5 - errors + d[None, :]) + np.maximum(0, 0.5 - errors + d[:, None]))
    np.fill_diagonal(hinge, 0)
    assert float(f_cost(x, mask, im)) == pytest.approx(hinge.sum(), rel=1e-5)
    ids = [reference.word_indices(t, worddict, options["n_words"]) for t in BATCH]
    assert float(f_cost(x, mask, im)) == pytest.approx(
        reference.contrastive_loss(params, options, ids, im, order_lineage(options)), rel=1e-5)
