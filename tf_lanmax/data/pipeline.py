"""Batched `tf.data` input pipelines over TFDS datasets, with offline paths that never hang.

`load` returns `(image, label)` batches ready for `model.fit`: float32 images in [0, 1] of
shape (28, 28, 1) (Fashion-MNIST, MNIST) or (32, 32, 3) (CIFAR-10) and integer labels.

Where the data comes from, per name:

- `fashion_mnist_subset`: the real Fashion-MNIST subset bundled with the package (offline).
- `fashion_mnist`: TFDS' prepared `fashion_mnist` if `data_dir` holds it; else the full data from
  local IDX files (`idx_dir`, or Debian's `/usr/share/datasets/fashion-mnist` from
  `apt-get install dataset-fashion-mnist`) through the `fashion_mnist_idx` builder; else a
  previously prepared `fashion_mnist_idx`; else a TFDS download when the network is up.
- `mnist`, `cifar10`: TFDS' standard builders.

Before any TFDS download a 0.5 s connection probe to TFDS' download host decides whether the
network is up: offline, TFDS would retry for minutes, so `load` raises
`DatasetUnavailableError` at once instead, saying how to get the data.

Prepared data lives in a TFDS data folder: the `data_dir` argument, else the
`TF_LANMAX_DATA_DIR` environment variable, else `~/.cache/tf_lanmax/tensorflow_datasets`. When
`data_dir` is not given, datasets TFDS already prepared in its own default folder
(`TFDS_DATA_DIR` or `~/tensorflow_datasets`) are used too, read-only.
"""

import functools
import os
import socket
import threading
import warnings

from tf_lanmax import _validation
from tf_lanmax._io import exclusive_lock
from tf_lanmax.data import idx

DATASETS = ("fashion_mnist_subset", "fashion_mnist", "mnist", "cifar10")
ENV_DATA_DIR = "TF_LANMAX_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join("~", ".cache", "tf_lanmax", "tensorflow_datasets")
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# Official split sizes and shapes, so `info` needs neither TFDS nor prepared data.
_SPECS = {
    "fashion_mnist": {"input_shape": (28, 28, 1), "num_examples": {"train": 60000, "test": 10000}},
    "mnist": {
        "input_shape": (28, 28, 1),
        "num_examples": {"train": 60000, "test": 10000},
        "class_names": tuple(str(d) for d in range(10)),
    },
    "cifar10": {
        "input_shape": (32, 32, 3),
        "num_examples": {"train": 50000, "test": 10000},
        "class_names": _CIFAR10_CLASSES,
    },
}
# Decoded uint8 splits up to this size are held in memory: PNG decoding would otherwise cost
# ~0.7 s per 11,500 images every epoch on a 2-core CPU (CIFAR-10 train is 150 MB).
_IN_MEMORY_LIMIT_BYTES = 256 * 2**20
_SHUFFLE_BUFFER = 50_000


class DatasetUnavailableError(FileNotFoundError):
    """Raised when a dataset is neither prepared locally nor downloadable (offline)."""


def _tf():
    import tensorflow as tf

    return tf


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def _builders():
    # TFDS (~0.4 s) is imported on first use, not with `tf_lanmax`.
    from tf_lanmax.data import tfds_builders

    return tfds_builders


def network_available(host=DOWNLOAD_HOST[0], port=DOWNLOAD_HOST[1], timeout=0.5):
    """Whether a TCP connection to `host:port` opens within `timeout` seconds.

    The probe runs in a daemon thread so that a slow DNS lookup (not covered by socket
    timeouts) cannot stall the caller past `timeout`.

    Args:
        host: host name. Defaults to `"storage.googleapis.com"` (TFDS' download host).
        port: TCP port. Defaults to `443`.
        timeout: seconds to wait in all. Defaults to `0.5`.

    Returns:
        `True` if the connection opened in time, else `False`.

    Example:

    >>> network_available(timeout=0.5)  # doctest: +SKIP
    False
    """
    result = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="tf_lanmax-network-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result) and result[0]


def resolve_data_dir(data_dir=None):
    """The TFDS data folder used for preparing: argument, `TF_LANMAX_DATA_DIR`, or default.

    Args:
        data_dir: explicit folder, or `None`. Defaults to `None`.

    Returns:
        An absolute path (not created here).

    Example:

    >>> resolve_data_dir("/tmp/tfds")
    '/tmp/tfds'
    """
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR
    return os.path.abspath(os.path.expanduser(os.fspath(chosen)))


