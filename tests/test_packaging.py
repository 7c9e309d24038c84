"""The built wheel installs `uvs` and `uvs.cli`, and no generic top-level `cli` module."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what a checkout holds besides the sources: never copied into the build
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "data",
                                     "models", "__pycache__", ".*_cache")


def build_wheel(out: Path) -> Path:
    """Build a wheel as `pip install .` would: the standard front-end (`python -m build`,
    from the test extras) in an isolated environment with the backend's own requirements.

    It builds a copy of the sources, so that no stale `build/` folder of the checkout can
    leak into it; a failure shows the front-end's output.
    """
    src = out / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCES)
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out / "dist"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout}\n{proc.stderr}")
    (wheel,) = (out / "dist").glob("uvs_embeddings-*.whl")  # the distribution uvs-embeddings
    return wheel


@pytest.mark.slow
def test_wheel_has_no_top_level_cli(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"uvs"}
    assert "uvs/cli/main.py" in names and "uvs/tools.py" in names
    # every package and C source of the checkout ships (uvs.decoding once did not)
    sources = {f"uvs/{p.relative_to(ROOT / 'uvs').as_posix()}"
               for pattern in ("**/*.py", "*.c", "*.h") for p in (ROOT / "uvs").glob(pattern)
               if "__pycache__" not in p.parts}
    assert sources - set(names) == set()
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "uvs = uvs.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
