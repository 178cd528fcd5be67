"""Console commands ``craft-tag`` and ``craft-embed`` (installed with the package).

``craft-tag FILE... --model RUN_DIR [--top-k 5] [--json]`` prints a table of
the top labels per file (and per window for files longer than the model's
clip), or with ``--json`` a list with one object per file:
``{"file", "duration", "labels": [{"label", "score"}, ...], "windows": [...]}``;
a file that cannot be read gets ``{"file", "error"}`` and the exit status is
1, while the other files are still tagged.

``craft-embed FILE... --model RUN_DIR --output-dir DIR`` writes
``<stem>.npy`` (the scene embedding) and, with ``--timestamps``,
``<stem>.timestamps.npy`` (``(n, dim)`` embeddings every ``--hop-ms``) and
``<stem>.times_ms.npy``.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import json
import os
import sys

import numpy as np

from craft_modules.data.audio import AudioLoadError


def _common_arguments(parser):
    parser.add_argument("files", nargs="+", help="audio files (any rate, mono or not)")
    parser.add_argument("--model", required=True, help="run folder of a recipe")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--fold", type=int, default=None, help="fold of an ESC-50 run")
    parser.add_argument(
        "--checkpoint",
        default="auto",
        choices=("auto", "best", "last", "averaged"),
        help="which weights of the run (auto: the average if any, else the best)",
    )


def _load(args):
    from craft_modules.inference.tagger import AudioTagger

    try:
        return AudioTagger.from_run(
            args.model, device=args.device, checkpoint=args.checkpoint, fold=args.fold
        )
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")


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
        0, or 1 when a file could not be tagged.
    """
    parser = argparse.ArgumentParser(
        prog="craft-tag", description="Tag audio files with a trained recipe model."
    )
    _common_arguments(parser)
    parser.add_argument("--top-k", type=int, default=5, help="labels per file")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    tagger = _load(args)
    results = tagger.tag_files(args.files, top_k=args.top_k)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 1 if any("error" in r for r in results) else 0


def embed_main(argv=None):
    """Entry point of ``craft-embed``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0, or 1 when a file could not be embedded.
    """
    parser = argparse.ArgumentParser(
        prog="craft-embed",
        description="Write scene (and timestamp) embeddings of audio files as .npy.",
    )
    _common_arguments(parser)
    parser.add_argument("--output-dir", required=True, help="folder for the .npy files")
    parser.add_argument(
        "--timestamps", action="store_true", help="also timestamp embeddings"
    )
    parser.add_argument("--hop-ms", type=float, default=50.0, help="timestamp hop")
    args = parser.parse_args(argv)
    stems = [os.path.splitext(os.path.basename(path))[0] for path in args.files]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashes:
        parser.error(
            "several files would write the same .npy name: "
            + ", ".join(clashes)
            + " (embed them into separate --output-dir folders)"
        )
    tagger = _load(args)
    os.makedirs(args.output_dir, exist_ok=True)
    status = 0
    for path in args.files:
        stem = os.path.join(
            args.output_dir, os.path.splitext(os.path.basename(path))[0]
        )
        try:
            wav = tagger.load_audio(path)
        except AudioLoadError as err:
            print(f"{path}: ERROR {err}", file=sys.stderr)
            status = 1
            continue
        np.save(stem + ".npy", tagger.scene_embedding(wav, tagger.sample_rate).numpy())
        written = [stem + ".npy"]
        if args.timestamps:
            emb, times = tagger.timestamp_embedding(
                wav, tagger.sample_rate, args.hop_ms
            )
            np.save(stem + ".timestamps.npy", emb.numpy())
            np.save(stem + ".times_ms.npy", times.numpy())
            written += [stem + ".timestamps.npy", stem + ".times_ms.npy"]
        print(f"{path} -> {', '.join(written)}")
    return status


def _tag():  # console_scripts wrappers: the exit status is the return value
    sys.exit(tag_main())


def _embed():
    sys.exit(embed_main())


if __name__ == "__main__":
    sys.exit(tag_main())
