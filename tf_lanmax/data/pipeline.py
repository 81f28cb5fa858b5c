"""Batched `tf.data` input pipelines over TFDS datasets (`load`), numpy copies and metadata.

`load` returns `(image, label)` batches ready for `model.fit`: float32 images in [0, 1] of
shape (28, 28, 1) (Fashion-MNIST, MNIST) or (32, 32, 3) (CIFAR-10) and integer labels. Where
each dataset comes from, offline or not, is `sources.py`.
"""

from tf_lanmax import _validation
from tf_lanmax.data import idx
from tf_lanmax.data.sources import builder as dataset_builder
from tf_lanmax.data.sources import builder_modules, check_name
from tf_lanmax.data.sources import tfds_module as _tfds

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


def _tf():
    import tensorflow as tf

    return tf


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
    check_name(name)
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

    builder = dataset_builder(name, data_dir=data_dir, idx_dir=idx_dir)
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
    check_name(name)
    if idx_dir is not None and name != "fashion_mnist":
        raise ValueError(
            f"`idx_dir` is only used with name='fashion_mnist'. Received: idx_dir={idx_dir!r} "
            f"with name={name!r}"
        )
    if name in ("fashion_mnist_subset", "fashion_mnist"):
        builders = builder_modules()
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
