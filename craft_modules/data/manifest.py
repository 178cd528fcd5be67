"""Manifests held in a few numpy arrays, for training sets of millions of clips.

A SpeechBrain manifest is a dict of dicts: for AudioSet-2M, some 2 million
entry dicts, id strings, path strings, label lists and floats. Every
DataLoader worker forked from the main process shares those pages only until
it touches them, and Python touches every object it reads (reference counts)
and every container its garbage collector walks, so in a long run each worker
ends up with its own copy, on every rank.

:class:`CompactManifest` stores the same data column by column: strings as
one UTF-8 byte buffer plus int64 offsets (:class:`StringArray`), lists of
strings (labels) as int32 indices into a vocabulary plus offsets
(:class:`StringListArray`, CSR layout), numbers as numpy arrays. Entries are
rebuilt on access, identical to the dict's. :class:`CompactDynamicItemDataset`
is SpeechBrain's ``DynamicItemDataset`` over such a manifest: the dynamic
items of the recipes work unchanged, and a worker only reads shared,
read-only array pages.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import operator
import os
from collections.abc import ItemsView, Mapping, Sequence, ValuesView

import numpy as np
from speechbrain.dataio.dataio import load_data_json
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import DataPipeline


def _position(index, length):
    """A non-negative position from an int-like `index`; IndexError if outside."""
    position = operator.index(index)
    if position < 0:
        position += length
    if not 0 <= position < length:
        raise IndexError(f"index {index} out of range for {length} items")
    return position


class _Ragged(Sequence):
    """Rows ``offsets[i]:offsets[i + 1]`` of a flat array: the shared CSR indexing."""

    def __len__(self):
        """Number of rows."""
        return len(self.offsets) - 1

    def __getitem__(self, index):
        """Row `index` (a list of rows for a slice)."""
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = _position(index, len(self))
        return self._row(self.offsets[position], self.offsets[position + 1])


class StringArray(_Ragged):
    """Read-only sequence of strings stored as one UTF-8 buffer and offsets.

    A prefix shared by every string (e.g. the audio folder of all paths) is
    stored once.

    Arguments
    ---------
    strings : list of str
        The strings.

    Example
    -------
    >>> paths = StringArray(["/data/a.flac", "/data/b.flac", "/data/é.flac"])
    >>> paths[2], paths[-1] == paths[2], len(paths), paths.prefix
    ('/data/é.flac', True, 3, '/data/')
    >>> paths[:2]
    ['/data/a.flac', '/data/b.flac']
    """

    def __init__(self, strings):
        strings = list(strings)
        prefix = os.path.commonprefix([min(strings), max(strings)]) if strings else ""
        start = len(prefix)
        encoded = [text[start:].encode("utf-8") for text in strings]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        self.prefix = prefix
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def _row(self, start, stop):
        return self.prefix + self.buffer[start:stop].tobytes().decode("utf-8")

    def __iter__(self):
        """The strings in order."""
        for position in range(len(self)):
            yield self[position]

    @property
    def nbytes(self):
        """Bytes held by the arrays."""
        return self.buffer.nbytes + self.offsets.nbytes


class StringListArray(_Ragged):
    """Read-only sequence of lists of strings, in CSR layout.

    Each distinct string is stored once in a sorted vocabulary
    (a :class:`StringArray`); list ``i`` is the int32 vocabulary indices
    ``indices[offsets[i]:offsets[i + 1]]``, in the original order.

    Arguments
    ---------
    lists : list of list of str
        The lists (may be empty; repeats are kept).

    Example
    -------
    >>> labels = StringListArray([["/m/b", "/m/a"], [], ["/m/b"]])
    >>> labels[0], labels[1], list(labels.vocabulary)
    (['/m/b', '/m/a'], [], ['/m/a', '/m/b'])
    >>> labels.indices.tolist(), labels.offsets.tolist()
    ([1, 0, 1], [0, 2, 2, 3])
    """

    def __init__(self, lists):
        lists = list(lists)
        codes = {}
        flat = [codes.setdefault(text, len(codes)) for row in lists for text in row]
        vocabulary = sorted(codes)
        remap = np.empty(len(codes), dtype=np.int32)
        remap[[codes[text] for text in vocabulary]] = np.arange(len(vocabulary))
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        self.vocabulary = StringArray(vocabulary)
        self.indices = remap[np.asarray(flat, dtype=np.int64)]
        self.offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])

    def _row(self, start, stop):
        return [self.vocabulary[code] for code in self.indices[start:stop].tolist()]

    @property
    def lengths(self):
        """Number of strings in each list (int64 array)."""
        return np.diff(self.offsets)

    @property
    def nbytes(self):
        """Bytes held by the arrays."""
        return self.vocabulary.nbytes + self.indices.nbytes + self.offsets.nbytes


class NumberArray(Sequence):
    """Read-only sequence of Python ints, floats or bools backed by a numpy array.

    Floats are stored as float32 when that loses nothing, else as float64,
    so every value reads back exactly.

    Arguments
    ---------
    values : list
        Values all of type int, all float, or all bool.
    kind : type
        ``int``, ``float`` or ``bool``.

    Example
    -------
    >>> NumberArray([10.0, 0.5], float).values.dtype
    dtype('float32')
    >>> durations = NumberArray([10.0, 9.9876], float)
    >>> durations[1], durations.values.dtype
    (9.9876, dtype('float64'))
    """

    _DTYPES = {int: np.int64, bool: np.bool_}

    def __init__(self, values, kind):
        if kind is float:
            exact = np.asarray(values, dtype=np.float64)
            single = exact.astype(np.float32)
            self.values = single if np.array_equal(single, exact) else exact
        else:
            self.values = np.asarray(values, dtype=self._DTYPES[kind])
        self.kind = kind

    def __len__(self):
        """Number of values."""
        return len(self.values)

    def __getitem__(self, index):
        """The value at `index`, as a Python number."""
        return self.kind(self.values[_position(index, len(self))].item())

    @property
    def nbytes(self):
        """Bytes held by the array."""
        return self.values.nbytes


class JSONArray(Sequence):
    """Read-only sequence of JSON values kept as JSON text (the fallback column).

    Used for fields that are neither all strings, all numbers nor all lists
    of strings (e.g. a mix of ints and floats, or nested dicts).

    Arguments
    ---------
    values : list
        JSON-serialisable values that read back equal (no tuples, NaN, ...).
    key : str
        Field name, for error messages.
    ids : list of str
        Clip ids, for error messages.

    Example
    -------
    >>> column = JSONArray([1, 2.5, {"a": [1]}], "extra", ["x", "y", "z"])
    >>> column[0], column[1], column[2]
    (1, 2.5, {'a': [1]})
    """

    def __init__(self, values, key, ids):
        texts = []
        for clip_id, value in zip(ids, values):
            text = json.dumps(value, ensure_ascii=False)
            if json.loads(text) != value:
                raise ValueError(
                    f"Manifest entry {clip_id!r}: value of {key!r} ({value!r}) "
                    "cannot be stored compactly (it does not survive JSON)"
                )
            texts.append(text)
        self.texts = StringArray(texts)

    def __len__(self):
        """Number of values."""
        return len(self.texts)

    def __getitem__(self, index):
        """The decoded value at `index`."""
        return json.loads(self.texts[index])

    @property
    def nbytes(self):
        """Bytes held by the arrays."""
        return self.texts.nbytes


def compact_column(values, key, ids):
    """The most compact column type that gives back exactly `values`.

    Arguments
    ---------
    values : list
        One field's value for every clip.
    key : str
        Field name, for error messages.
    ids : list of str
        Clip ids, for error messages.

    Returns
    -------
    StringArray, StringListArray, NumberArray or JSONArray
        A sequence with ``column[i] == values[i]``.

    Example
    -------
    >>> ids = ["a", "b"]
    >>> [type(compact_column(v, "k", ids)).__name__ for v in
    ...  (["x", "y"], [["x"], []], [1, 2], [1, 2.0])]
    ['StringArray', 'StringListArray', 'NumberArray', 'JSONArray']
    """
    kinds = set(map(type, values))
    if kinds == {str}:
        return StringArray(values)
    if kinds in ({int}, {float}, {bool}):
        try:
            return NumberArray(values, kinds.pop())
        except OverflowError:  # ints beyond int64
            return JSONArray(values, key, ids)
    if kinds == {list} and all(type(x) is str for row in values for x in row):
        return StringListArray(values)
    return JSONArray(values, key, ids)


class _PositionalItems(ItemsView):
    """(id, entry) pairs of a compact manifest, read by position (no id lookup)."""

    def __iter__(self):
        manifest = self._mapping
        for position in range(len(manifest)):
            yield manifest.clip_id(position), manifest.entry(position)


class _PositionalValues(ValuesView):
    """Entries of a compact manifest, read by position (no id lookup)."""

    def __iter__(self):
        manifest = self._mapping
        for position in range(len(manifest)):
            yield manifest.entry(position)


class CompactManifest(Mapping):
    """A SpeechBrain manifest (id -> entry dict) stored as numpy arrays.

    Every entry must have the same fields. Reading an entry (by position with
    :meth:`entry`, or by id as a read-only mapping) rebuilds a new dict equal
    to the original one. Lookup by id sorts the ids once, on first use;
    datasets read by position and never need it.

    Arguments
    ---------
    data : dict
        ``{clip_id: {field: value}}``, e.g. a loaded JSON manifest.

    Raises
    ------
    ValueError
        If the manifest is empty, or an entry's fields differ from the first
        entry's (the message names the clip and the fields).

    Example
    -------
    >>> manifest = CompactManifest({
    ...     "a": {"wav": "/d/a.flac", "duration": 10.0, "labels": ["/m/x"]},
    ...     "b": {"wav": "/d/b.flac", "duration": 9.5, "labels": ["/m/y", "/m/x"]},
    ... })
    >>> len(manifest), manifest.fields
    (2, ('wav', 'duration', 'labels'))
    >>> manifest.entry(1)
    {'wav': '/d/b.flac', 'duration': 9.5, 'labels': ['/m/y', '/m/x']}
    >>> manifest["a"]["labels"], list(manifest)
    (['/m/x'], ['a', 'b'])
    """

    def __init__(self, data):
        if not data:
            raise ValueError("Cannot build a compact manifest from an empty manifest")
        ids = list(data)
        entries = list(data.values())
        self.fields = tuple(entries[0])
        expected = entries[0].keys()
        for clip_id, entry in zip(ids, entries):
            if entry.keys() != expected:
                raise ValueError(
                    f"Manifest entry {clip_id!r} has fields {sorted(entry)}, but "
                    f"the first entry has {sorted(expected)}; every entry needs "
                    "the same fields"
                )
        self.ids = StringArray(ids)
        self.columns = {
            key: compact_column([entry[key] for entry in entries], key, ids)
            for key in self.fields
        }
        self._sorted = None

    @classmethod
    def from_json(cls, path, replacements=None):
        """Loads a JSON manifest as :meth:`DynamicItemDataset.from_json` does.

        String values are formatted with `replacements` (so doubled braces
        become single ones, as SpeechBrain's loader gives them).

        Arguments
        ---------
        path : str
            The JSON manifest.
        replacements : dict, optional
            ``{name: value}`` for ``{name}`` in string values.

        Returns
        -------
        CompactManifest
            The manifest; the loaded dict is freed.
        """
        return cls(load_data_json(path, replacements or {}))

    def __len__(self):
        """Number of clips."""
        return len(self.ids)

    def __iter__(self):
        """The clip ids, in manifest order."""
        return iter(self.ids)

    def clip_id(self, position):
        """The id of the clip at `position`.

        Arguments
        ---------
        position : int
            Position in manifest order.

        Returns
        -------
        str
            The id.
        """
        return self.ids[position]

    def entry(self, position):
        """A new dict holding the fields of the clip at `position`.

        Arguments
        ---------
        position : int
            Position in manifest order.

        Returns
        -------
        dict
            Equal to the entry of the original manifest.
        """
        return {key: column[position] for key, column in self.columns.items()}

    def position(self, clip_id):
        """The position of `clip_id` in manifest order; KeyError if absent.

        Arguments
        ---------
        clip_id : str
            A clip id.

        Returns
        -------
        int
            Its position.
        """
        if self._sorted is None:
            keys = np.array([text.encode("utf-8") for text in self.ids])
            order = np.argsort(keys, kind="stable")
            self._sorted = (keys[order], order)
        keys, order = self._sorted
        key = str(clip_id).encode("utf-8")
        found = int(np.searchsorted(keys, key))
        if found == len(keys) or keys[found] != key:
            raise KeyError(clip_id)
        return int(order[found])

    def items(self):
        """(id, entry) pairs in manifest order."""
        return _PositionalItems(self)

    def values(self):
        """Entries (new dicts) in manifest order."""
        return _PositionalValues(self)

    def __getitem__(self, clip_id):
        """The entry of `clip_id` (a new dict)."""
        if not isinstance(clip_id, str):
            raise KeyError(clip_id)
        return self.entry(self.position(clip_id))

    def __getstate__(self):
        """Pickled state, without the id lookup table (rebuilt on demand)."""
        return {**self.__dict__, "_sorted": None}

    @property
    def nbytes(self):
        """Bytes held by the arrays (ids and every field)."""
        return self.ids.nbytes + sum(column.nbytes for column in self.columns.values())


def as_compact(manifest):
    """`manifest` as a :class:`CompactManifest` (returned as it is when it is one).

    Example
    -------
    >>> compact = as_compact({"a": {"wav": "/d/a.flac"}})
    >>> as_compact(compact) is compact
    True
    """
    if isinstance(manifest, CompactManifest):
        return manifest
    return CompactManifest(manifest)


class CompactDynamicItemDataset(DynamicItemDataset):
    """SpeechBrain's DynamicItemDataset over a :class:`CompactManifest`.

    Items are the same as those of ``DynamicItemDataset(data, ...)``; the
    static fields are rebuilt from the arrays for each item. ``data_ids`` is
    a read-only sequence (the manifest's :class:`StringArray` of ids), so
    ``filtered_sorted`` and friends keep working.

    Arguments
    ---------
    data : CompactManifest or dict
        The manifest (a dict is converted).
    dynamic_items : list, optional
        Dynamic items, as for DynamicItemDataset.
    output_keys : list or dict, optional
        Output keys, as for DynamicItemDataset.

    Example
    -------
    >>> from speechbrain.utils.data_pipeline import provides, takes
    >>> @takes("labels")
    ... @provides("n_labels")
    ... def count(labels):
    ...     return len(labels)
    >>> dataset = CompactDynamicItemDataset(
    ...     {"a": {"labels": ["x", "y"]}, "b": {"labels": ["y"]}},
    ...     dynamic_items=[count],
    ...     output_keys=["id", "n_labels"],
    ... )
    >>> len(dataset), dataset[0]
    (2, {'id': 'a', 'n_labels': 2})
    """

    def __init__(self, data, dynamic_items=None, output_keys=None):
        data = as_compact(data)
        if "id" in data.fields:
            raise ValueError("The key 'id' is reserved for the data point id.")
        self.data = data
        self.data_ids = data.ids
        self.pipeline = DataPipeline([*data.fields, "id"], dynamic_items or [])
        self.set_output_keys(output_keys or [])

    @classmethod
    def from_json(cls, json_path, replacements={}, dynamic_items=[], output_keys=[]):
        """Loads a JSON manifest (formatted as SpeechBrain's from_json does).

        Arguments
        ---------
        json_path : str
            The JSON manifest.
        replacements : dict
            ``{name: value}`` for ``{name}`` in string values.
        dynamic_items : list
            Dynamic items.
        output_keys : list or dict
            Output keys.

        Returns
        -------
        CompactDynamicItemDataset
            The dataset.
        """
        manifest = CompactManifest.from_json(json_path, replacements)
        return cls(manifest, dynamic_items, output_keys)

    def __len__(self):
        """Number of clips."""
        return len(self.data)

    def __getitem__(self, index):
        """The outputs of the clip at position `index`."""
        point = {"id": self.data.clip_id(index), **self.data.entry(index)}
        return self.pipeline.compute_outputs(point)
