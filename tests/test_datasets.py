"""Chapter 5's data: digits, generated heartbeats, the MIT-BIH CSV loader and torchvision's image loaders.

No data set can be downloaded here, so the image loaders read small files written in their on-disk formats:
MNIST's idx files, CIFAR-10's pickled batches and SVHN's MATLAB file. torchvision checks CIFAR-10 and SVHN
files against the MD5 sums of the real files, which generated files cannot match; those tests replace the
check by an existence check and run the rest of the loader as it is.
"""
from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch

from nodelib import datasets


def test_digits_are_scaled_split_and_seeded():
    x, y, xt, yt = datasets.digits()
    assert x.shape[1:] == (1, 8, 8) and len(x) + len(xt) == 1797 and len(xt) == 359
    assert x.min() >= 0 and x.max() <= 1 and set(y.tolist()) == set(range(10))
    again = datasets.digits()
    assert torch.equal(x, again[0]) and torch.equal(yt, again[3])
    assert not torch.equal(x, datasets.digits(seed=1)[0])


def test_synthetic_heartbeats_have_the_mitbih_layout():
    x, y = datasets.synthetic_heartbeats(400, seed=3)
    assert x.shape == (400, 1, 187) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1 and set(y.tolist()) == set(range(5))
    assert (x[:, 0, -20:] == 0).all()  # zero padding after the beat
    x2, y2 = datasets.synthetic_heartbeats(400, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    _, skewed = datasets.synthetic_heartbeats(4000, seed=0, proportions=datasets.MITBIH_PROPORTIONS)
    assert abs(float((skewed == 0).float().mean()) - 0.828) < 0.03


def test_heartbeat_classes_have_distinct_morphologies():
    # A nearest-class-mean rule, fitted on one sample and scored on another, is far above chance (0.2).
    x, y = datasets.synthetic_heartbeats(1000, seed=1)
    xt, yt = datasets.synthetic_heartbeats(500, seed=2)
    means = torch.stack([x[y == c, 0].mean(0) for c in range(5)])
    predicted = torch.cdist(xt[:, 0], means).argmin(1)
    assert float((predicted == yt).float().mean()) > 0.6


@pytest.mark.parametrize("kwargs,message", [(dict(n=0), "n must be"), (dict(n=5, proportions=(0.5, 0.5)), "5 non-negative"),
                                            (dict(n=5, noise=-1.0), "noise must be")])
def test_heartbeat_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.synthetic_heartbeats(**kwargs)


def _write_mitbih(path, x, y):
    rows = np.concatenate([x[:, 0].numpy().astype(np.float64), y.numpy()[:, None].astype(np.float64)], axis=1)
    np.savetxt(path, rows, delimiter=",", fmt="%.18e")


def test_mitbih_csv_round_trip(tmp_path):
    x, y = datasets.synthetic_heartbeats(25, seed=4)
    path = tmp_path / "mitbih_test.csv"
    _write_mitbih(path, x, y)
    xr, yr = datasets.load_mitbih_csv(path)
    assert xr.shape == (25, 1, 187) and torch.equal(yr, y)
    torch.testing.assert_close(xr, x)


def test_mitbih_csv_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="188 columns"):
        datasets.load_mitbih_csv(tmp_path / "missing.csv")
    short = tmp_path / "short.csv"
    short.write_text(",".join(["0.5"] * 188) + "\n" + ",".join(["0.5"] * 100) + "\n")
    with pytest.raises(ValueError, match=r"short.csv:2: expected 188"):
        datasets.load_mitbih_csv(short)
    label = tmp_path / "label.csv"
    label.write_text(",".join(["0.5"] * 187 + ["7"]) + "\n")
    with pytest.raises(ValueError, match="labels must be the integers 0-4"):
        datasets.load_mitbih_csv(label)
    text = tmp_path / "text.csv"
    text.write_text(",".join(["abc"] * 188) + "\n")
    with pytest.raises(ValueError, match=r"text.csv:1: a value is not a number"):
        datasets.load_mitbih_csv(text)


def test_synthetic_images_have_the_real_shapes():
    for name, shape in (("mnist", (1, 28, 28)), ("svhn", (3, 32, 32)), ("cifar10", (3, 32, 32))):
        x, y = datasets.synthetic_images(name, 6, seed=0)
        assert x.shape == (6, *shape) and y.max() < 10
    with pytest.raises(ValueError, match="expected one of"):
        datasets.synthetic_images("imagenet", 3)


# --- torchvision's loaders on files in their own formats ------------------------------------------------------

def _idx(path, magic, array):
    with open(path, "wb") as handle:
        handle.write(struct.pack(">II", magic, len(array)))
        if array.ndim == 3:
            handle.write(struct.pack(">II", *array.shape[1:]))
        handle.write(array.astype(np.uint8).tobytes())


def test_mnist_loader_reads_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 5)):
        _idx(raw / f"{split}-images-idx3-ubyte", 2051, rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte", 2049, np.arange(n) % 10)
    train = datasets.image_dataset("mnist", tmp_path, train=True)
    test = datasets.image_dataset("mnist", tmp_path, train=False)
    assert len(train) == 12 and len(test) == 5
    image, label = test[3]
    assert image.shape == (1, 28, 28) and label == 3
    assert abs(float(image.mean()) - (127.5 / 255 - 0.1307) / 0.3081) < 0.2  # normalised with MNIST's statistics


@pytest.fixture
def skip_md5(monkeypatch):
    import os

    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn

    exists = lambda fpath, md5=None: os.path.isfile(fpath)  # noqa: E731
    monkeypatch.setattr(cifar, "check_integrity", exists)
    monkeypatch.setattr(svhn, "check_integrity", exists)


def test_cifar10_loader_reads_pickled_batches(tmp_path, skip_md5):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 9]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    train = datasets.image_dataset("cifar10", tmp_path, train=True, augment=True)
    test = datasets.image_dataset("cifar10", tmp_path, train=False)
    assert len(train) == 20 and len(test) == 4
    image, label = test[3]
    assert image.shape == (3, 32, 32) and label == 9
    assert train[0][0].shape == (3, 32, 32)  # random crop keeps the size


def test_svhn_loader_reads_the_matlab_file(tmp_path, skip_md5):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("test", 3)):
        savemat(tmp_path / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                                  "y": np.array([[10], [1], [2], [3], [4], [5]][:n], dtype=np.uint8)})
    train = datasets.image_dataset("svhn", tmp_path, train=True)
    test = datasets.image_dataset("svhn", tmp_path, train=False)
    assert len(train) == 6 and len(test) == 3
    assert test[0][0].shape == (3, 32, 32) and test[0][1] == 0  # SVHN stores the digit 0 as 10


def test_missing_image_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        datasets.image_dataset("mnist", tmp_path, train=True)
    with pytest.raises(ValueError, match="expected one of"):
        datasets.image_dataset("imagenet", tmp_path, train=True)