def _read_only_dirs(data_dir):
    # With no explicit `data_dir`, also reuse what TFDS itself prepared earlier.
    if data_dir is not None:
        return []
    tfds_default = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    return [os.path.abspath(os.path.expanduser(tfds_default))]


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(f"`name` must be one of {list(DATASETS)}. Received: name={name!r}")


@functools.lru_cache(maxsize=16)
def _fingerprint(idx_dir, stat_key):
    del stat_key  # Only part of the cache key: a changed file changes its size or mtime.
    return _builders().source_fingerprint(idx_dir)


def _stat_key(idx_dir):
    key = []
    for split in idx.SPLIT_FILES:
        for path in idx.split_paths(idx_dir, split):
            st = os.stat(path)
            key.append((path, st.st_size, st.st_mtime_ns))
    return tuple(key)


def _is_prepared(builder):
    # TFDS' `is_prepared` logs a warning when the version folder does not exist yet.
    return os.path.isdir(builder.data_dir) and builder.is_prepared()


def _idx_builder(cls, data_dir, idx_dir):
    """An IDX-backed builder, prepared (or re-prepared if its cache came from other files).

    Preparation holds a lock file in the data folder: another process preparing the same
    dataset (two commands started together on a fresh machine) waits, then finds it prepared.
    """
    builder = cls(data_dir=data_dir, idx_dir=idx_dir)
    root = os.path.dirname(os.path.dirname(builder.data_dir))  # <root>/<name>/<version>
    with exclusive_lock(os.path.join(root, f".{builder.name}.lock")):
        return _prepared_idx_builder(cls, data_dir, idx_dir)


def _prepared_idx_builder(cls, data_dir, idx_dir):
    tfds = _tfds()
    builder = cls(data_dir=data_dir, idx_dir=idx_dir)  # after the lock: what is on disk now
    if _is_prepared(builder):
        if not os.path.isdir(builder.idx_dir):
            return builder
        stored = builder.info.metadata.get("source_sha256")
        if stored == _fingerprint(builder.idx_dir, _stat_key(builder.idx_dir)):
            return builder
        warnings.warn(
            f"The prepared {builder.name!r} in {builder.data_dir!r} was made from other IDX "
            f"files than those in {builder.idx_dir!r}: rebuilding it. To keep both, pass a "
            f"different `data_dir` for each source.",
            stacklevel=4,
        )
        mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(download_mode=mode)
        )
        return builder
    for split in idx.SPLIT_FILES:
        idx.split_paths(builder.idx_dir, split)  # A clear FileNotFoundError before TFDS starts.
    builder.download_and_prepare()
    return builder


def _prepared_tfds_builder(name, dirs):
    tfds = _tfds()
    for d in dirs:
        if os.path.isdir(os.path.join(d, name)):
            builder = tfds.builder(name, data_dir=d)
            if _is_prepared(builder):
                return builder
    return None


def _unavailable_message(name, data_dir):
    host, port = DOWNLOAD_HOST
    fashion = (
        " For Fashion-MNIST without internet: `apt-get install dataset-fashion-mnist` (then "
        f"load('fashion_mnist') reads {DEBIAN_FASHION_MNIST_DIR}), or pass `idx_dir=` a folder "
        "of the four IDX files."
        if name == "fashion_mnist"
        else ""
    )
    return (
        f"Dataset {name!r} is not prepared in data_dir={data_dir!r} and {host}:{port} cannot be "
        f"reached, so TFDS cannot download it (its retries would take minutes). To get it: on a "
        f"machine with internet run `tfds build {name} --data_dir=DIR` and copy DIR/{name} into "
        f"{data_dir!r} (or pass that folder as `data_dir`, or set ${ENV_DATA_DIR}).{fashion} "
        f"The bundled offline data is load('fashion_mnist_subset')."
    )


