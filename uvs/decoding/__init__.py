"""Generation: a GRU language model conditioned on a vector, after skip-thoughts/decoding.

`model` (parameters, training loss, sampler), `search` (beam search and sampling), `tools`
(load a decoder, generate text), `train` (the trainer), `files` (decoder files on disk).
"""
