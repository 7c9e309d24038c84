"""The log-bilinear models' SGD-with-momentum step over one parameter as one in-place Op.

`uvs.mnlm.lbl` updates each parameter as the original's `update_params`: weight decay added
to the gradient, the momentum buffer and the parameter each an elementwise loop on one thread
(5.6 ms of a 23 ms MLBL update in its profile). `MomentumStep` (C in `momentum_op.c`, beside
this file) does the same arithmetic in one pass over OpenMP threads, in place; NumPy in
`perform`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter

from uvs.cop import OpenMPCOp, available

C_FILE = "momentum_op.c"  # beside this module; PyTensor keys its compile cache by its hash


class MomentumStep(OpenMPCOp):
    """(p, g, delta, lr, p_t) -> (p, delta) after one step: g' = g + decay·p (when decay),
    delta = p_t·delta − lr·g', p = p + delta; float32, lr and p_t scalars, g of p's size.

    Built copying; `local_momentum_inplace` makes it update p and delta where they lie (when
    they are C-contiguous: else into C-ordered copies, which become their new values)."""

    __props__ = ("decay", "inplace")
    c_file = C_FILE

    def __init__(self, decay: float = 0.0, inplace: bool = False) -> None:
        self.decay, self.inplace = float(np.float32(decay)), bool(inplace)
        if inplace:
            self.destroy_map = {0: [0], 1: [2]}
        super().__init__()

    def make_node(self, p, g, delta, lr, p_t) -> Apply:
        p, g, delta, lr, p_t = (pt.as_tensor_variable(x) for x in (p, g, delta, lr, p_t))
        if any(x.dtype != "float32" for x in (p, g, delta, lr, p_t)) or lr.ndim or p_t.ndim:
            raise TypeError("momentum step: float32 parameter, gradient and step, scalar rates")
        return Apply(self, [p, g, delta, lr, p_t], [p.type(), delta.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], shapes[2]]

    def c_code(self, node, name, inp, out, sub) -> str:
        decay = f"{np.float32(self.decay).item()!r}f"
        return f"""
        if (uvs_momentum_apply({", ".join(inp)}, {", ".join(f"&{o}" for o in out)},
                               {int(self.inplace)}, {decay}, {int(self.decay != 0.0)}) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        p, g, delta, lr, p_t = inputs
        if g.size != p.size or delta.size != p.size:
            raise ValueError("momentum step: parameter, gradient and step must be float32 "
                             "arrays of one size")
        if not (self.inplace and p.flags.c_contiguous and p.flags.writeable):
            p = np.array(p, order="C")
        if not (self.inplace and delta.flags.c_contiguous and delta.flags.writeable):
            delta = np.array(delta, order="C")
        g = g.reshape(p.shape)
        if self.decay:
            g = g + np.float32(self.decay) * p
        delta[...] = p_t * delta - lr * g
        p += delta
        outputs[0][0], outputs[1][0] = p, delta


@node_rewriter([MomentumStep], inplace=True)
def local_momentum_inplace(fgraph, node):
    """The step updating its parameter and momentum buffer in place."""
    if node.op.inplace:
        return False
    return MomentumStep(node.op.decay, inplace=True).make_node(*node.inputs).outputs


optdb.register("uvs_momentum_inplace",
               WalkingGraphRewriter(local_momentum_inplace,
                                    failure_callback=WalkingGraphRewriter.warn_inplace),
               "fast_run", "inplace", position=60)


def momentum_step(p: Variable, g: Variable, delta: Variable, lr: Variable, p_t: Variable,
                  decay: float = 0.0, mode: Any = None) -> tuple[Variable, Variable] | None:
    """(p_t, delta_t) of one step as `MomentumStep`, or None where it cannot run (not float32,
    or compiled for JAX: `mode`, else uvs's default)."""
    if not available(mode) or any(x.dtype != "float32" for x in (p, g, delta, lr, p_t)):
        return None
    return tuple(MomentumStep(decay)(p, g, delta, lr, p_t))
