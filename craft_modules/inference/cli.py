"""Console commands ``craft-tag``, ``craft-embed`` and ``craft-export`` (installed with the package).

``--model`` takes a recipe's run folder (``--checkpoint`` and ``--fold``
choose its weights) or a model folder written by ``craft-export``.

``craft-tag FILE... --model MODEL [--top-k 5] [--json]`` prints a table of
the top labels per file (and per window for files longer than the model's
clip), or with ``--json`` a list with one object per file:
``{"file", "duration", "labels": [{"label", "score"}, ...], "windows": [...]}``;
a file that cannot be read gets ``{"file", "error"}`` while the other files
are still tagged.

``craft-embed FILE... --model MODEL --output-dir DIR [--timestamps]`` writes
``<stem>.npy`` (the scene embedding) and, with ``--timestamps``,
``<stem>.timestamps.npy`` (``(n, dim)`` embeddings every ``--hop-ms``) and
``<stem>.times_ms.npy``, both from one forward pass per window, and one
manifest, ``DIR/embeddings.json``: per file its ``.npy`` names (relative to
``DIR``), duration, embedding sizes and hop, or its error.

``craft-export RUN_FOLDER OUT_DIR [--checkpoint ...] [--fold N] [--force]``
writes a self-contained SpeechBrain model folder
(:mod:`craft_modules.inference.export`).

Common behaviour:

* ``--device auto`` (the default) is CUDA when ``torch.cuda.is_available()``,
  else the CPU;
* ``--batch-size N``: clips (files, or windows of longer files) per forward
  pass, gathered across files; the results do not depend on it;
* a progress bar on stderr for more than :data:`PROGRESS_MIN_FILES` files
  (``--quiet`` turns it and the summary lines off); stdout holds only the
  results, so ``--json`` output stays parseable;
* exit status 0 when every file was processed, 1 when some files failed,
  2 for a usage error or a model (or run folder) that does not load;
* ``--version``.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch

from craft_modules.atomic_files import write_json_atomic

#: A progress bar is shown for more files than this.
PROGRESS_MIN_FILES = 3

#: The manifest ``craft-embed`` writes into its output folder.
MANIFEST = "embeddings.json"

#: Exit statuses.
EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR = 0, 1, 2


def package_version():
    """The installed version of this package (``unknown`` when it is not installed).

    Returns
    -------
    str

    Example
    -------
    >>> isinstance(package_version(), str)
    True
    """
    try:
        return importlib.metadata.version("craft-modules")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def resolve_device(device):
    """``auto`` as the current GPU when one is available, else ``cpu``.

    ``cuda`` without an index becomes ``cuda:N`` of the current GPU
    (SpeechBrain's model loading expects the index); others are unchanged.

    Arguments
    ---------
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    str

    Example
    -------
    >>> resolve_device("cpu"), resolve_device("cuda:1")
    ('cpu', 'cuda:1')
    >>> resolve_device("auto").startswith("cuda:" if torch.cuda.is_available() else "cpu")
    True
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return f"cuda:{torch.cuda.current_device()}"
    return device


def _parser(prog, description):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {package_version()}"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar or summary lines"
    )
    return parser


def _checkpoint_arguments(parser):
    parser.add_argument(
        "--fold", type=int, default=None, help="fold of an ESC-50 run folder"
    )
    parser.add_argument(
        "--checkpoint",
        default="auto",
        choices=("auto", "best", "last", "averaged"),
        help="which weights of a run folder (auto: the average if any, else the best)",
    )


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _common_arguments(parser):
    parser.add_argument("files", nargs="+", help="audio files (any rate, mono or not)")
    parser.add_argument(
        "--model",
        required=True,
        help="a recipe's run folder or a model folder written by craft-export",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when available, else CPU), cpu or cuda[:N]",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=16,
        help="clips (files or windows of long files) per forward pass",
    )
    _checkpoint_arguments(parser)


