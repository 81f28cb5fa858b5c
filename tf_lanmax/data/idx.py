"""Pure numpy reader and writer for IDX files (the MNIST / Fashion-MNIST format).

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the array in C order, big-endian. The files are often gzipped;
the reader recognises gzip by its own magic bytes, not by the file name.

Reference: http://yann.lecun.com/exdb/mnist/ (section "The IDX file format").
"""

import gzip
import os

import numpy as np

from tf_lanmax._io import atomic_path

# IDX type code -> big-endian numpy dtype.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"

#: File names of each split, as published by Zalando / LeCun (and by Debian's package).
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _open(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _parse_header(head, path):
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in _DTYPES)
        raise ValueError(
            f"`path` must be an IDX file whose magic number is 00 00 <type> <ndim> with type in "
            f"{{{allowed}}}. Received: path={os.fspath(path)!r} with magic number "
            f"{head[:4].hex(' ') or '(empty file)'}"
        )
    return _DTYPES[head[2]], head[3]


def read_idx_header(path):
    """Reads only the header of an IDX file (cheap, even for a large gzipped file).

    Args:
        path: path to an IDX file, gzipped or not.

    Returns:
        A tuple `(dtype, shape)`: the numpy dtype (native byte order) and the array shape.

    Raises:
        ValueError: if the magic number is not a valid IDX one or the header is cut short.

    Example:

    >>> read_idx_header("t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
    (dtype('uint8'), (10000,))
    """
    with _open(path) as f:
        head = f.read(4)
        dtype, ndim = _parse_header(head, path)
        dims = f.read(4 * ndim)
    if len(dims) != 4 * ndim:
        raise ValueError(
            f"`path` must hold {ndim} dimension sizes after its magic number. Received: "
            f"path={os.fspath(path)!r} with a {len(dims)}-byte header after the magic number"
        )
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return dtype.newbyteorder("="), shape


