"""Files that are never left half-written: a temporary file, then one rename.

Manifests, label maps, run summaries, predictions, plots and step logs are
written through :func:`atomic_write`: the content goes to a temporary file in
the destination's folder, is flushed to disk, and replaces the destination in
one ``os.replace`` call. A run killed mid-write, a full disk or an exception
while writing therefore leaves the previous file (or none), never a truncated
one, and no temporary file behind.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import contextlib
import json
import os
import uuid


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """Opens a temporary file that replaces ``path`` when the block ends without error.

    Arguments
    ---------
    path : str or os.PathLike
        Destination; its folder is created if needed.
    mode : str
        ``"w"`` (text, UTF-8) or ``"wb"`` (bytes).

    Yields
    ------
    file object
        The temporary file, open for writing.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> with atomic_write(folder / "a.txt") as fout:
    ...     _ = fout.write("done")
    >>> (folder / "a.txt").read_text()
    'done'
    >>> try:
    ...     with atomic_write(folder / "a.txt") as fout:
    ...         _ = fout.write("half")
    ...         raise OSError("disk full")
    ... except OSError:
    ...     pass
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('done', ['a.txt'])
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    encoding = "utf-8" if mode == "w" else None
    try:
        with open(tmp, mode.replace("w", "x"), encoding=encoding) as fout:
            yield fout
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(text, path):
    """Writes ``text`` (UTF-8) to ``path`` through :func:`atomic_write`.

    Arguments
    ---------
    text : str
        The content.
    path : str or os.PathLike
        Destination file; its folder is created if needed.

    Example
    -------
    >>> path = getfixture("tmp_path") / "sub" / "notes.txt"
    >>> write_text_atomic("hello\\n", path)
    >>> path.read_text()
    'hello\\n'
    """
    with atomic_write(path) as fout:
        fout.write(text)


def write_json_atomic(data, path, indent=2):
    """Writes ``data`` as JSON (UTF-8, final newline) through :func:`atomic_write`.

    Arguments
    ---------
    data : object
        JSON-serialisable data.
    path : str or os.PathLike
        Destination file; its folder is created if needed.
    indent : int
        JSON indentation.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> write_json_atomic({"a": 1}, folder / "sub" / "m.json")
    >>> sorted(os.listdir(folder / "sub")), json.loads((folder / "sub" / "m.json").read_text())
    (['m.json'], {'a': 1})
    """
    with atomic_write(path) as fout:
        json.dump(data, fout, indent=indent, ensure_ascii=False)
        fout.write("\n")
