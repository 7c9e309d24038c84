"""A lookup table's gradient kept as its rows: (rows, values), not a table of zeros elsewhere.

The gradient of `Wemb[x]` (or of a bag of words) is zeros but the rows of the batch's words.
Stored whole between `f_grad_shared` and `f_update`, as the originals store it, a bag of
words' 40 MB table is zeroed on every update (2 ms of 23) and read whole by Adam. Stored as its
rows (`stored_rows`: `UniqueRows`, then `table[rows]`), a rewrite of the C backend
(`CompactRows`) builds those rows alone: the Op that adds the words' rows into zeros adds them
into a (k, d) table at each word's position among the rows, in the same order, so they are
the same floats, and the clipping's norm reads them there. Adam then steps every row of the
table (`uvs.adam_op.AdamStep` given the rows), the others with a gradient of zeros, as before.
"""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Variable, equal_computations
from pytensor.graph.features import ReplaceValidate
from pytensor.graph.rewriting.basic import GraphRewriter
from pytensor.tensor.basic import get_underlying_scalar_constant_value
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.shape import Shape_i
from pytensor.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedIncSubtensor1,
    AdvancedSubtensor1,
    advanced_subtensor1,
)

from uvs.cop import available
from uvs.inc_rows import UniqueRows, _zeros_shape
from uvs.norms import ClipScale, SquaredNorm


def _is_zeros(var: Variable) -> bool:
    """Whether `var` is a constant fill of 0 (`zeros_like`, `Alloc` of 0)."""
    try:
        return get_underlying_scalar_constant_value(var) == 0
    except NotScalarConstantError:
        return False


def lookup_indices(g: Variable) -> Variable | None:
    """The int64 indices of the rows a (V, d) gradient `g` can be nonzero at, when g (perhaps
    clipped: `ClipScale`) is rows added into zeros — PyTensor's gradient of a lookup or an Op
    that `adds_into_first_input` — else None."""
    while g.owner is not None and isinstance(g.owner.op, ClipScale) and not g.owner.op.rows:
        g = g.owner.inputs[0]
    node = g.owner
    if node is None or g.ndim != 2 or not _is_zeros(node.inputs[0]):
        return None
    op = node.op
    if getattr(op, "adds_into_first_input", False):
        idx = op.touched_rows(node)
    elif isinstance(op, AdvancedIncSubtensor1 | AdvancedIncSubtensor) and len(node.inputs) == 3:
        if op.set_instead_of_inc or getattr(op, "ignore_duplicates", False):
            return None
        idx = node.inputs[2]  # one index, along the rows
        if idx.ndim != 1:
            return None
    else:
        return None
    return idx if idx.dtype == "int64" else None


def stored_rows(g: Variable, mode: Any = None) -> tuple[Variable, Variable] | None:
    """(rows (k,) int64, values (k, d)) of a lookup gradient `g` (`lookup_indices`): the rows
    it can be nonzero at, increasing, and g's values there; None for another gradient, or
    where uvs's C Ops do not run (JAX: `mode`)."""
    if not available(mode) or g.dtype != "float32" or g.ndim != 2:
        return None
    idx = lookup_indices(g)
    if idx is None:
        return None
    rows = UniqueRows()(idx, g.shape[0])[0]
    return rows, advanced_subtensor1(g, rows)


class CompactRows(GraphRewriter):
    """`table[rows]` of a lookup gradient, `rows` = `UniqueRows(idx)` of the indices the Op
    adding into zeros adds at, as that Op adding into a (k, d) table of zeros at each index's
    position among the rows (`UniqueRows`' second output), clipped as the table was; the
    clipping's `SquaredNorm` reads that (k, d) table in place of the (V, d) one."""

    def add_requirements(self, fgraph):
        fgraph.attach_feature(ReplaceValidate())

    def apply(self, fgraph):
        for node in list(fgraph.toposort()):
            if node not in fgraph.apply_nodes or not isinstance(node.op, AdvancedSubtensor1):
                continue
            table, rows = node.inputs
            unique = rows.owner
            if unique is None or not isinstance(unique.op, UniqueRows) \
                    or rows is not unique.outputs[0]:
                continue
            clip = None
            if table.owner is not None and isinstance(table.owner.op, ClipScale) \
                    and not table.owner.op.rows and not table.owner.op.inplace:
                clip, table = table.owner, table.owner.inputs[0]
            add = table.owner
            if add is None or not getattr(add.op, "adds_into_first_input", False) \
                    or add.op.inplace or table.ndim != 2:
                continue
            shape = _zeros_shape(add.inputs[0])  # (V, d) of `Alloc(0, V, d)`
            if shape is None or not equal_computations([unique.inputs[0]],
                                                       [add.op.touched_rows(add)]):
                continue
            at = add.op.index_input
            inputs = list(add.inputs)
            inputs[0] = pt.zeros((Shape_i(0)(rows), shape[1]), dtype=table.dtype)
            where = unique.outputs[1]  # flat: shaped as the index, dimension by dimension
            if inputs[at].ndim != 1:
                where = where.reshape([Shape_i(i)(inputs[at]) for i in range(inputs[at].ndim)])
            inputs[at] = where
            compact = add.op.make_node(*inputs).outputs[0]
            out = compact
            if clip is not None:
                out = clip.op.make_node(compact, *clip.inputs[1:]).outputs[0]
            pairs = [(node.outputs[0], out)]
            for client, _ in fgraph.clients[table]:
                if isinstance(client.op, SquaredNorm) and client.op.rows_of == ():
                    ins = [compact if x is table else x for x in client.inputs]
                    pairs.append((client.outputs[0], client.op.make_node(*ins).outputs[0]))
            fgraph.replace_all_validate(pairs, reason="uvs_compact_rows")


# after uvs's lookup gradient (`uvs_inc_rows`, 48), before the rewrites that zero the stored
# gradient where it lies and read a table's rows (59.5, 59.6); C backend only
optdb.register("uvs_compact_rows", CompactRows(), "fast_run", "cxx_only", position=48.5)
