"""Photos of every awkward kind decode to RGB; unreadable ones are reported by path."""

import numpy as np
import pytest
from vggfixtures import awkward_images, photo

from uvs import photos, vgg
from uvs.errors import UVSError

pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return awkward_images(tmp_path_factory.mktemp("photos"))


def close(a, b, tol):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() < tol


def test_lossless_kinds_decode_exactly(files):
    rgb = photo()
    for name in ("rgb", "rgb16"):
        np.testing.assert_array_equal(photos.load_image(files[name]), rgb)
    for name in ("grey", "grey16"):
        np.testing.assert_array_equal(photos.load_image(files[name]),
                                      np.repeat(rgb[:, :, 1:2], 3, axis=2))


def test_alpha_is_composited_over_white(files):
    want = np.rint(photo() * (200 / 255) + 255 * (55 / 255)).astype(np.uint8)
    close(photos.load_image(files["rgba"]), want, 1.0)
    pal = photos.load_image(files["palette"])
    assert pal.shape == (40, 60, 3) and pal.dtype == np.uint8


def test_cmyk_and_jpeg_decode_to_rgb(files):
    close(photos.load_image(files["jpeg"]), photo(), 3)
    close(photos.load_image(files["cmyk"]), photo(), 3)


def test_exif_orientation_is_applied(files):
    got = photos.load_image(files["exif"])
    close(got, np.rot90(photo(), -1), 3)


def test_truncated_file_decodes_as_far_as_it_goes(files):
    got = photos.load_image(files["truncated"])
    assert got.shape == (160, 240, 3)
    close(got[:40], photos.load_image(files["large"])[:40], 1)


@pytest.mark.parametrize("name, problem", [("broken", "not an image"),
                                           ("empty", "not an image")])
def test_unreadable_files_name_the_path(files, name, problem):
    with pytest.raises(UVSError) as err:
        photos.load_image(files[name])
    assert str(err.value).startswith(files[name]) and problem in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UVSError, match="nope.jpg: photo not found"):
        photos.load_image(tmp_path / "nope.jpg")


def test_features_skip_unreadable_and_warn_on_truncated(files, net):
    names = ["rgb", "broken", "grey16", "truncated", "empty", "exif"]
    seen = []
    run = vgg.features_from_files(net, [files[n] for n in names], batch_size=2,
                                   on_progress=seen.append)
    assert run.paths == [files[n] for n in ("rgb", "grey16", "truncated", "exif")]
    assert [s["path"] for s in run.skipped] == [files["broken"], files["empty"]]
    assert [w["path"] for w in run.warnings] == [files["truncated"]]
    assert run.features.shape == (4, net.dim) and sum(seen) == len(names)
    np.testing.assert_allclose(run.features[0], vgg.compute_features(net, [photo()])[0],
                               rtol=1e-5, atol=1e-6)


def test_strict_fails_on_the_first_bad_file(files, net):
    with pytest.raises(UVSError, match="broken.jpg"):
        vgg.features_from_files(net, [files["rgb"], files["broken"]], strict=True)
    with pytest.raises(UVSError, match="truncated"):
        vgg.features_from_files(net, [files["truncated"]], strict=True)


def test_root_joins_relative_paths_but_reports_them_as_given(files, net, tmp_path):
    import os

    folder, name = os.path.split(files["rgb"])
    run = vgg.features_from_files(net, [name], root=folder)
    assert run.paths == [name] and not run.skipped


def test_crops_must_be_1_or_10(net):
    with pytest.raises(UVSError, match="1 or 10"):
        vgg.compute_features(net, [photo()], crops=5)


def test_extremely_thin_pictures_are_refused(tmp_path):
    from PIL import Image

    path = tmp_path / "thin.png"
    Image.fromarray(np.zeros((2, 100, 3), np.uint8)).save(path)
    with pytest.raises(UVSError, match="too elongated"):
        photos.load_image(path)
