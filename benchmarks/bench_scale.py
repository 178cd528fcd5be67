"""Does the data side scale to AudioSet-2M? Preparation time, loader memory, clips/s per worker.

Three measurements on a synthetic AudioSet of ``--rows`` clips (2 million by
default: YouTube-like ids, paths, 1-5 labels of 527 classes):

1. Preparation: ``audioset_prepare``'s manifest building on a segments CSV
   of that many rows: indexing the audio file names, reading the CSV,
   building the entries, writing the JSON manifest, and loading it back as a
   compact manifest: from the JSON (``load_compact_s``), from the JSON
   writing the on-disk cache (``load_and_cache_s``, the first process of a
   run) and from that cache (``load_cached_s``, every later process: memory
   maps). Probing each audio file (reading its header) is
   inherent and per file: it is timed on real FLAC files and extrapolated
   (``probe_extrapolated_s``), the other steps run with a stand-in probe.
2. Memory: the training set as a compact manifest and as SpeechBrain's
   dict-based DynamicItemDataset, each in its own process, read by
   ``--workers`` forked DataLoader workers (a few hundred random clips; the
   audio of every clip is one of the real FLAC files). RSS, PSS and private
   memory (USS, from ``/proc/<pid>/smaps_rollup``) of the main process and
   of each worker are reported twice: after those clips ("short"), and after
   each worker also ran a full garbage collection and read every clip id
   ("long_run"), which is what a long run reaches as its workers touch the
   whole manifest (for the dict this is a lower bound: the path and label
   strings are not read). ``extra_pss_mib`` is the memory the workers add
   (all PSS after, minus the main process's PSS before).
3. Throughput: clips/s of the recipes' loading (10 s 16 kHz mono FLAC,
   cropped/padded to 10 s, multi-hot targets, SkipBadCollate) with 0, 1 and
   2 workers, and the workers one GPU needs to get ``--gpu-clips-per-s``.

Results are printed and written as JSON (``--output``).

Usage: python benchmarks/bench_scale.py [--rows 2000000] [--workers 8] [--quick]
       [--gpu-clips-per-s 500] [--output bench_scale.json]

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import gc
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data import preparation
from craft_modules.data.audio import AudioProbe, AudioReader
from craft_modules.data.batching import SkipBadCollate
from craft_modules.data.datasets import audio_dataset
from craft_modules.data.labels import MultiHot
from craft_modules.data.manifest import CompactDynamicItemDataset, CompactManifest
from craft_modules.data.manifest_cache import load_manifest
from craft_modules.testing.synth import YTID_ALPHABET, synth_clip
from craft_modules.training.loaders import loader_worker_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_CLASSES = 527
SAMPLE_RATE = 16000
CLIP_SECONDS = 10.0
#: Assumed GPU demand: a ViT-Base (512 patches) training step on 10 s clips
#: with bf16 on one H100-class GPU, estimated from its FLOPs (~300 GFLOP per
#: clip at ~40 % of peak). Replace with a measured rate (--gpu-clips-per-s).
DEFAULT_GPU_CLIPS_PER_S = 500.0


def load_prepare_module():
    """recipes/AudioSet/audioset_prepare.py as a module."""
    path = os.path.join(ROOT, "recipes", "AudioSet", "audioset_prepare.py")
    spec = importlib.util.spec_from_file_location("audioset_prepare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ synthetic data
def synthetic_ids(n, seed=0):
    """`n` distinct 11-character YouTube-like ids, drawn with numpy."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(YTID_ALPHABET.encode(), dtype=np.uint8)
    ids = alphabet[rng.integers(0, len(alphabet), (n, 11))].view("S11").ravel()
    ids = np.unique(ids)  # collisions are astronomically rare; drop them anyway
    while len(ids) < n:
        extra = alphabet[rng.integers(0, len(alphabet), (n - len(ids), 11))]
        ids = np.unique(np.concatenate([ids, extra.view("S11").ravel()]))
    return rng.permutation(ids).astype("U11").tolist()


