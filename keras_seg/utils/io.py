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


@contextlib.contextmanager
def atomic_directory(path, check=None):
    """Yield a new empty directory beside ``path``; on success swap it in for ``path`` (or create ``path``).

    ``check(path)`` runs just before the swap and may raise to refuse replacing what is there now
    (a folder that is not the caller's kind of artifact). The old directory is moved aside under a
    fresh temporary name, the new one renamed into place, and the old one deleted only then; if the
    rename fails the old one is moved back. If the body or ``check`` raises, ``path`` is untouched
    and the temporary directory is removed. Nothing but ``path`` and the temporary names is touched.
    """
    import shutil

    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.dirname(path), os.path.basename(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    old = None
    try:
        yield tmp
        if check is not None:
            check(path)
        if os.path.isdir(path):
            old = tempfile.mkdtemp(prefix=f".{base}.", suffix=".old", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except OSError:
            if old:
                os.replace(old, path)
                old = None
            raise
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.exists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)


def first_few(names, shown=3):
    """``"a, b, c and 4 more"``: the first ``shown`` of ``names`` for a message, and how many were left out."""
    names = list(names)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