def _builder(name, data_dir=None, idx_dir=None):
    """A prepared TFDS builder for `name`, preparing locally or downloading when possible."""
    _check_name(name)
    if idx_dir is not None and name != "fashion_mnist":
        raise ValueError(
            f"`idx_dir` is only used with name='fashion_mnist'. Received: idx_dir={idx_dir!r} "
            f"with name={name!r}"
        )
    target = resolve_data_dir(data_dir)
    builders = _builders()
    if name == "fashion_mnist_subset":
        return _idx_builder(builders.FashionMnistSubset, target, None)
    search = [target, *_read_only_dirs(data_dir)]
    if name == "fashion_mnist":
        if idx_dir is None:
            prepared = _prepared_tfds_builder("fashion_mnist", search)
            if prepared is not None:
                return prepared
            if os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
                idx_dir = DEBIAN_FASHION_MNIST_DIR
        if idx_dir is not None:
            return _idx_builder(builders.FashionMnistIdx, target, idx_dir)
        # A copy prepared earlier from some IDX folder that is gone now.
        previous = builders.FashionMnistIdx(data_dir=target)
        if _is_prepared(previous):
            return previous
    else:
        prepared = _prepared_tfds_builder(name, search)
        if prepared is not None:
            return prepared
    if not network_available():
        raise DatasetUnavailableError(_unavailable_message(name, target))
    builder = _tfds().builder(name, data_dir=target)
    builder.download_and_prepare()
    return builder


def _num_examples(builder, split):
    try:
        return builder.info.splits[split].num_examples
    except (KeyError, ValueError, AssertionError) as e:
        raise ValueError(
            f"`split` must be a TFDS split of {builder.name!r} (one of "
            f"{sorted(builder.info.splits)}, optionally sliced, e.g. 'train[:90%]'). "
            f"Received: split={split!r}"
        ) from e