def synthetic_labels(n, seed=0):
    """MIDs of 527 classes and, per clip, 1 to 5 of them (CSR: offsets, indices)."""
    rng = np.random.default_rng(seed + 1)
    mids = [f"/m/{i:05x}" for i in range(N_CLASSES)]
    counts = rng.integers(1, 6, n)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    indices = rng.zipf(1.3, int(offsets[-1])) % N_CLASSES  # a long tail, as AudioSet
    return mids, offsets, indices


def synthetic_manifest(n, audio_root="/data/AudioSet/audio", seed=0):
    """An AudioSet manifest dict of `n` clips, as audioset_prepare writes it."""
    ids = synthetic_ids(n, seed)
    mids, offsets, indices = synthetic_labels(n, seed)
    labels = [mids[i] for i in indices.tolist()]
    bounds = offsets.tolist()
    folder = f"{audio_root}/unbalanced_train"
    return {
        ytid: {
            "wav": f"{folder}/Y{ytid}.flac",
            "duration": 10.0,
            "labels": labels[bounds[i] : bounds[i + 1]],
        }
        for i, ytid in enumerate(ids)
    }


def write_flac_clips(folder, n, seconds=CLIP_SECONDS):
    """`n` synthetic mono 16 kHz FLAC clips of `seconds`; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"clip{i:03d}.flac")
        signal = synth_clip([i % 14, (i * 5 + 3) % 14], SAMPLE_RATE, seconds, seed=i)
        sf.write(path, signal, SAMPLE_RATE)
        paths.append(path)
    return paths


# -------------------------------------------------------------------- 1. preparation
def write_segments_csv(path, ids, mids, offsets, indices):
    """An official-format segments CSV of the given clips."""
    bounds, codes = offsets.tolist(), indices.tolist()
    lines = [
        "# Segments csv created Sun Mar  5 10:54:31 2017",
        f"# num_ytids={len(ids)}, num_segs={len(ids)}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    lines.extend(
        f'{ytid}, 30.000, 40.000, "{",".join(mids[c] for c in codes[bounds[i] : bounds[i + 1]])}"'
        for i, ytid in enumerate(ids)
    )
    with open(path, "w", encoding="utf-8") as fout:
        fout.write("\n".join(lines) + "\n")


def time_preparation(rows, folder, flac_files):
    """Times each step of audioset_prepare's manifest building on `rows` rows."""
    prep = load_prepare_module()
    ids = synthetic_ids(rows)
    mids, offsets, indices = synthetic_labels(rows)
    csv_path = os.path.join(folder, "unbalanced_train_segments.csv")
    write_segments_csv(csv_path, ids, mids, offsets, indices)
    audio = os.path.join(folder, "audio", "unbalanced_train")
    files = [os.path.join(audio, f"Y{ytid}.flac") for ytid in ids]
    del ids
    times = {}
    summary = prep.PreparationSummary("bench")

    start = time.perf_counter()
    index = prep.AudioIndex.from_files(files)
    times["index_files_s"] = time.perf_counter() - start
    del files

    start = time.perf_counter()
    clips = prep.read_segments_csv(csv_path, index, summary, "unbalanced_train")
    times["read_csv_s"] = time.perf_counter() - start

    real_probe = preparation.probe_audio  # the probe behind probe_all
    preparation.probe_audio = lambda path: AudioProbe(
        path, SAMPLE_RATE, 160000, 1, 10.0
    )
    try:
        start = time.perf_counter()
        manifest = prep.build_manifest(clips, set(mids), summary, "unbalanced_train")
        times["build_entries_s"] = time.perf_counter() - start
    finally:
        preparation.probe_audio = real_probe
    del clips, index

    json_path = os.path.join(folder, "unbalanced_train.json")
    start = time.perf_counter()
    write_json_atomic(manifest, json_path)
    times["write_json_s"] = time.perf_counter() - start
    n_written = len(manifest)
    del manifest
    gc.collect()

    start = time.perf_counter()
    compact = CompactManifest.from_json(json_path)
    times["load_compact_s"] = time.perf_counter() - start
    start = time.perf_counter()
    load_manifest(json_path)  # the first process: builds and writes the cache
    times["load_and_cache_s"] = time.perf_counter() - start
    start = time.perf_counter()
    cached = load_manifest(json_path)  # every later process: memory maps
    cached.entry(len(cached) - 1)
    times["load_cached_s"] = time.perf_counter() - start
    del cached

    start = time.perf_counter()
    repeats = max(1, 256 // len(flac_files))
    for _ in range(repeats):
        for path in flac_files:
            real_probe(path)
    probe_s = (time.perf_counter() - start) / (repeats * len(flac_files))
    steps = ("index_files_s", "read_csv_s", "build_entries_s", "write_json_s")
    return {
        "rows": rows,
        "clips_written": n_written,
        **times,
        "total_without_probing_s": sum(times[key] for key in steps),
        "json_mib": os.path.getsize(json_path) / 2**20,
        "compact_mib": compact.nbytes / 2**20,
        "probe_per_file_ms": 1000 * probe_s,
        "probe_extrapolated_s": probe_s * rows,
    }


# ------------------------------------------------------------------------- 2. memory
def process_memory(pid):
    """RSS (``/proc/<pid>/status``), PSS and USS (``smaps_rollup``) in MiB."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fin:
        for line in fin:
            if line.startswith("VmRSS:"):
                values["rss_mib"] = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fin:
        fields = {
            parts[0].rstrip(":"): int(parts[1])
            for parts in map(str.split, fin)
            if len(parts) == 3 and parts[0].endswith(":")
        }
    values["pss_mib"] = fields["Pss"] / 1024
    values["uss_mib"] = (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024
    return values


class StandInAudio:
    """Reads, for any manifest path, one of a few real files (picked by a hash)."""

    def __init__(self, files, reader):
        self.files = list(files)
        self.reader = reader

    def __call__(self, wav):
        """Loads the stand-in file of `wav`."""
        return self.reader(self.files[zlib.crc32(wav.encode()) % len(self.files)])


def touch_like_a_long_run(worker_id):
    """Worker init: a full garbage collection and a read of every clip id."""
    dataset = torch.utils.data.get_worker_info().dataset
    gc.collect()
    for _ in dataset.data_ids:
        pass


def freeze_then_touch(worker_id):
    """Worker init: ``gc.freeze()`` (the collector then skips inherited objects), then touch."""
    gc.freeze()
    touch_like_a_long_run(worker_id)


PHASES = {"short": None, "long_run": touch_like_a_long_run, "frozen": freeze_then_touch}


def _loader_memory(dataset, workers, items, batch_size, worker_init_fn):
    """Reads `items` random clips with `workers` forked workers; memory of all."""
    gc.collect()
    before = process_memory(os.getpid())
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=torch.utils.data.RandomSampler(dataset, num_samples=items),
        num_workers=workers,
        collate_fn=SkipBadCollate(),
        multiprocessing_context="fork",
        persistent_workers=True,  # alive after the epoch, to be measured
        worker_init_fn=worker_init_fn,
    )
    start = time.perf_counter()
    n_clips = sum(batch.sig.data.shape[0] for batch in loader if batch is not None)
    elapsed = time.perf_counter() - start
    pids = [worker.pid for worker in loader._iterator._workers]
    worker_memory = [process_memory(pid) for pid in pids]
    after = process_memory(os.getpid())
    del loader
    gc.collect()
    total_pss = after["pss_mib"] + sum(w["pss_mib"] for w in worker_memory)
    return {
        "clips": n_clips,
        "seconds": elapsed,
        "main_before": before,
        "main_after": after,
        "workers": worker_memory,
        "workers_rss_mib": sum(w["rss_mib"] for w in worker_memory),
        "workers_pss_mib": sum(w["pss_mib"] for w in worker_memory),
        "workers_uss_mib": sum(w["uss_mib"] for w in worker_memory),
        "extra_pss_mib": total_pss - before["pss_mib"],
    }


def memory_scenario(kind, rows, workers, items, batch_size, flac_files):
    """One process's measurement: the dataset of `kind` ("compact" or "dict")."""
    start = time.perf_counter()
    manifest = synthetic_manifest(rows)
    build_dict_s = time.perf_counter() - start
    mids = [f"/m/{i:05x}" for i in range(N_CLASSES)]
    reader = AudioReader(SAMPLE_RATE, CLIP_SECONDS)
    items_ = [
        takes("wav")(provides("sig")(StandInAudio(flac_files, reader))),
        takes("labels")(provides("targets")(MultiHot(mids))),
    ]
    keys = ["id", "sig", "targets"]
    start = time.perf_counter()
    if kind == "compact":
        manifest = CompactManifest(manifest)
        dataset = CompactDynamicItemDataset(manifest, items_, keys)
        manifest_mib = manifest.nbytes / 2**20
    else:
        dataset = DynamicItemDataset(manifest, items_, keys)
        manifest_mib = None
    build_dataset_s = time.perf_counter() - start
    del manifest
    result = {
        "kind": kind,
        "rows": len(dataset),
        "build_dict_s": build_dict_s,
        "build_dataset_s": build_dataset_s,
        "compact_arrays_mib": manifest_mib,
    }
    for phase, init in PHASES.items():
        result[phase] = _loader_memory(dataset, workers, items, batch_size, init)
    return result


def run_memory_scenario(kind, args, flac_files, folder):
    """Runs :func:`memory_scenario` in a fresh process (clean baselines)."""
    files_json = os.path.join(folder, "flac_files.json")
    with open(files_json, "w", encoding="utf-8") as fout:
        json.dump(flac_files, fout)
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--scenario",
        kind,
        "--rows",
        str(args.rows),
        "--workers",
        str(args.workers),
        "--items",
        str(args.items),
        "--batch-size",
        str(args.batch_size),
        "--files",
        files_json,
    ]
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    if done.returncode:
        raise RuntimeError(f"memory scenario {kind!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------- 3. throughput
def loader_rate(flac_files, workers, batch_size, passes):
    """Clips/s of the recipes' loading of 10 s clips with `workers` workers."""
    manifest = {
        f"clip{k}_{i}": {"wav": path, "duration": CLIP_SECONDS, "labels": ["/m/a"]}
        for k in range(passes)
        for i, path in enumerate(flac_files)
    }
    targets = takes("labels")(provides("targets")(MultiHot(["/m/a", "/m/b"])))
    dataset = audio_dataset(
        manifest, SAMPLE_RATE, CLIP_SECONDS, [targets], ("id", "sig", "targets")
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=SkipBadCollate(),
        **loader_worker_options(workers, "cpu"),
    )
    for _ in loader:  # warm-up epoch: workers started, files in the page cache
        pass
    start = time.perf_counter()
    n_clips = sum(batch.sig.data.shape[0] for batch in loader)
    return n_clips / (time.perf_counter() - start)


def time_throughput(flac_files, batch_size, gpu_clips_per_s, passes):
    """Clips/s with 0, 1, 2 workers, per worker, and workers needed per GPU."""
    torch.set_num_threads(1)
    rates = {str(w): loader_rate(flac_files, w, batch_size, passes) for w in (0, 1, 2)}
    per_worker = max(rates["1"], rates["2"] / 2)
    return {
        "clip_seconds": CLIP_SECONDS,
        "batch_size": batch_size,
        "clips_per_s": rates,
        "clips_per_s_per_worker": per_worker,
        "gpu_clips_per_s": gpu_clips_per_s,
        "workers_per_gpu": math.ceil(gpu_clips_per_s / per_worker),
    }


# ----------------------------------------------------------------------------- main
def print_report(results):
    """The results as a table."""
    prep = results["preparation"]
    print(f"AudioSet scale benchmark: {results['rows']} rows, {results['cpus']} CPUs")
    print(f"\n1. Preparation of {prep['rows']} rows (seconds)")
    for key in (
        "index_files_s",
        "read_csv_s",
        "build_entries_s",
        "write_json_s",
        "total_without_probing_s",
        "load_compact_s",
        "load_and_cache_s",
        "load_cached_s",
    ):
        print(f"  {key:28s} {prep[key]:9.1f}")
    print(
        f"  probing: {prep['probe_per_file_ms']:.2f} ms/file -> "
        f"{prep['probe_extrapolated_s'] / 60:.0f} min for all rows (one thread, warm cache)"
    )
    print(
        f"  JSON {prep['json_mib']:.0f} MiB; compact arrays {prep['compact_mib']:.0f} MiB"
    )
    print(f"\n2. Memory with {results['workers']} workers (MiB)")
    print(
        f"  {'dataset':8s} {'phase':9s} {'main PSS':>9s} {'worker RSS':>11s} "
        f"{'worker PSS':>11s} {'worker USS':>11s} {'extra PSS':>10s}"
    )
    for kind in ("compact", "dict"):
        for phase in PHASES:
            m = results["memory"][kind][phase]
            n = max(1, len(m["workers"]))
            print(
                f"  {kind:8s} {phase:9s} {m['main_before']['pss_mib']:9.0f} "
                f"{m['workers_rss_mib'] / n:11.0f} {m['workers_pss_mib'] / n:11.0f} "
                f"{m['workers_uss_mib'] / n:11.0f} {m['extra_pss_mib']:10.0f}"
            )
    print("  (worker columns: mean per worker; extra PSS: all workers together;")
    print(
        "   long_run: every worker ran a full gc and read every id; frozen: gc.freeze() first)"
    )
    loader = results["loader"]
    print(f"\n3. Loading 10 s 16 kHz FLAC, batch {loader['batch_size']} (clips/s)")
    for workers, rate in loader["clips_per_s"].items():
        print(f"  {workers} workers {rate:9.1f}")
    print(
        f"  per worker {loader['clips_per_s_per_worker']:.1f}; a GPU taking "
        f"{loader['gpu_clips_per_s']:.0f} clips/s needs {loader['workers_per_gpu']} workers"
    )


def parse_arguments(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=int, default=None, help="default 2M (quick: 50k)"
    )
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--items", type=int, default=None, help="clips read (memory)")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--clips", type=int, default=None, help="real FLAC files")
    parser.add_argument(
        "--gpu-clips-per-s",
        type=float,
        default=DEFAULT_GPU_CLIPS_PER_S,
        help=f"clips/s one GPU's training step takes (assumed {DEFAULT_GPU_CLIPS_PER_S:.0f})",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, < 30 s")
    parser.add_argument("--output", default="bench_scale.json")
    parser.add_argument(
        "--scenario", choices=["compact", "dict"], help=argparse.SUPPRESS
    )
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.rows = args.rows or (50_000 if quick else 2_000_000)
    args.items = args.items or (4 * args.workers if quick else 40 * args.workers)
    args.clips = args.clips or (8 if quick else 64)
    return args


def main(argv=None):
    """Runs the three measurements, prints them and writes the JSON."""
    args = parse_arguments(argv)
    if args.scenario:
        with open(args.files, encoding="utf-8") as fin:
            files = json.load(fin)
        result = memory_scenario(
            args.scenario, args.rows, args.workers, args.items, args.batch_size, files
        )
        print(json.dumps(result))
        return result
    with tempfile.TemporaryDirectory() as folder:
        flac_files = write_flac_clips(os.path.join(folder, "flac"), args.clips)
        results = {
            "rows": args.rows,
            "workers": args.workers,
            "cpus": len(os.sched_getaffinity(0)),
            "quick": args.quick,
            "preparation": time_preparation(args.rows, folder, flac_files),
            "memory": {
                kind: run_memory_scenario(kind, args, flac_files, folder)
                for kind in ("compact", "dict")
            },
            "loader": time_throughput(
                flac_files,
                args.batch_size,
                args.gpu_clips_per_s,
                passes=2 if args.quick else 4,
            ),
        }
    print_report(results)
    with open(args.output, "w", encoding="utf-8") as fout:
        json.dump(results, fout, indent=2)
    return results


if __name__ == "__main__":
    main()
