"""TFDS builders that prepare Fashion-MNIST from local IDX files, never from the network.

Two datasets, one reader:

- `fashion_mnist_subset`: the real Fashion-MNIST subset bundled in `tf_lanmax/data/_bundled/`
  (see its `LICENSE` for which images), so examples and tests run offline.
- `fashion_mnist_idx`: the full data from any folder of the four official IDX files, by default
  Debian's `/usr/share/datasets/fashion-mnist` (`apt-get install dataset-fashion-mnist`).

Both have the features, class names and supervised keys of TFDS' own `fashion_mnist`, so
code written for one runs on the others. Unlike TFDS' default, examples keep the order of the
IDX files (`disable_shuffling=True`): example i of a split is image i of its file.

Preparing writes into a temporary folder that TFDS renames only on success (and removes on
error), so a failed prepare leaves no half-made dataset.

The SHA-256 of the source files is stored in the prepared dataset's metadata, so
`tf_lanmax.data.load` can notice that the cached copy came from other files and rebuild it.

Reference: Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
Machine Learning Algorithms", arXiv:1708.07747.
"""

import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from tf_lanmax.data import idx

BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bundled")
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SHAPE = (28, 28, 1)

_CITATION = """\
@article{xiao2017fashion,
  author  = {Han Xiao and Kashif Rasul and Roland Vollgraf},
  title   = {Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  journal = {CoRR},
  volume  = {abs/1708.07747},
  year    = {2017},
  url     = {http://arxiv.org/abs/1708.07747},
}
"""


def source_fingerprint(idx_dir):
    """SHA-256 of each IDX file of a folder, keyed by file name.

    Args:
        idx_dir: folder holding the four IDX files.

    Returns:
        A dict `{file name: hex digest}`.

    Raises:
        FileNotFoundError: if a file is missing.

    Example:

    >>> sorted(source_fingerprint(BUNDLED_DIR))[0]  # doctest: +SKIP
    't10k-images-idx3-ubyte.gz'
    """
    digests = {}
    for split in idx.SPLIT_FILES:
        for path in idx.split_paths(idx_dir, split):
            sha = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    sha.update(chunk)
            digests[os.path.basename(path)] = sha.hexdigest()
    return digests


class _IdxFashionMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared builder: Fashion-MNIST from a folder of IDX files (not registered itself)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    DEFAULT_IDX_DIR = None
    DESCRIPTION = ""

    def __init__(self, *, idx_dir=None, **kwargs):
        # Set before the base constructor, which may already call `_info()`.
        self._idx_dir = os.path.abspath(os.fspath(idx_dir or self.DEFAULT_IDX_DIR))
        super().__init__(**kwargs)

    @property
    def idx_dir(self):
        """The folder the IDX files are read from when preparing."""
        return self._idx_dir

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=IMAGE_SHAPE),
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                }
            ),
            supervised_keys=("image", "label"),
            # Keep the official file order (already random), so the first k examples of a
            # split are the first k images of the IDX files.
            disable_shuffling=True,
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            citation=_CITATION,
            license="MIT (Copyright 2017 Zalando SE)",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files only: nothing is downloaded.
        if not os.path.isdir(self._idx_dir):
            raise FileNotFoundError(
                f"`idx_dir` must be a folder holding the Fashion-MNIST IDX files "
                f"{sorted(n for pair in idx.SPLIT_FILES.values() for n in pair)} (Debian: "
                f"`apt-get install dataset-fashion-mnist` puts them in {DEBIAN_DIR}). "
                f"Received: idx_dir={self._idx_dir!r}"
            )
        # Read and check every file before yielding anything.
        splits = {split: idx.read_split(self._idx_dir, split) for split in idx.SPLIT_FILES}
        for split, (images, labels) in splits.items():
            if images.shape[1:] != IMAGE_SHAPE[:2]:
                raise ValueError(
                    f"`idx_dir` must hold {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} images. Received: "
                    f"idx_dir={self._idx_dir!r} with {split} images of shape {images.shape[1:]}"
                )
            if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
                raise ValueError(
                    f"`idx_dir` must hold labels in [0, {len(CLASS_NAMES) - 1}]. Received: "
                    f"idx_dir={self._idx_dir!r} with {split} label {int(labels.max())}"
                )
        self.info.metadata["idx_dir"] = self._idx_dir
        self.info.metadata["source_sha256"] = source_fingerprint(self._idx_dir)
        return {
            split: self._generate_examples(images, labels)
            for split, (images, labels) in splits.items()
        }

    def _generate_examples(self, images, labels):
        # The index is a stable key: the official files have a fixed order.
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image[..., np.newaxis], "label": int(label)}


class FashionMnistSubset(_IdxFashionMnist):
    """Real Fashion-MNIST subset bundled with tf_lanmax (offline; see `_bundled/LICENSE`).

    Args:
        idx_dir: folder of IDX files to prepare from. Defaults to the bundled subset.
        data_dir: TFDS data folder for the prepared copy. Defaults to TFDS' default.
        **kwargs: other `tfds.core.DatasetBuilder` arguments (`config`, `version`).

    Example:

    >>> builder = FashionMnistSubset(data_dir="/tmp/tfds")  # doctest: +SKIP
    >>> builder.download_and_prepare()  # local files only: a few seconds  # doctest: +SKIP
    >>> ds = builder.as_dataset(split="test", as_supervised=True)  # doctest: +SKIP
    """

    DEFAULT_IDX_DIR = BUNDLED_DIR
    DESCRIPTION = (
        "A real subset of Fashion-MNIST bundled with tf_lanmax: the first training and test "
        "images of the official files (counts in the split info), 28x28 grayscale, 10 classes."
    )


class FashionMnistIdx(_IdxFashionMnist):
    """Full Fashion-MNIST prepared from a local folder of the four official IDX files.

    Args:
        idx_dir: folder of IDX files. Defaults to `/usr/share/datasets/fashion-mnist`.
        data_dir: TFDS data folder for the prepared copy. Defaults to TFDS' default.
        **kwargs: other `tfds.core.DatasetBuilder` arguments (`config`, `version`).

    Example:

    >>> builder = FashionMnistIdx(idx_dir="/usr/share/datasets/fashion-mnist")  # doctest: +SKIP
    >>> builder.download_and_prepare()  # doctest: +SKIP
    >>> builder.info.splits["train"].num_examples  # doctest: +SKIP
    60000
    """

    DEFAULT_IDX_DIR = DEBIAN_DIR
    DESCRIPTION = (
        "Fashion-MNIST (60,000 training and 10,000 test 28x28 grayscale images of Zalando "
        "articles, 10 classes) prepared from local IDX files."
    )
