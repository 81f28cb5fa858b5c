"""Writes the bundled real Fashion-MNIST subset in `tf_lanmax/data/_bundled/`.

The subset is the first `--train` training images and the first `--test` test images of the
official Fashion-MNIST files (Zalando, MIT licence), in the same gzipped IDX format and under
the same four file names, so one reader serves the subset and the full data. The official files
are already in random order, so a prefix is close to class-balanced and trivially checkable
against the full set. Every file is written atomically (temp file, then `os.replace`); gzip
headers carry no timestamp, so re-running gives identical bytes with the same zlib.

Usage (Debian: `apt-get install dataset-fashion-mnist` provides the source files):

    python tools/make_fashion_mnist_subset.py \
        --source /usr/share/datasets/fashion-mnist --out tf_lanmax/data/_bundled
"""

import argparse
import importlib.util
import os
import sys
import tempfile

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
DEFAULT_OUT = os.path.join(_ROOT, "tf_lanmax", "data", "_bundled")
DEFAULT_TRAIN = 11_500
DEFAULT_TEST = 2_000
# A budget in decimal megabytes keeps the package small; 11,500 + 2,000 images leave ~2% slack
# so a different zlib build (e.g. zlib-ng) still fits.
DEFAULT_MAX_BYTES = 6_000_000

LICENSE_TEMPLATE = """\
Fashion-MNIST subset bundled with tf_lanmax
===========================================

Images taken: the first {train} images (and labels) of the Fashion-MNIST training set
(train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz, indices 0-{train_last}) and the first
{test} images (and labels) of the Fashion-MNIST test set (t10k-images-idx3-ubyte.gz /
t10k-labels-idx1-ubyte.gz, indices 0-{test_last}), unchanged, re-stored as gzipped IDX files by
tools/make_fashion_mnist_subset.py.

Source: https://github.com/zalandoresearch/fashion-mnist (also Debian's dataset-fashion-mnist).
Reference: Han Xiao, Kashif Rasul, Roland Vollgraf. Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms. arXiv:1708.07747, 2017.

The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def _load_idx_module():
    # Load idx.py by path: it is pure numpy, and importing the `tf_lanmax` package would pull in
    # Keras and TensorFlow for nothing.
    path = os.path.join(_ROOT, "tf_lanmax", "data", "idx.py")
    spec = importlib.util.spec_from_file_location("_tf_lanmax_idx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_text(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def make_subset(source, out, train=DEFAULT_TRAIN, test=DEFAULT_TEST, max_bytes=DEFAULT_MAX_BYTES):
    """Writes the first `train` / `test` examples of the IDX files in `source` to `out`.

    Args:
        source: folder with the four official Fashion-MNIST IDX files.
        out: destination folder (created if missing).
        train: number of training examples to keep. Defaults to `11500`.
        test: number of test examples to keep. Defaults to `2000`.
        max_bytes: fail if the written files total more than this. Defaults to `6000000`.

    Returns:
        A dict mapping each written file name to its size in bytes.

    Example:

    >>> make_subset("/usr/share/datasets/fashion-mnist", "/tmp/subset")  # doctest: +SKIP
    """
    idx = _load_idx_module()
    counts = {"train": train, "test": test}
    # Read and validate everything before writing anything.
    arrays = {}
    for split, n in counts.items():
        images, labels = idx.read_split(source, split)
        if not 0 < n <= len(images):
            raise ValueError(
                f"`{split}` must be in [1, {len(images)}] for {source!r}. Received: {split}={n}"
            )
        image_name, label_name = idx.SPLIT_FILES[split]
        arrays[image_name], arrays[label_name] = images[:n], labels[:n]
    os.makedirs(out, exist_ok=True)
    for name, array in arrays.items():
        idx.write_idx(os.path.join(out, name), array, compresslevel=9)
    license_text = LICENSE_TEMPLATE.format(
        train=train, train_last=train - 1, test=test, test_last=test - 1
    )
    _write_text(os.path.join(out, "LICENSE"), license_text)
    sizes = {n: os.path.getsize(os.path.join(out, n)) for n in [*arrays, "LICENSE"]}
    total = sum(sizes.values())
    if total > max_bytes:
        raise ValueError(
            f"`max_bytes` must be at least the subset size. Received: max_bytes={max_bytes} for "
            f"{total} bytes written to {out!r}; lower `train`/`test`"
        )
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="folder with the full IDX files")
    parser.add_argument("--out", default=DEFAULT_OUT, help="destination folder")
    parser.add_argument("--train", type=int, default=DEFAULT_TRAIN, help="training examples")
    parser.add_argument("--test", type=int, default=DEFAULT_TEST, help="test examples")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="size budget")
    args = parser.parse_args(argv)
    sizes = make_subset(args.source, args.out, args.train, args.test, args.max_bytes)
    for name, size in sizes.items():
        print(f"{size:>10,d}  {name}")
    print(f"{sum(sizes.values()):>10,d}  total in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