def read_idx(path):
    """Reads a whole IDX file into a numpy array.

    Args:
        path: path to an IDX file, gzipped or not.

    Returns:
        A numpy array with the file's shape and dtype, in native byte order.

    Raises:
        ValueError: if the magic number is invalid or the data size does not match the header.

    Example:

    >>> images = read_idx("t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'))
    """
    with _open(path) as f:
        raw = f.read()
    dtype, ndim = _parse_header(raw[:4], path)
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(
            f"`path` must hold {ndim} dimension sizes after its magic number. Received: "
            f"path={os.fspath(path)!r} with only {len(raw)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw[4:offset], dtype=">u4"))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    received = len(raw) - offset
    if received != expected:
        raise ValueError(
            f"`path` must hold {expected} data bytes for shape {shape} and dtype "
            f"{dtype.newbyteorder('=')}. Received: path={os.fspath(path)!r} with {received} bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_images(path):
    """Reads an IDX file of uint8 images.

    Args:
        path: path to an IDX3 image file (e.g. `train-images-idx3-ubyte.gz`).

    Returns:
        A uint8 array of shape `(num_images, rows, cols)`.

    Raises:
        ValueError: if the file is not a 3-D uint8 IDX array.

    Example:

    >>> read_images("t10k-images-idx3-ubyte.gz").shape  # doctest: +SKIP
    (10000, 28, 28)
    """
    array = read_idx(path)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(
            f"`path` must be a 3-D uint8 IDX image file. Received: path={os.fspath(path)!r} "
            f"holding dtype {array.dtype} and shape {array.shape}"
        )
    return array


def read_labels(path):
    """Reads an IDX file of uint8 labels.

    Args:
        path: path to an IDX1 label file (e.g. `train-labels-idx1-ubyte.gz`).

    Returns:
        A uint8 array of shape `(num_labels,)`.

    Raises:
        ValueError: if the file is not a 1-D uint8 IDX array.

    Example:

    >>> read_labels("t10k-labels-idx1-ubyte.gz")[:3]  # doctest: +SKIP
    array([9, 2, 1], dtype=uint8)
    """
    array = read_idx(path)
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(
            f"`path` must be a 1-D uint8 IDX label file. Received: path={os.fspath(path)!r} "
            f"holding dtype {array.dtype} and shape {array.shape}"
        )
    return array


def split_paths(idx_dir, split):
    """Finds the image and label files of one split in a folder.

    Each file may be stored gzipped (`name.gz`, preferred) or plain (`name`).

    Args:
        idx_dir: folder holding the IDX files.
        split: `"train"` or `"test"`.

    Returns:
        A tuple `(images_path, labels_path)`.

    Raises:
        ValueError: if `split` is unknown.
        FileNotFoundError: if a file is missing, naming the folder and the file names tried.

    Example:

    >>> split_paths("/usr/share/datasets/fashion-mnist", "test")  # doctest: +SKIP
    ('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz', ...)
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"`split` must be one of {sorted(SPLIT_FILES)}. Received: split={split!r}")
    paths = []
    for name in SPLIT_FILES[split]:
        candidates = [os.path.join(os.fspath(idx_dir), n) for n in (name, name[: -len(".gz")])]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise FileNotFoundError(
                f"No IDX file for split {split!r} in `idx_dir`: tried {candidates}. "
                f"Received: idx_dir={os.fspath(idx_dir)!r}"
            )
        paths.append(found)
    return tuple(paths)


def read_split(idx_dir, split):
    """Reads one split of an MNIST-style IDX folder.

    Args:
        idx_dir: folder holding the four IDX files (see `SPLIT_FILES`).
        split: `"train"` or `"test"`.

    Returns:
        A tuple `(images, labels)`: uint8 arrays of shapes `(n, rows, cols)` and `(n,)`.

    Raises:
        ValueError: if the image and label counts differ or a file is malformed.
        FileNotFoundError: if a file is missing.

    Example:

    >>> x, y = read_split("/usr/share/datasets/fashion-mnist", "test")  # doctest: +SKIP
    >>> x.shape, y.shape  # doctest: +SKIP
    ((10000, 28, 28), (10000,))
    """
    images_path, labels_path = split_paths(idx_dir, split)
    images, labels = read_images(images_path), read_labels(labels_path)
    if len(images) != len(labels):
        raise ValueError(
            f"`idx_dir` must hold as many labels as images for split {split!r}. Received: "
            f"idx_dir={os.fspath(idx_dir)!r} with {len(images)} images and {len(labels)} labels"
        )
    return images, labels


def write_idx(path, array, compresslevel=9):
    """Writes a numpy array as an IDX file, atomically (temp file in the folder, then rename).

    A path ending in `.gz` is gzipped, with a zero timestamp and no embedded file name, so the
    bytes depend only on the array (reproducible files).

    Args:
        path: destination path.
        array: array whose dtype is one of uint8, int8, int16, int32, float32, float64.
        compresslevel: gzip level (1-9), used when `path` ends in `.gz`. Defaults to `9`.

    Returns:
        `path`.

    Raises:
        ValueError: if the dtype has no IDX code or the array has more than 255 dimensions.

    Example:

    >>> write_idx("/tmp/labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8))  # doctest: +SKIP
    '/tmp/labels-idx1-ubyte.gz'
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(
            f"`array` must have a dtype in {sorted(str(d) for d in _CODES)}. "
            f"Received: array with dtype={array.dtype}"
        )
    if array.ndim > 255:
        raise ValueError(f"`array` must have at most 255 dimensions. Received: ndim={array.ndim}")
    code = _CODES[native]
    payload = (
        bytes([0, 0, code, array.ndim])
        + np.asarray(array.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    )
    path = os.fspath(path)
    with atomic_path(path, suffix=".idx") as tmp, open(tmp, "wb") as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
            ) as gz:
                gz.write(payload)
        else:
            raw.write(payload)
    return path
