"""Files written so that a crash never leaves a half-written one behind."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (atomic on POSIX and Windows).

    The temporary name keeps ``path``'s extension (Keras insists on ``.keras`` /
    ``.weights.h5``; matplotlib picks the format from it). If the body raises,
    the temporary file is removed and ``path`` keeps its previous content.

        with atomic_path("best.keras") as tmp:
            model.save(tmp)
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    suffix = ".weights.h5" if base.endswith(".weights.h5") else os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    os.remove(tmp)  # writers such as Keras refuse or mishandle an existing file
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync(path):
    if os.path.isfile(path):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
