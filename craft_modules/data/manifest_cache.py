"""A JSON manifest's compact arrays cached on disk, memory-mapped by every process.

Reading AudioSet-2M's 368 MiB JSON manifest and building its
:class:`~craft_modules.data.manifest.CompactManifest` takes about half a
minute, in each process of a multi-GPU run, and leaves each rank with its own
128 MiB of arrays. :func:`load_manifest` does that once: it writes the arrays
as ``.npy`` files in a folder beside the JSON and, from then on, every
process memory-maps them, so start-up takes well under a second and all ranks
and their loader workers share one copy in the page cache.

The cache folder is named by a hash of the JSON's bytes and of the
replacements, so an edited manifest never reads a stale cache: it simply has
another name (the older folders are removed once the new one is written). A
folder is written under a temporary name and renamed into place, so a process
never reads a half-written cache, and two processes writing it at once both
end up reading one complete copy. Where the manifest's folder is read-only
the manifest is loaded from its JSON, with one warning.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
from speechbrain.utils.logger import get_logger

from craft_modules.data.manifest import (
    CompactManifest,
    JSONArray,
    NumberArray,
    StringArray,
    StringListArray,
)

logger = get_logger(__name__)

#: Bumped when the layout of a cache folder changes (old folders are ignored).
FORMAT_VERSION = 1
_KINDS = {"int": int, "float": float, "bool": bool}


def load_manifest(json_path, replacements=None, cache=True):
    """The compact manifest of a JSON manifest, from its on-disk cache when there is one.

    Arguments
    ---------
    json_path : str
        A SpeechBrain JSON manifest.
    replacements : dict, optional
        ``{name: value}`` for ``{name}`` in string values, as
        ``DynamicItemDataset.from_json`` applies them.
    cache : bool
        False: always build from the JSON and write nothing.

    Returns
    -------
    CompactManifest
        Equal to ``CompactManifest.from_json(json_path, replacements)``; its
        arrays are read-only memory maps when it came from the cache.

    Example
    -------
    >>> import json, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "train.json")
    >>> with open(path, "w") as f:
    ...     json.dump({"a": {"wav": "/d/a.flac", "labels": ["/m/x"]}}, f)
    >>> first = load_manifest(path)   # builds and writes the cache
    >>> again = load_manifest(path)   # memory-maps it
    >>> again.entry(0), sorted(os.listdir(folder))[0].startswith("train.compact-")
    ({'wav': '/d/a.flac', 'labels': ['/m/x']}, True)
    """
    if not cache:
        return _from_json(json_path, replacements)
    replacements = dict(replacements or {})
    folder = cache_folder(json_path, replacements)
    if os.path.isdir(folder):
        try:
            return read_compact(folder)
        except (OSError, ValueError, KeyError) as error:
            logger.warning(
                "Manifest cache %s is unreadable (%s): rebuilding it from %s",
                folder,
                error,
                json_path,
            )
            shutil.rmtree(folder, ignore_errors=True)
    manifest = _from_json(json_path, replacements)
    try:
        write_compact(manifest, folder)
    except OSError as error:
        logger.warning(
            "Cannot cache the manifest %s beside it (%s): every process loads the JSON",
            json_path,
            error,
        )
        return manifest
    _remove_stale(folder)
    return read_compact(folder)


def _from_json(json_path, replacements):
    """``CompactManifest.from_json``, a malformed file named in the error."""
    try:
        return CompactManifest.from_json(json_path, replacements)
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path} is not valid JSON: {error}") from error


def cache_folder(json_path, replacements=None):
    """The cache folder of `json_path`: ``<stem>.compact-<hash>`` beside it.

    The hash covers the JSON's bytes, the replacements and the format
    version, so any change gives another folder.

    Arguments
    ---------
    json_path : str
        The JSON manifest.
    replacements : dict, optional
        Its replacements.

    Returns
    -------
    str
        The folder's path (it may not exist).
    """
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"v{FORMAT_VERSION}\n".encode())
    digest.update(json.dumps(replacements or {}, sort_keys=True).encode())
    with open(json_path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    stem = os.path.splitext(os.path.basename(json_path))[0]
    return os.path.join(
        os.path.dirname(os.path.abspath(json_path)),
        f"{stem}.compact-{digest.hexdigest()}",
    )


def write_compact(manifest, folder):
    """Writes `manifest`'s arrays to `folder` (``.npy`` files and ``layout.json``).

    Written under a temporary name beside `folder` and renamed into place; if
    another process renamed its copy first, that one is kept.

    Arguments
    ---------
    manifest : CompactManifest
        The manifest.
    folder : str
        The folder to create.
    """
    parent = os.path.dirname(os.path.abspath(folder))
    staging = tempfile.mkdtemp(prefix=".compact-", dir=parent)
    try:
        arrays = {}
        layout = {
            "format_version": FORMAT_VERSION,
            "ids": _describe(manifest.ids, "ids", arrays),
            "fields": list(manifest.fields),
            "columns": [
                _describe(manifest.columns[key], f"c{index}", arrays)
                for index, key in enumerate(manifest.fields)
            ],
        }
        for name, values in arrays.items():
            np.save(os.path.join(staging, f"{name}.npy"), values)
        with open(os.path.join(staging, "layout.json"), "w", encoding="utf-8") as f:
            json.dump(layout, f, ensure_ascii=False)
        try:
            os.rename(staging, folder)
        except OSError:
            if not os.path.isfile(os.path.join(folder, "layout.json")):
                raise
            # Another process wrote the same cache first: keep its copy.
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_compact(folder):
    """The manifest written by :func:`write_compact`, its arrays memory-mapped.

    Arguments
    ---------
    folder : str
        A cache folder.

    Returns
    -------
    CompactManifest
        The manifest (read-only arrays).

    Raises
    ------
    ValueError
        If the folder has another format version.
    """
    with open(os.path.join(folder, "layout.json"), encoding="utf-8") as f:
        layout = json.load(f)
    if layout.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"format version {layout.get('format_version')}, expected {FORMAT_VERSION}"
        )

    def array(name):
        return np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r")

    manifest = CompactManifest.__new__(CompactManifest)
    manifest.fields = tuple(layout["fields"])
    manifest.ids = _rebuild(layout["ids"], array)
    manifest.columns = {
        key: _rebuild(spec, array)
        for key, spec in zip(manifest.fields, layout["columns"])
    }
    manifest._sorted = None
    if any(len(column) != len(manifest.ids) for column in manifest.columns.values()):
        raise ValueError("columns of different lengths")
    return manifest


def _describe(column, name, arrays):
    """A JSON description of `column`; its arrays are added to `arrays` by name."""

    def put(part, values):
        arrays[f"{name}.{part}"] = np.ascontiguousarray(values)
        return f"{name}.{part}"

    if isinstance(column, StringArray):
        return {
            "type": "str",
            "prefix": column.prefix,
            "buffer": put("buffer", column.buffer),
            "offsets": put("offsets", column.offsets),
        }
    if isinstance(column, StringListArray):
        return {
            "type": "str_list",
            "vocabulary": _describe(column.vocabulary, f"{name}.vocabulary", arrays),
            "indices": put("indices", column.indices),
            "offsets": put("offsets", column.offsets),
        }
    if isinstance(column, NumberArray):
        return {
            "type": "number",
            "kind": column.kind.__name__,
            "values": put("values", column.values),
        }
    if isinstance(column, JSONArray):
        return {
            "type": "json",
            "texts": _describe(column.texts, f"{name}.texts", arrays),
        }
    raise TypeError(f"Cannot cache a manifest column of type {type(column).__name__}")


def _rebuild(spec, array):
    """The column described by `spec`, its arrays read with `array(name)`."""
    kind = spec["type"]
    if kind == "str":
        column = StringArray.__new__(StringArray)
        column.prefix = spec["prefix"]
        column.buffer, column.offsets = array(spec["buffer"]), array(spec["offsets"])
    elif kind == "str_list":
        column = StringListArray.__new__(StringListArray)
        column.vocabulary = _rebuild(spec["vocabulary"], array)
        column.indices, column.offsets = array(spec["indices"]), array(spec["offsets"])
    elif kind == "number":
        column = NumberArray.__new__(NumberArray)
        column.kind = _KINDS[spec["kind"]]
        column.values = array(spec["values"])
    elif kind == "json":
        column = JSONArray.__new__(JSONArray)
        column.texts = _rebuild(spec["texts"], array)
    else:
        raise ValueError(f"unknown column type {kind!r}")
    return column


def _remove_stale(folder):
    """Removes the other cache folders of the same manifest (older versions of it)."""
    parent, name = os.path.split(folder)
    stem = name.rsplit(".compact-", 1)[0]
    for other in os.listdir(parent):
        if other != name and other.startswith(f"{stem}.compact-"):
            shutil.rmtree(os.path.join(parent, other), ignore_errors=True)