def load(
    name="fashion_mnist_subset",
    split="train",
    batch_size=128,
    data_dir=None,
    shuffle=None,
    seed=0,
    normalize=True,
    as_supervised=True,
    take=None,
    idx_dir=None,
):
    """Loads a dataset as a batched, prefetched `tf.data.Dataset`.

    Splits up to 256 MB (as uint8) are decoded once, at the call, and held in memory; then
    examples are shuffled, batched, scaled to [0, 1] and prefetched. Preparing the bundled
    subset takes a few seconds, once per `data_dir`.

    Args:
        name: one of `DATASETS`. Defaults to `"fashion_mnist_subset"` (offline).
        split: a TFDS split string: `"train"`, `"test"`, `"train[:90%]"`, `"test[:1000]"`...
            Defaults to `"train"`.
        batch_size: examples per batch (the last batch may be smaller). Defaults to `128`.
        data_dir: TFDS data folder. Defaults to `None`: `$TF_LANMAX_DATA_DIR` or
            `~/.cache/tf_lanmax/tensorflow_datasets`.
        shuffle: whether to reshuffle each epoch (and read files in random order). Defaults to
            `None`: `True` for splits starting with `"train"`.
        seed: seed of the shuffling, so the epoch orders are reproducible (`None`: a fresh
            order per call). Defaults to `0`.
        normalize: `True` gives float32 images in [0, 1]; `False` keeps uint8. Defaults to
            `True`.
        as_supervised: `True` gives `(image, label)` tuples; `False` gives dicts with keys
            `"image"` and `"label"`. Defaults to `True`.
        take: keep only the first `take` examples of the split (before shuffling), or `None`
            for all. Defaults to `None`.
        idx_dir: folder of Fashion-MNIST IDX files, for `name="fashion_mnist"` only.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of batches: images of shape `(batch, 28, 28, 1)` or
        `(batch, 32, 32, 3)`, int64 labels of shape `(batch,)`.

    Raises:
        ValueError: for an unknown `name` or `split`, or an invalid argument.
        DatasetUnavailableError: if the data is not prepared and cannot be downloaded.

    Example:

    >>> ds = load("fashion_mnist_subset", "train", batch_size=64)
    >>> images, labels = next(iter(ds))
    >>> images.shape, images.dtype.name
    (TensorShape([64, 28, 28, 1]), 'float32')
    """
    _check_name(name)
    _validation.check_int("batch_size", batch_size, low=1)
    if seed is not None:
        _validation.check_int("seed", seed)
    if take is not None:
        _validation.check_int("take", take, low=1)
    if not isinstance(split, str):
        raise ValueError(f"`split` must be a TFDS split string. Received: split={split!r}")
    if shuffle is None:
        shuffle = split.startswith("train")
    tf, tfds = _tf(), _tfds()

    builder = _builder(name, data_dir=data_dir, idx_dir=idx_dir)
    n = _num_examples(builder, split)
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
    # TFDS refuses to shuffle the files of an ordered dataset (ours keep the IDX order); the
    # example-level shuffle below does the work then.
    shuffle_files = bool(shuffle) and not builder.info.disable_shuffling
    ds = builder.as_dataset(
        split=split, shuffle_files=shuffle_files, read_config=read_config, as_supervised=True
    )
    if take is not None:
        ds = ds.take(take)
        n = min(n, take)
    image_bytes = 1
    for d in builder.info.features["image"].shape:
        image_bytes *= d
    if 0 < n and n * image_bytes <= _IN_MEMORY_LIMIT_BYTES:
        # Decode once, now, into memory. Not `ds.cache()`: a lazily filled cache comes out
        # truncated when an earlier iterator stopped early (e.g. `next(iter(ds))`) while its
        # prefetch threads were still filling it (seen with TF 2.21: 65 of 200 examples).
        images, labels = ds.batch(n).get_single_element()
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(max(1, min(n, _SHUFFLE_BUFFER)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def finish(image, label):
        if normalize:
            image = tf.cast(image, tf.float32) / 255.0
        return (image, label) if as_supervised else {"image": image, "label": label}

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_numpy(
    name="fashion_mnist_subset",
    split="train",
    data_dir=None,
    normalize=True,
    take=None,
    idx_dir=None,
):
    """Loads a whole split into numpy arrays, in the stored order (no shuffling).

    Args:
        name: one of `DATASETS`. Defaults to `"fashion_mnist_subset"`.
        split: a TFDS split string. Defaults to `"train"`.
        data_dir: TFDS data folder (see `load`). Defaults to `None`.
        normalize: float32 in [0, 1] if `True`, else uint8. Defaults to `True`.
        take: keep only the first `take` examples, or `None`. Defaults to `None`.
        idx_dir: folder of IDX files, for `name="fashion_mnist"` only. Defaults to `None`.

    Returns:
        A tuple `(x, y)`: images `(n, height, width, channels)` and int64 labels `(n,)`.

    Example:

    >>> x, y = load_numpy("fashion_mnist_subset", "test")
    >>> x.shape, y.shape
    ((2000, 28, 28, 1), (2000,))
    """
    import numpy as np

    ds = load(
        name,
        split,
        batch_size=4096,
        data_dir=data_dir,
        shuffle=False,
        normalize=normalize,
        as_supervised=True,
        take=take,
        idx_dir=idx_dir,
    )
    xs, ys = [], []
    for x, y in ds.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def info(name="fashion_mnist_subset", idx_dir=None):
    """Facts about a dataset, without preparing or downloading it.

    Args:
        name: one of `DATASETS`. Defaults to `"fashion_mnist_subset"`.
        idx_dir: folder of IDX files, for `name="fashion_mnist"`: its split sizes are read
            from the file headers. Defaults to `None` (the official sizes).

    Returns:
        A dict with `name`, `num_classes`, `input_shape`, `class_names` and `num_examples`
        (`{split: count}`).

    Example:

    >>> info("fashion_mnist_subset")["num_examples"]
    {'train': 11500, 'test': 2000}
    """
    _check_name(name)
    if idx_dir is not None and name != "fashion_mnist":
        raise ValueError(
            f"`idx_dir` is only used with name='fashion_mnist'. Received: idx_dir={idx_dir!r} "
            f"with name={name!r}"
        )
    if name in ("fashion_mnist_subset", "fashion_mnist"):
        builders = _builders()
        class_names = builders.CLASS_NAMES
        input_shape = builders.IMAGE_SHAPE
        source = builders.BUNDLED_DIR if name == "fashion_mnist_subset" else idx_dir
        if source is not None:
            counts = {
                split: idx.read_idx_header(idx.split_paths(source, split)[1])[1][0]
                for split in idx.SPLIT_FILES
            }
        else:
            counts = dict(_SPECS[name]["num_examples"])
    else:
        spec = _SPECS[name]
        class_names, input_shape = spec["class_names"], spec["input_shape"]
        counts = dict(spec["num_examples"])
    return {
        "name": name,
        "num_classes": len(class_names),
        "input_shape": tuple(input_shape),
        "class_names": list(class_names),
        "num_examples": counts,
    }
