"""The house of imports: no cycle, no arrow going up, first-party imports at the top.

Floors, bottom to top: the modules of `uvs/` (the base), the model families and tools in its
subpackages (`uvs.align`, `uvs.decoding`, `uvs.report`, ...), then the command line
(`cli/`, installed as `uvs.cli`). A module imports from its own floor or below (subpackages
of one floor without a cycle between them); imports inside functions are for optional extras
only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"uvs": ROOT / "uvs", "uvs.cli": ROOT / "cli"}
# the first-party imports left inside a function: as in the originals, MLBL.train saves the
# model with lm_tools.save_model and lm_tools.load_model builds MLBLs; and uvs.backend, which
# imports no PyTensor at its top (`import uvs` stays light), imports its PyTensor helpers
# `uvs.prebuild`, `uvs.ccflags` and the rewrites of `uvs.inc_rows` and `uvs.axis_sums` where
# it compiles
LAZY = {("uvs.mnlm.lbl", "uvs.mnlm.lm_tools"), ("uvs.mnlm.lbl", "uvs.mnlm"),
        ("uvs.backend", "uvs.prebuild"), ("uvs.backend", "uvs.ccflags"),
        ("uvs.backend", "uvs.inc_rows"), ("uvs.backend", "uvs.axis_sums")}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, bool, int]]:
    """(importer, imported first-party module, at module level, line) of every import."""
    out = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if (name, target) in LAZY and id(node) not in top:
                    continue
                if target in modules and target not in PACKAGES and target != name:
                    out.append((name, target, id(node) in top, node.lineno))
    return out


def _floor(module: str) -> tuple[int, str]:
    """(floor, room): 0 for the base `uvs.x`, 1 for a subpackage `uvs.pkg.x` (room pkg),
    2 for the command line."""
    parts = module.split(".")
    if parts[:2] == ["uvs", "cli"]:
        return 2, "cli"
    if len(parts) == 2 and not (PACKAGES["uvs"] / parts[1]).is_dir():
        return 0, ""
    return 1, parts[1]


def test_no_import_cycle():
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for a, b, _, _ in _imports(modules):
        graph[a].add(b)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_arrow_goes_up():
    wrong = [f"{a}:{line} imports {b}" for a, b, _, line in _imports(_modules())
             if _floor(b)[0] > _floor(a)[0]]
    assert not wrong, "\n".join(wrong)


def test_first_party_imports_at_the_top():
    inside = [f"{a}:{line} imports {b}" for a, b, top, line in _imports(_modules()) if not top]
    assert not inside, "\n".join(inside)


def test_the_rules_see_what_they_check():
    """The graph is not empty and the floors are as documented (a check that can fail)."""
    edges = {(a, b) for a, b, _, _ in _imports(_modules())}
    assert ("uvs.train", "uvs.runs") in edges and ("uvs.cli.align", "uvs.align.show") in edges
    assert _floor("uvs.runs") == (0, "") and _floor("uvs.align.show") == (1, "align")
    assert _floor("uvs.cli.main") == (2, "cli")
