"""Tests for `tf_lanmax.data`: IDX reader, offline TFDS builders, pipelines. No network."""

import gzip
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tf_lanmax import data
from tf_lanmax.data import idx, sources

BUNDLED = os.path.join(os.path.dirname(data.__file__), "_bundled")
DEBIAN = "/usr/share/datasets/fashion-mnist"


def _idx_bytes(array, code):
    """Independent IDX encoder (the oracle): magic 00 00 code ndim, big-endian dims and data."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(dtype).tobytes()


def _write_idx_dir(folder, n_train, n_test, seed):
    """Writes the four Fashion-MNIST IDX files with random content; returns the arrays."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        image_name, label_name = idx.SPLIT_FILES[split]
        with gzip.open(os.path.join(folder, image_name), "wb") as f:
            f.write(_idx_bytes(images, 0x08))
        with gzip.open(os.path.join(folder, label_name), "wb") as f:
            f.write(_idx_bytes(labels, 0x08))
        arrays[split] = (images, labels)
    return arrays


@pytest.fixture(scope="module")
def subset_dir(tmp_path_factory):
    """A TFDS data folder where the bundled subset is prepared once for the module."""
    folder = str(tmp_path_factory.mktemp("tfds_subset"))
    data.load("fashion_mnist_subset", "test", data_dir=folder)
    return folder


# IDX reader -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_reads_what_numpy_wrote(tmp_path, gzipped):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / ("images.idx.gz" if gzipped else "images.idx")
    raw = _idx_bytes(images, 0x08)
    path.write_bytes(gzip.compress(raw) if gzipped else raw)

    np.testing.assert_array_equal(idx.read_idx(path), images)
    np.testing.assert_array_equal(idx.read_images(path), images)
    assert idx.read_idx_header(path) == (np.dtype(np.uint8), (3, 4, 5))


@pytest.mark.parametrize(
    "array, code",
    [
        (np.array([7, 0, 255], dtype=np.uint8), 0x08),
        (np.array([[-300, 2], [5, 32000]], dtype=np.int16), 0x0B),
        (np.array([1.5, -2.25], dtype=np.float32), 0x0D),
    ],
)
def test_write_idx_matches_the_format_and_round_trips(tmp_path, array, code):
    plain = idx.write_idx(tmp_path / "a.idx", array)
    assert (tmp_path / "a.idx").read_bytes() == _idx_bytes(array, code)
    gz = idx.write_idx(tmp_path / "a.idx.gz", array)
    for path in (plain, gz):
        out = idx.read_idx(path)
        assert out.dtype == array.dtype
        np.testing.assert_array_equal(out, array)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_idx_rejects_bad_magic_and_bad_size(tmp_path):
    good = _idx_bytes(np.zeros((2, 28, 28), np.uint8), 0x08)
    bad_magic = tmp_path / "bad_magic"
    bad_magic.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match="magic number") as err:
        idx.read_idx(bad_magic)
    assert "01 02 08 03" in str(err.value) and "path=" in str(err.value)
    with pytest.raises(ValueError, match="magic number"):
        idx.read_idx_header(bad_magic)

    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(gzip.compress(good[:-10]))
    with pytest.raises(ValueError, match=f"must hold {2 * 28 * 28} data bytes"):
        idx.read_idx(truncated)

    floats = tmp_path / "floats"
    floats.write_bytes(_idx_bytes(np.zeros(3, np.float32), 0x0D))
    with pytest.raises(ValueError, match="uint8 IDX label file"):
        idx.read_labels(floats)
    with pytest.raises(ValueError, match="split"):
        idx.split_paths(tmp_path, "validation")
    with pytest.raises(FileNotFoundError, match="idx_dir"):
        idx.split_paths(tmp_path, "train")


# Bundled subset ---------------------------------------------------------------------------------


