import numpy as np
import pytest

from artefix.data.augment import Augmentation
from artefix.data.dataset import ArtefactDataset
from artefix.data.slices import SliceIndex


def _image():
    yy, xx = np.mgrid[:24, :24]
    return (np.exp(-(((yy - 8) / 5.0) ** 2 + ((xx - 14) / 4.0) ** 2)) * 3).astype(np.float32)


def test_geometry_only_is_a_symmetry_of_the_square():
    img = _image()
    aug = Augmentation(gamma=(1.0, 1.0))
    seen = set()
    for seed in range(60):
        out = aug(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.isclose(out.sum(), img.sum()) and np.isclose(out.max(), img.max())
        seen.add(out.tobytes())
    assert len(seen) == 8  # the dihedral group of the square


def test_gamma_keeps_peak_and_order_and_varies_contrast():
    img = _image()
    aug = Augmentation(flips=False, rot90=False, gamma=(0.5, 2.0))
    outs = [aug(img, np.random.default_rng(s)) for s in range(20)]
    for out in outs:
        assert np.isclose(out.max(), img.max())
        flat_in, flat_out = img.ravel(), out.ravel()
        order = np.argsort(flat_in, kind="stable")
        assert np.all(np.diff(flat_out[order]) >= -1e-6)  # monotonic intensity map
    assert np.ptp([o.mean() for o in outs]) > 0.05


def test_non_square_never_rotates():
    img = np.random.default_rng(0).random((10, 14)).astype(np.float32)
    for s in range(20):
        assert Augmentation()(img, np.random.default_rng(s)).shape == (10, 14)


def test_bad_gamma():
    with pytest.raises(ValueError, match="gamma"):
        Augmentation(gamma=(0.0, 1.0))


def test_dataset_augments_train_only_and_keeps_corruption_params(tmp_path):
    for k in range(2):
        np.save(tmp_path / f"s{k}.npy", np.stack([_image() * (k + 1)] * 3, axis=-1))
    files = sorted(tmp_path.glob("*.npy"))
    plain = ArtefactDataset(SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="train")
    aug = ArtefactDataset(
        SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="train", augment=Augmentation()
    )
    val = ArtefactDataset(
        SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="val", augment=Augmentation()
    )
    val_plain = ArtefactDataset(SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="val")
    changed = 0
    for i in range(len(plain)):
        assert plain[i].params == aug[i].params
        changed += not np.allclose(plain[i].clean, aug[i].clean)
        np.testing.assert_array_equal(val[i].clean, val_plain[i].clean)
    assert changed > 0
