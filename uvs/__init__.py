"""uvs: unifying visual-semantic embeddings (Kiros et al. 2014; Vendrov et al. 2015) on PyTensor.

Importing uvs sets nothing: PyTensor is configured when uvs first builds a graph
(`uvs.backend.configure`).
"""

__version__ = "0.1.0"