def test_bundled_files_are_small_and_licensed():
    names = sorted(os.listdir(BUNDLED))
    expected = sorted([n for pair in idx.SPLIT_FILES.values() for n in pair] + ["LICENSE"])
    assert names == expected
    assert sum(os.path.getsize(os.path.join(BUNDLED, n)) for n in names) <= 6_000_000
    with open(os.path.join(BUNDLED, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    assert "MIT License" in text and "Zalando SE" in text and "Images taken" in text


def test_subset_loads_through_tfds(subset_dir):
    counts = data.info("fashion_mnist_subset")["num_examples"]
    assert counts == {
        split: len(idx.read_labels(idx.split_paths(BUNDLED, split)[1]))
        for split in ("train", "test")
    }
    assert counts["train"] >= 10_000 and counts["test"] == 2_000
    for split, n in counts.items():
        ds = data.load("fashion_mnist_subset", split, batch_size=1000, data_dir=subset_dir)
        seen = 0
        for images, labels in ds:
            assert images.shape[1:] == (28, 28, 1) and images.dtype.name == "float32"
            assert labels.dtype.is_integer and images.shape[0] == labels.shape[0] <= 1000
            x = images.numpy()
            assert 0.0 <= x.min() and x.max() <= 1.0
            assert 0 <= labels.numpy().min() and labels.numpy().max() <= 9
            seen += int(labels.shape[0])
        assert seen == n


@pytest.mark.parametrize("split", ["train", "test"])
def test_subset_classes_are_balanced(split):
    labels = idx.read_labels(idx.split_paths(BUNDLED, split)[1])
    fractions = np.bincount(labels, minlength=10) / len(labels)
    # A random prefix of a balanced set: each class within a few binomial sds of 10%.
    assert fractions.min() > 0.08 and fractions.max() < 0.12


@pytest.mark.skipif(not os.path.isdir(DEBIAN), reason="dataset-fashion-mnist not installed")
def test_subset_is_real_fashion_mnist(subset_dir):
    for split in ("train", "test"):
        full_x, full_y = idx.read_split(DEBIAN, split)
        # Through the TFDS path (PNG encoding, stored order), not just the IDX files.
        x, y = data.load_numpy("fashion_mnist_subset", split, data_dir=subset_dir, normalize=False)
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28, 1)
        np.testing.assert_array_equal(x[..., 0], full_x[: len(x)])
        np.testing.assert_array_equal(y, full_y[: len(y)])


def test_load_numpy_matches_the_pipeline(subset_dir):
    x, y = data.load_numpy("fashion_mnist_subset", "test", data_dir=subset_dir)
    batches = list(data.load("fashion_mnist_subset", "test", batch_size=300, data_dir=subset_dir))
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    assert x.dtype == np.float32 and x.shape == (2000, 28, 28, 1)

    x_raw, _ = data.load_numpy(
        "fashion_mnist_subset", "test", data_dir=subset_dir, normalize=False, take=50
    )
    np.testing.assert_allclose(x[:50], x_raw.astype(np.float32) / 255.0, rtol=1e-6)


def test_shuffling_is_seeded_and_train_only_by_default(subset_dir):
    def labels(**kwargs):
        ds = data.load("fashion_mnist_subset", data_dir=subset_dir, take=500, **kwargs)
        return np.concatenate([b[1].numpy() for b in ds])

    stored = data.load_numpy("fashion_mnist_subset", "train", data_dir=subset_dir, take=500)[1]
    a, b, c = labels(split="train", seed=1), labels(split="train", seed=1), labels(seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, stored)
    np.testing.assert_array_equal(np.sort(a), np.sort(stored))
    test_labels = labels(split="test")
    np.testing.assert_array_equal(
        test_labels,
        data.load_numpy("fashion_mnist_subset", "test", data_dir=subset_dir, take=500)[1],
    )


def test_split_slices_and_dict_output(subset_dir):
    ds = data.load(
        "fashion_mnist_subset",
        "test[:10%]",
        batch_size=64,
        data_dir=subset_dir,
        as_supervised=False,
        normalize=False,
    )
    batch = next(iter(ds))
    assert set(batch) == {"image", "label"} and batch["image"].dtype.name == "uint8"
    # Peeking first must not truncate later epochs (a lazily filled `Dataset.cache()` did).
    assert sum(int(b["label"].shape[0]) for b in ds) == 200
    # Without a shuffle buffer to drain the source first, that cache kept about one batch.
    train = data.load(
        "fashion_mnist_subset", "train[:3000]", batch_size=100, data_dir=subset_dir, shuffle=False
    )
    for _ in range(3):
        next(iter(train))
        assert sum(int(b[1].shape[0]) for b in train) == 3000


# Full data from an IDX folder -------------------------------------------------------------------


def test_fashion_mnist_idx_prepares_from_a_local_folder(tmp_path):
    arrays = _write_idx_dir(tmp_path / "idx_a", n_train=30, n_test=12, seed=0)
    data_dir = str(tmp_path / "tfds")
    info = data.info("fashion_mnist", idx_dir=tmp_path / "idx_a")
    assert info["num_examples"] == {"train": 30, "test": 12} and info["num_classes"] == 10

    for split, (images, labels) in arrays.items():
        x, y = data.load_numpy(
            "fashion_mnist", split, data_dir=data_dir, idx_dir=tmp_path / "idx_a"
        )
        np.testing.assert_allclose(x[..., 0], images / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y, labels)

    # Other source files into the same cache: rebuilt, with a warning saying so.
    _write_idx_dir(tmp_path / "idx_b", n_train=20, n_test=5, seed=1)
    with pytest.warns(UserWarning, match="rebuilding"):
        x, _ = data.load_numpy(
            "fashion_mnist", "train", data_dir=data_dir, idx_dir=tmp_path / "idx_b"
        )
    assert len(x) == 20


def test_failed_prepare_leaves_no_dataset_behind(tmp_path, monkeypatch):
    from tf_lanmax.data import tfds_builders

    _write_idx_dir(tmp_path / "idx", n_train=30, n_test=10, seed=0)
    data_dir = tmp_path / "tfds"
    original = tfds_builders.FashionMnistIdx._generate_examples

    def failing(self, images, labels):
        for i, example in enumerate(original(self, images, labels)):
            if i == 15:
                raise OSError("disk full (simulated)")
            yield example

    monkeypatch.setattr(tfds_builders.FashionMnistIdx, "_generate_examples", failing)
    with pytest.raises(OSError, match="simulated"):
        data.load("fashion_mnist", data_dir=data_dir, idx_dir=tmp_path / "idx")
    # Only the preparation lock file stays (deleting a lock file others may wait on races).
    leftovers = [p for p in data_dir.rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert leftovers == []

    monkeypatch.setattr(tfds_builders.FashionMnistIdx, "_generate_examples", original)
    x, _ = data.load_numpy("fashion_mnist", "train", data_dir=data_dir, idx_dir=tmp_path / "idx")
    assert len(x) == 30


# Errors and offline behaviour -------------------------------------------------------------------


def test_unknown_name_and_bad_arguments(subset_dir):
    with pytest.raises(ValueError, match="name") as err:
        data.load("imagenet")
    assert "fashion_mnist_subset" in str(err.value) and "'imagenet'" in str(err.value)
    with pytest.raises(ValueError, match="name"):
        data.info("imagenet")
    with pytest.raises(ValueError, match="name"):
        data.load_numpy("imagenet", "test")
    with pytest.raises(ValueError, match="batch_size"):
        data.load("fashion_mnist_subset", batch_size=0)
    with pytest.raises(ValueError, match="idx_dir"):
        data.load("mnist", idx_dir="/nowhere")
    with pytest.raises(FileNotFoundError, match="idx_dir"):
        data.load("fashion_mnist", idx_dir="/nowhere", data_dir=subset_dir)
    with pytest.raises(ValueError, match="split") as err:
        data.load("fashion_mnist_subset", "validation", data_dir=subset_dir)
    assert "'validation'" in str(err.value)
    assert set(data.DATASETS) == {"fashion_mnist_subset", "fashion_mnist", "mnist", "cifar10"}


@pytest.mark.parametrize("name", ["mnist", "cifar10", "fashion_mnist"])
def test_unprepared_dataset_offline_fails_fast_and_clearly(tmp_path, monkeypatch, name):
    monkeypatch.setattr(sources, "network_available", lambda *a, **k: False)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "not_installed"))
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError, match=f"tfds build {name}") as err:
        data.load(name, data_dir=tmp_path / "empty")
    # Bound on never entering TFDS' multi-minute download retries.
    assert time.monotonic() - start < 2.0
    assert isinstance(err.value, FileNotFoundError)
    if name == "fashion_mnist":
        assert "apt-get install dataset-fashion-mnist" in str(err.value)