def _error(prog, message):
    """Prints ``prog: error: message`` on stderr; returns :data:`EXIT_ERROR`."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _load(prog, args):
    """The model of ``--model``, or None after printing why it did not load."""
    from craft_modules.inference.tagger import AudioTagger

    try:
        return AudioTagger.from_folder(
            args.model,
            device=resolve_device(args.device),
            checkpoint=args.checkpoint,
            fold=args.fold,
        )
    except Exception as err:  # any failure to build the model is exit status 2
        _error(prog, f"cannot load the model {args.model!r}: {err}")
        return None


def _progress(results, total, quiet, unit="file"):
    """``results`` with a progress bar on stderr for more than a few files."""
    from tqdm import tqdm

    disable = quiet or total <= PROGRESS_MIN_FILES
    return tqdm(results, total=total, unit=unit, file=sys.stderr, disable=disable)


def format_table(results):
    """Readable text for :meth:`AudioTagger.tag_files` results.

    Arguments
    ---------
    results : list of dict
        Tagging results.

    Returns
    -------
    str

    Example
    -------
    >>> print(format_table([{"file": "a.wav", "duration": 1.0,
    ...                      "labels": [{"label": "dog", "score": 0.9}]}]))
    a.wav (1.00 s)
        0.900  dog
    """
    lines = []
    for result in results:
        if "error" in result:
            lines.append(f"{result['file']}: ERROR {result['error']}")
            continue
        lines.append(f"{result['file']} ({result['duration']:.2f} s)")
        lines.extend(f"    {e['score']:.3f}  {e['label']}" for e in result["labels"])
        for window in result.get("windows", []):
            best = ", ".join(f"{e['label']} {e['score']:.2f}" for e in window["labels"])
            lines.append(
                f"    [{window['start']:7.2f} - {window['end']:7.2f} s]  {best}"
            )
    return "\n".join(lines)


def tag_main(argv=None):
    """Entry point of ``craft-tag``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0, 1 when a file could not be tagged, 2 when the model did not load
        (argparse exits with 2 on a usage error).
    """
    parser = _parser("craft-tag", "Tag audio files with a trained recipe model.")
    _common_arguments(parser)
    parser.add_argument("--top-k", type=_positive, default=5, help="labels per file")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    tagger = _load(parser.prog, args)
    if tagger is None:
        return EXIT_ERROR
    if tagger.embedding_only:
        return _error(
            parser.prog,
            f"{args.model!r} is an embedding model (a pretraining run: no labels); "
            "use craft-embed, or fine-tune it to tag",
        )
    results = list(
        _progress(
            tagger.iter_tag_files(args.files, args.top_k, args.batch_size),
            len(args.files),
            args.quiet,
        )
    )
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return EXIT_SOME_FAILED if any("error" in r for r in results) else EXIT_OK


def _write_npy(path, tensor):
    np.save(path, tensor.numpy())
    return os.path.basename(path)


def embed_main(argv=None):
    """Entry point of ``craft-embed``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0, 1 when a file could not be embedded, 2 when the model did not
        load (argparse exits with 2 on a usage error).
    """
    parser = _parser(
        "craft-embed",
        "Write scene (and timestamp) embeddings of audio files as .npy, "
        f"with a {MANIFEST} manifest.",
    )
    _common_arguments(parser)
    parser.add_argument("--output-dir", required=True, help="folder for the .npy files")
    parser.add_argument(
        "--timestamps", action="store_true", help="also timestamp embeddings"
    )
    parser.add_argument("--hop-ms", type=float, default=50.0, help="timestamp hop")
    args = parser.parse_args(argv)
    if not args.hop_ms > 0:
        parser.error(f"--hop-ms must be positive, got {args.hop_ms}")
    stems = [os.path.splitext(os.path.basename(path))[0] for path in args.files]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashes:
        parser.error(
            "several files would write the same .npy name: "
            + ", ".join(clashes)
            + " (embed them into separate --output-dir folders)"
        )
    tagger = _load(parser.prog, args)
    if tagger is None:
        return EXIT_ERROR
    os.makedirs(args.output_dir, exist_ok=True)
    entries = []
    results = tagger.iter_embed_files(
        args.files, args.hop_ms, args.timestamps, args.batch_size
    )
    for stem, result in zip(
        stems, _progress(results, len(args.files), args.quiet), strict=True
    ):
        if "error" in result:
            print(f"{result['file']}: ERROR {result['error']}", file=sys.stderr)
            entries.append(result)
            continue
        base = os.path.join(args.output_dir, stem)
        entry = {
            "file": result["file"],
            "duration": result["duration"],
            "scene": _write_npy(base + ".npy", result["scene"]),
            "scene_dim": int(result["scene"].shape[-1]),
        }
        if args.timestamps:
            entry.update(
                timestamps=_write_npy(base + ".timestamps.npy", result["timestamps"]),
                times_ms=_write_npy(base + ".times_ms.npy", result["times_ms"]),
                n_timestamps=int(result["timestamps"].shape[0]),
                timestamp_dim=int(result["timestamps"].shape[-1]),
                hop_ms=float(args.hop_ms),
            )
        entries.append(entry)
    failed = sum("error" in entry for entry in entries)
    manifest = {
        "model": args.model,
        "checkpoint": str(tagger.hparams.checkpoint),
        "embedding_only": tagger.embedding_only,
        "sample_rate": tagger.sample_rate,
        "clip_duration": float(tagger.hparams.clip_duration),
        "hop_ms": float(args.hop_ms) if args.timestamps else None,
        "n_files": len(entries),
        "n_failed": failed,
        "files": entries,
    }
    path = os.path.join(args.output_dir, MANIFEST)
    write_json_atomic(manifest, path)
    if not args.quiet:
        print(
            f"{len(entries) - failed} of {len(entries)} files embedded; manifest: {path}",
            file=sys.stderr,
        )
    return EXIT_SOME_FAILED if failed else EXIT_OK


def export_main(argv=None):
    """Entry point of ``craft-export``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0, or 2 when the run folder is not a run, the model does not load or
        ``OUT_DIR`` cannot be written (argparse exits with 2 on a usage
        error).
    """
    parser = _parser(
        "craft-export",
        "Write a recipe run as a self-contained SpeechBrain model folder "
        "(hyperparams.yaml, model.ckpt, label_encoder.txt, README.md).",
    )
    parser.add_argument("run_folder", help="a recipe's run folder (or one fold_N)")
    parser.add_argument("out_dir", help="the model folder to write")
    _checkpoint_arguments(parser)
    parser.add_argument(
        "--force", action="store_true", help="replace a non-empty OUT_DIR"
    )
    args = parser.parse_args(argv)
    from craft_modules.inference.export import export_model

    try:
        summary = export_model(
            args.run_folder,
            args.out_dir,
            fold=args.fold,
            checkpoint=args.checkpoint,
            force=args.force,
        )
    except Exception as err:  # not a run, a model that does not load, OUT_DIR
        return _error(parser.prog, str(err))
    if summary["embedding_only"]:
        what = (
            "an embedding model (a pretraining run: scene and timestamp "
            "embeddings, no labels)"
        )
    else:
        what = f"a tagger with {len(summary['labels'])} labels"
    if not args.quiet:
        print(
            f"Exported {what} ({summary['checkpoint']}) to {summary['folder']}: "
            + ", ".join(summary["files"])
        )
    return EXIT_OK


def _tag():  # console_scripts wrappers: the exit status is the return value
    sys.exit(tag_main())


def _embed():
    sys.exit(embed_main())


def _export():
    sys.exit(export_main())


if __name__ == "__main__":
    sys.exit(tag_main())
