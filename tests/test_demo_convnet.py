"""VGG-19 fc7 through torchvision: the Lasagne conversion against a direct computation."""

import numpy as np
import pytest
from vggfixtures import DENSE, photo, write_lasagne_vgg

from uvs import vgg
from uvs.errors import UVSError

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
F = torch.nn.functional
MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def reference_fc7(values, crop):
    """fc7 after ReLU, layer by layer with torch functional ops: one (224, 224, 3) RGB crop."""
    x = (crop[:, :, ::-1].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)
    x = torch.from_numpy(np.ascontiguousarray(x))[None]
    k = 0
    for n in (2, 2, 4, 4, 4):
        for _ in range(n):
            W, b = (torch.from_numpy(values[2 * k]), torch.from_numpy(values[2 * k + 1]))
            x = F.relu(F.conv2d(x, W, b, padding=1))
            k += 1
        x = F.max_pool2d(x, 2)
    h = x.flatten(1).numpy()
    for i in (32, 34):
        h = np.maximum(0, h @ values[i] + values[i + 1])
    return h[0]


def unit(v):
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pkl"
    values = write_lasagne_vgg(path)
    return path, values, vgg.build_convnet(path, device="cpu")


def test_lasagne_pickle_becomes_a_caffe_convnet(narrow):
    path, _, net = narrow
    assert (net.preprocessing, net.weights, net.dim) == ("caffe", str(path), DENSE[1])


def test_one_crop_matches_direct_computation(narrow):
    _, values, net = narrow
    pixels = photo(256, 300, seed=3)  # shortest side already 256: no resampling
    got = vgg.compute_features(net, [pixels])
    want = unit(reference_fc7(values, pixels[16:240, 38:262]))
    assert got.shape == (1, DENSE[1]) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)


def test_ten_crops_average_corners_centre_and_mirrors(narrow):
    _, values, net = narrow
    p = photo(256, 300, seed=4)
    corners = [(16, 38), (0, 0), (0, 76), (32, 0), (32, 76)]
    crops = [p[i:i + 224, j:j + 224] for i, j in corners]
    crops += [c[:, ::-1] for c in crops]
    want = unit(np.mean([reference_fc7(values, c) for c in crops], axis=0))
    got = vgg.compute_features(net, [p], crops=10)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)


def test_batches_do_not_change_features(narrow):
    _, _, net = narrow
    photos = [photo(120 + 20 * i, 90 + 30 * i, seed=i) for i in range(5)]
    one = np.concatenate([vgg.compute_features(net, [p]) for p in photos])
    np.testing.assert_allclose(vgg.compute_features(net, photos, batch_size=2), one,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, rtol=1e-5)


def test_resize_keeps_aspect_and_shortest_side_256(narrow):
    _, _, net = narrow
    assert tuple(vgg._resized(net, photo(100, 400)).shape) == (3, 256, 1024)
    assert tuple(vgg._resized(net, photo(500, 250)).shape) == (3, 512, 256)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda v: v[:-1], "38 arrays"),
    (lambda v: v[:2] + [v[2][:, :2]] + v[3:], "conv layer 2"),
    (lambda v: v[:32] + [v[32][:-1]] + v[33:], "dense layer fc6"),
    (lambda v: v[:5] + [v[5] * np.nan] + v[6:], "NaN"),
])
def test_malformed_lasagne_values_are_refused(tmp_path, narrow, mutate, fragment):
    with pytest.raises(UVSError, match=fragment):
        vgg.lasagne_vgg("vgg19.pkl", mutate(list(narrow[1])))


def test_missing_lasagne_file_says_where_to_get_it(tmp_path):
    with pytest.raises(UVSError, match="s3.amazonaws.com/lasagne"):
        vgg.build_convnet(tmp_path / "vgg19.pkl")


def test_pickle_without_param_values_is_refused(tmp_path):
    from py2pickle import dumps_py2

    path = tmp_path / "other.pkl"
    path.write_bytes(dumps_py2({"weights": [np.zeros(3, np.float32)]}, protocol=2))
    with pytest.raises(UVSError, match="param values"):
        vgg.build_convnet(path)


def test_code_in_the_pickle_never_runs(tmp_path):
    from py2pickle import py2_reduce_payload

    path, target = tmp_path / "evil.pkl", tmp_path / "pwned"
    path.write_bytes(py2_reduce_payload(str(target)))
    with pytest.raises(UVSError, match="refusing"):
        vgg.build_convnet(path)
    assert not target.exists()


def test_torchvision_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert vgg.torchvision_weights_path() == str(expected)
    with pytest.raises(UVSError) as err:
        vgg.build_convnet("torchvision")
    assert str(err.value).startswith(str(expected)) and "download.pytorch.org" in str(err.value)
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"not a checkpoint")
    with pytest.raises(UVSError, match="not a torch checkpoint"):
        vgg.build_convnet("torchvision")
