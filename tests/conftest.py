"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="session")
def net(tmp_path_factory):
    """A narrow VGG-19 (few channels) read from a Lasagne-style pickle, on the CPU."""
    pytest.importorskip("torchvision")
    from vggfixtures import write_lasagne_vgg

    from uvs import vgg

    path = tmp_path_factory.mktemp("vgg") / "vgg19.pkl"
    write_lasagne_vgg(path)
    return vgg.build_convnet(path, device="cpu")


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """The synthetic `sample` data set (`uvs.sample`), written once for the session."""
    from uvs import sample

    root = tmp_path_factory.mktemp("data")
    sample.make_sample(str(root))
    return root
