"""The core works without the extras: torch, torchvision, Pillow and faiss load only when used."""

import subprocess
import sys

import numpy as np
import pytest

from uvs import demo, photos, vgg
from uvs import index as uindex
from uvs.errors import UVSError

EXTRAS = ("torch", "torchvision", "PIL", "faiss")


def test_importing_uvs_and_its_cli_loads_no_extra():
    code = ("import sys, uvs.photos, uvs.vgg, uvs.demo, uvs.index, uvs.cli.main; "
            f"print([m for m in {EXTRAS!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module, call, name", [
    ("torch", lambda: vgg.build_convnet("random"), "torch"),
    ("torch", lambda: demo.build_convnet("random"), "torch"),
    ("PIL", lambda: photos.load_image(__file__), "Pillow"),
    ("PIL", lambda: demo.load_image(__file__), "Pillow"),
])
def test_missing_images_extra_is_named(monkeypatch, module, call, name):
    for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, loaded, None)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(UVSError, match=rf"{name} is not installed: in the uvs checkout run "
                       r"pip install -e '\.\[images\]'.*--index-url \S+/whl/cpu"):
        call()


def test_the_seeds_names_still_come_from_demo():
    assert demo.build_convnet is vgg.build_convnet
    assert demo.compute_features is vgg.compute_features
    assert demo.load_image is photos.load_image
    assert {"build_convnet", "compute_features", "load_image", "retrieve_captions",
            "retrieve_images", "regularities"} <= set(demo.__all__)
    assert all(hasattr(demo, name) for name in demo.__all__)


def test_missing_index_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(UVSError, match=r"faiss-cpu is not installed: in the uvs checkout run "
                       r"pip install -e '\.\[index\]'"):
        uindex.build(np.ones((2, 3), np.float32), ["a", "b"], {"kind": "images"})
