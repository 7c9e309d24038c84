"""Kiros's multimodal log-bilinear language models (MLBL, MLBL-F) and the SC-NLM on PyTensor.

A transliteration of ryankiros/multimodal-neural-language-models (`lm/mlbl.py`,
`lm/mlblf.py`, `utils/lm_tools.py`, `utils/svd_tools.py`), with one compiled update
(`train_step`) in place of the hand-written `backward`.
"""
