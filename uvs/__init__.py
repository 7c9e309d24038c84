"""uvs: unifying visual-semantic embeddings (Kiros et al. 2014; Vendrov et al. 2015) on PyTensor."""

from uvs import backend as _backend

_backend.configure()

__version__ = "0.1.0"
