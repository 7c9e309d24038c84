"""The built wheel installs `uvs` and `uvs.cli`, and no generic top-level `cli` module."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_has_no_top_level_cli(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = tmp_path.glob("uvs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"uvs"}
    assert "uvs/cli/main.py" in names and "uvs/tools.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "uvs = uvs.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
