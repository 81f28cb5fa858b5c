"""Where each dataset's prepared TFDS builder comes from, with offline paths that never hang.

Per name:

- `fashion_mnist_subset`: the real Fashion-MNIST subset bundled with the package (offline).
- `fashion_mnist`: TFDS' prepared `fashion_mnist` if `data_dir` holds it; else the full data from
  local IDX files (`idx_dir`, or Debian's `/usr/share/datasets/fashion-mnist` from
  `apt-get install dataset-fashion-mnist`) through the `fashion_mnist_idx` builder; else a
  previously prepared `fashion_mnist_idx`; else a TFDS download when the network is up.
- `mnist`, `cifar10`: TFDS' standard builders.

Before any TFDS download a 0.5 s connection probe to TFDS' download host decides whether the
network is up: offline, TFDS would retry for minutes, so `builder` raises
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

from tf_lanmax._io import exclusive_lock
from tf_lanmax._validation import check_name as check_registry_name
from tf_lanmax.data import idx
from tf_lanmax.errors import DatasetUnavailableError

DATASETS = ("fashion_mnist_subset", "fashion_mnist", "mnist", "cifar10")
ENV_DATA_DIR = "TF_LANMAX_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join("~", ".cache", "tf_lanmax", "tensorflow_datasets")
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def tfds_module():
    import tensorflow_datasets as tfds

    return tfds


def builder_modules():
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


def check_name(name):
    check_registry_name("name", name, list(DATASETS))


@functools.lru_cache(maxsize=16)
def _fingerprint(idx_dir, stat_key):
    del stat_key  # Only part of the cache key: a changed file changes its size or mtime.
    return builder_modules().source_fingerprint(idx_dir)


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
    tfds = tfds_module()
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
    tfds = tfds_module()
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


def builder(name, data_dir=None, idx_dir=None):
    """A prepared TFDS builder for `name`, preparing locally or downloading when possible.

    Args:
        name: one of `DATASETS`.
        data_dir: TFDS data folder. Defaults to `None` (`resolve_data_dir`).
        idx_dir: folder of Fashion-MNIST IDX files (`name="fashion_mnist"` only). Defaults to
            `None`.

    Returns:
        A prepared `tfds.core.DatasetBuilder`.

    Raises:
        DatasetUnavailableError: if the data is not prepared and cannot be downloaded.
    """
    check_name(name)
    if idx_dir is not None and name != "fashion_mnist":
        raise ValueError(
            f"`idx_dir` is only used with name='fashion_mnist'. Received: idx_dir={idx_dir!r} "
            f"with name={name!r}"
        )
    target = resolve_data_dir(data_dir)
    builders = builder_modules()
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
    downloaded = tfds_module().builder(name, data_dir=target)
    downloaded.download_and_prepare()
    return downloaded
