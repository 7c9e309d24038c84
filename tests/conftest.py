"""Fixtures shared by several test modules."""

import os

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


@pytest.fixture(scope="session")
def link_sample(sample_data):
    """`link_sample(DIR)`: DIR/sample/ as hard links to the session's sample (no 200 MB copy;
    uvs writes by rename, never in place, so a test cannot change the shared files)."""

    def link(data_dir):
        os.makedirs(data_dir / "sample")
        for name in os.listdir(sample_data / "sample"):
            os.link(sample_data / "sample" / name, data_dir / "sample" / name)
        return data_dir

    return link