def test_network_probe_gives_up_quickly():
    start = time.monotonic()
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never routed.
    assert sources.network_available("192.0.2.1", 443, timeout=0.3) is False
    assert time.monotonic() - start < 1.0


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)
    assert sources.resolve_data_dir() == os.path.expanduser(
        os.path.join("~", ".cache", "tf_lanmax", "tensorflow_datasets")
    )
    monkeypatch.setenv(sources.ENV_DATA_DIR, str(tmp_path / "env"))
    assert sources.resolve_data_dir() == str(tmp_path / "env")
    assert sources.resolve_data_dir(tmp_path / "arg") == str(tmp_path / "arg")


def test_info_shapes():
    assert data.info("cifar10")["input_shape"] == (32, 32, 3)
    assert data.info("mnist")["class_names"][:2] == ["0", "1"]
    fashion = data.info("fashion_mnist")
    assert fashion["num_examples"] == {"train": 60000, "test": 10000}
    assert fashion["class_names"][0] == "T-shirt/top" and fashion["num_classes"] == 10


PREPARE_SCRIPT = """
import sys
from tf_lanmax import data
x, y = data.load_numpy("fashion_mnist_subset", "test", data_dir=sys.argv[1], take=8)
print(x.shape[0], int(y.sum()))
"""


def test_two_processes_preparing_one_fresh_dataset_both_succeed(tmp_path):
    # Two commands started together on a fresh machine prepare the same dataset: without the
    # lock, one process's rename of TFDS' incomplete folder failed on the other's.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = [sys.executable, "-c", PREPARE_SCRIPT, str(tmp_path / "data")]
    processes = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=240)
        finally:
            process.kill()
        assert process.returncode == 0, err[-3000:]
        outputs.append(out.strip().splitlines()[-1])
    assert outputs[0] == outputs[1]
    assert outputs[0].split()[0] == "8"
