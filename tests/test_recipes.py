"""Every recipe YAML runs end to end on generated data in the official layouts."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from craft_modules.metrics import load_predictions, multilabel_metrics
from craft_modules.testing.synth import make_audioset, make_esc50
from craft_modules.testing.synth_fsd50k import make_fsd50k

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "recipes" / "AudioSet" / "pretrain.py"
AUDIOSET = ROOT / "recipes" / "AudioSet" / "train.py"
ESC50 = ROOT / "recipes" / "ESC50" / "train.py"
FSD50K = ROOT / "recipes" / "FSD50K" / "train.py"
ENSEMBLE = ROOT / "recipes" / "AudioSet" / "ensemble.py"
# A small diverse-embedding model (4 streams of 16-d, one block each).
TINY_DIVERSE = ["--embed_dim=16", "--num_heads=2", "--depth=1"]
# Run options of every test run; TINY adds the tiny one-block transformer.
QUICK = ["--num_workers=0", "--device=cpu", "--clip_duration=1.0"]
TINY = ["--model_size=tiny", "--depth=1", *QUICK]


def run(script, *args, cwd=ROOT, check=True):
    """Runs a recipe in a subprocess; fails the test with its output tail."""
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def read(path):
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


@pytest.fixture(scope="session")
def esc50_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "ESC-50"
    make_esc50(
        str(root), n_classes=3, clips_per_class=5, sample_rate=44100, duration=1.0
    )
    return root


@pytest.fixture(scope="session")
def audioset_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "AudioSet"
    info = make_audioset(
        str(root),
        n_classes=4,
        n_balanced=8,
        n_eval=5,
        n_unbalanced=4,  # the pretraining YAMLs read balanced + unbalanced
        duration=1.0,
        n_missing=1,
        n_corrupt=1,
    )
    return root, info


@pytest.fixture(scope="session")
def pretrained(audioset_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pretrain"
    root, _ = audioset_folder
    run(
        PRETRAIN,
        "hparams/craft.yaml",
        f"--data_folder={root}",
        f"--output_folder={out}",
        "--batch_size=4",
        "--number_of_epochs=1",
        "--mask_patch=20",
        "--warmup_steps=2",
        "--log_interval=2",
        *TINY,
    )
    return out


def assert_png(path):
    """``path`` is a complete PNG image (a figure the run drew)."""
    from PIL import Image

    with Image.open(path) as image:
        image.verify()  # raises on a truncated or corrupt file
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 100


@pytest.mark.parametrize("method", ["ssast", "swapt", "wapt", "swacl"])
def test_pretraining_yamls(method, audioset_folder, tmp_path):
    root, _ = audioset_folder
    # WaPT runs on the default mask_ratio: SSAST's share of the 1 s clip's grid.
    masking = [] if method == "wapt" else ["--mask_patch=20"]
    run(
        PRETRAIN,
        f"hparams/{method}.yaml",
        f"--data_folder={root}",
        f"--output_folder={tmp_path}",
        "--batch_size=4",
        "--number_of_epochs=1",
        "--warmup_steps=2",
        *masking,
        *TINY,
    )
    valid = read(tmp_path / "results.json")["valid"]
    assert valid and all(v == v for v in valid.values())  # finite, not NaN
    monitor = {
        "ssast": "acc_spec",
        "swapt": "acc_wav",
        "wapt": "acc_wav",
        "swacl": "swacl_acc",
    }[method]
    assert monitor in valid
    assert list((tmp_path / "save").glob("CKPT+*/model.ckpt"))


def test_pretraining_validates_every_epoch_iter_steps(audioset_folder, tmp_path):
    """SSAST's epoch_iter: one validation (and plateau step) per interval."""
    root, _ = audioset_folder
    run(
        PRETRAIN,
        "hparams/ssast.yaml",
        f"--data_folder={root}",
        f"--output_folder={tmp_path}",
        "--batch_size=2",
        "--number_of_epochs=2",
        "--epoch_iter=1",
        "--mask_patch=20",
        "--warmup_steps=2",
        *TINY,
    )
    n_train = len(read(tmp_path / "data" / "full_train.json"))
    intervals = -(-2 * n_train // 2)  # two passes of one-step (2-clip) intervals
    log = (tmp_path / "train_log.txt").read_text().splitlines()
    assert len([line for line in log if line.startswith("epoch:")]) == intervals


def test_pretraining_adds_a_weighted_unlabeled_folder(audioset_folder, tmp_path):
    """AudioSet + a folder of wavs drawn twice as often per clip, in intervals."""
    import numpy as np
    import soundfile as sf

    root, _ = audioset_folder
    folder = tmp_path / "speech"
    folder.mkdir()
    for i in range(3):
        noise = 0.1 * np.random.default_rng(i).standard_normal(16000)
        sf.write(str(folder / f"utt{i}.wav"), noise, 16000)
    out = tmp_path / "run"
    run(
        PRETRAIN,
        "hparams/ssast.yaml",
        f"--data_folder={root}",
        f"--output_folder={out}",
        f"--unlabeled_folders=[{{path: {folder}, weight: 2.0}}]",
        "--batch_size=2",
        "--number_of_epochs=1",
        "--epoch_iter=2",
        "--mask_patch=20",
        "--warmup_steps=2",
        *TINY,
    )
    n_train = len(read(out / "data" / "full_train.json")) + 3
    assert len(read(out / "data" / "unlabeled_0.json")) == 3
    # The folder's weight reaches the sampler (whose draws test_sampling checks).
    assert ", 3] clips with weights [1.0, 2.0]" in (out / "log.txt").read_text()
    log = (out / "train_log.txt").read_text().splitlines()
    intervals = math.ceil(n_train / 4)  # one pass in 2-step intervals of 2 clips
    assert len([line for line in log if line.startswith("epoch:")]) == intervals
    assert "acc_spec" in read(out / "results.json")["valid"]


def test_pretraining_craft_yaml_and_preparation_summary(pretrained, audioset_folder):
    root, info = audioset_folder
    valid = read(pretrained / "results.json")["valid"]
    assert {"nce_spec", "mse_spec", "swacl"} <= set(valid)
    summary = read(pretrained / "data" / "prepare_summary.json")
    assert (
        summary["skipped"]["missing_audio"] == 1
        and summary["skipped"]["unreadable_audio"] == 1
    )
    # --log_interval=2: the running losses of every 2 optimizer steps (and of
    # the last step of each stage) in train_log.txt and train_steps.jsonl.
    steps = max(
        int(re.search(r"optimizer_step: (\d+)", p.read_text()).group(1))
        for p in (pretrained / "save").glob("CKPT+*/brain.ckpt")
    )
    expected = sorted({*range(2, steps + 1, 2), steps})
    log = (pretrained / "train_log.txt").read_text().splitlines()
    logged = [int(line.split(",")[0][6:]) for line in log if line.startswith("step:")]
    assert logged == expected
    records = [
        json.loads(line)
        for line in (pretrained / "train_steps.jsonl").read_text().splitlines()
    ]
    train = [r for r in records if r["stage"] == "train"]
    assert [r["step"] for r in train] == expected
    assert sum(r["steps"] for r in train) == steps
    assert all({"loss", "nce_spec", "mse_spec", "swacl", "lr"} <= set(r) for r in train)
    valid = [r for r in records if r["stage"] == "valid"]
    assert [r["step"] for r in valid] == [steps]  # one pass, one validation
    assert valid[0]["acc_spec"] == pytest.approx(
        read(pretrained / "results.json")["valid"]["acc_spec"]
    )
    assert_png(pretrained / "curves.png")


def test_pretraining_run_gives_embeddings_and_hear(pretrained):
    """SSL evaluation: a pretraining run folder embeds through the HEAR API."""
    from craft_modules.inference import hear

    model = hear.load_model(str(pretrained))
    assert model.tagger.hparams.checkpoint.endswith("(embeddings only)")
    assert model.scene_embedding_size == 2 * 192  # both streams of the tiny model
    emb, ts = hear.get_timestamp_embeddings(torch.rand(2, 32000) - 0.5, model)
    assert emb.shape == (2, ts.shape[1], model.timestamp_embedding_size)
    assert float(ts.max()) < 2000.0 and float(torch.diff(ts[0]).max()) <= 50.0
    scene = hear.get_scene_embeddings(torch.rand(3, 16000) - 0.5, model)
    assert scene.shape == (3, 384) and torch.isfinite(scene).all()
    # The run's inference.yaml gives the same embedding model, the SpeechBrain way.
    assert (pretrained / "inference.yaml").is_file()
    assert_loads_the_same_both_ways(pretrained, pretrained)


@pytest.mark.parametrize("fusion", ["craft", "ast", "swast"])
def test_audioset_finetuning_yamls(fusion, pretrained, audioset_folder, tmp_path):
    root, _ = audioset_folder
    run(
        AUDIOSET,
        f"hparams/finetune_{fusion}.yaml",
        f"--data_folder={root}",
        f"--output_folder={tmp_path}",
        f"--pretrained_path={pretrained}",
        "--batch_size=4",
        "--number_of_epochs=2",
        "--n_classes=4",
        "--fusion_layer=0",
        "--n_bottlenecks=4",
        "--weight_averaging_start=1",
        # AST also trains with the full-set label-balanced sampler.
        f"--balanced_sampling={fusion == 'ast'}",
        *TINY,
    )
    results = read(tmp_path / "results.json")
    assert {"mAP", "mAUC", "d_prime"} <= set(results)
    assert 0.0 <= results["mAP"] <= 1.0 and results["weight_averaged"]
    assert [e["epoch"] for e in results["epochs"]] == [1, 2]
    assert all({"train_loss", "lr"} <= set(e) for e in results["epochs"])
    assert_per_class_ap(tmp_path, results)
    assert_png(tmp_path / "curves.png")
    log = (tmp_path / "log.txt").read_text()
    assert "Pretrained weights: loaded" in log
    assert ("Balanced sampling" in log) == (fusion == "ast")
    # The fine-tuned run's inference.yaml needs no pretraining run: the average.
    text = (tmp_path / "inference.yaml").read_text()
    assert str(pretrained) not in text and "averager.ckpt" in text
    assert_loads_the_same_both_ways(tmp_path, tmp_path)
    assert_ensemble_of_finetuning_runs(tmp_path, results)


def assert_per_class_ap(run_folder, results):
    """results.json's per-class AP is sklearn's on the saved eval predictions."""
    from sklearn.metrics import average_precision_score

    _, scores, targets = load_predictions(str(run_folder / "eval_predictions.npz"))
    names = [e["display_name"] for e in read(run_folder / "data" / "labels.json")]
    per_class, unscored = results["per_class_AP"], results["unscored_classes"]
    assert sorted([*per_class, *unscored]) == sorted(names)
    for k, name in enumerate(names):
        positives = int((targets[:, k] > 0.5).sum())
        if name in unscored:
            assert positives in (0, len(targets))
        else:
            expected = average_precision_score(targets[:, k] > 0.5, scores[:, k])
            assert per_class[name] == pytest.approx(expected)
    assert sum(per_class.values()) / len(per_class) == pytest.approx(results["mAP"])
    assert_png(run_folder / "per_class_ap.png")


#: The AudioSet fine-tuning runs made so far in this session.
FINETUNING_RUNS = []


def assert_ensemble_of_finetuning_runs(run_folder, results):
    """The run saved its final evaluation's scores; ensemble.py averages two runs.

    The run is ensembled with the previous fine-tuning run of the session
    (with itself when it is the first): the ensemble's per-run metrics are
    those of each run's results.json, its own those of the mean scores.
    """
    ids, scores, targets = load_predictions(str(run_folder / "eval_predictions.npz"))
    assert len(ids) == results["epochs"][-1]["n_clips"]
    assert scores.min() >= 0.0 and scores.max() <= 1.0  # sigmoid scores
    # The saved scores are those of the final (weight-averaged) evaluation.
    assert multilabel_metrics(scores, targets)["mAP"] == pytest.approx(results["mAP"])
    FINETUNING_RUNS.append((run_folder, results))
    second, second_results = FINETUNING_RUNS[-1]
    first, first_results = FINETUNING_RUNS[-2 if len(FINETUNING_RUNS) > 1 else -1]
    out = run_folder / "ensemble"
    proc = run(ENSEMBLE, first, second, f"--output_folder={out}")
    assert "Ensemble of 2 runs" in proc.stdout
    written = read(out / "ensemble_results.json")
    assert [r["mAP"] for r in written["per_run"]] == pytest.approx(
        [first_results["mAP"], second_results["mAP"]]
    )
    mean = sum(
        load_predictions(str(folder / "eval_predictions.npz"))[1].astype("float64")
        for folder in (first, second)
    )
    expected = multilabel_metrics(mean / 2, targets)
    assert written["ensemble"]["mAP"] == pytest.approx(expected["mAP"])


@pytest.mark.parametrize("yaml", ["craft", "ast", "swast"])
def test_esc50_yamls(yaml, esc50_folder, tmp_path):
    run(
        ESC50,
        f"hparams/{yaml}.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={tmp_path}",
        "--folds=[1,3]",
        "--batch_size=4",
        "--number_of_epochs=1",
        "--fusion_layer=0",
        "--n_bottlenecks=4",
        *TINY,
    )
    results = read(tmp_path / "results.json")
    assert set(results["per_fold"]) == {"1", "3"}
    # n_classes: auto follows the 3 prepared labels and is recorded per fold.
    recorded = (tmp_path / "fold_3" / "hyperparams.yaml").read_text()
    assert re.search(r"^n_classes: 3\b", recorded, re.M)
    mean = sum(results["per_fold"].values()) / 2
    assert results["mean_accuracy"] == pytest.approx(mean)
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
    matrix = read(tmp_path / "confusion_matrix.json")["matrix"]
    assert sum(map(sum, matrix)) == 6  # 3 held-out clips in each of the 2 folds
    # The summary's curves (every fold and their mean) and each fold's own.
    for folder in (tmp_path, tmp_path / "fold_1", tmp_path / "fold_3"):
        assert_png(folder / "curves.png")


def test_esc50_from_inside_the_recipe_folder_with_a_pretrained_model(
    esc50_folder, pretrained, tmp_path
):
    run(
        "train.py",
        "hparams/craft.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={tmp_path}",
        f"--pretrained_path={pretrained}",
        "--folds=[2]",
        "--batch_size=4",
        "--number_of_epochs=1",
        "--n_classes=3",
        "--fusion_layer=0",
        "--n_bottlenecks=4",
        *TINY,
        cwd=ROOT / "recipes" / "ESC50",
    )
    assert set(read(tmp_path / "results.json")["per_fold"]) == {"2"}


def test_audioset_wapt_ast_fine_tunes_waveform_tokens(
    pretrained, audioset_folder, tmp_path
):
    """Table 8's WaPT-AST row through the recipe: --fusion=wav, MSAE tokens alone."""
    root, _ = audioset_folder
    run(
        AUDIOSET,
        "hparams/finetune_ast.yaml",
        f"--data_folder={root}",
        f"--output_folder={tmp_path}",
        f"--pretrained_path={pretrained}",
        "--fusion=wav",
        "--batch_size=4",
        "--number_of_epochs=1",
        "--weight_averaging_start=1",
        "--n_classes=4",
        *TINY,
    )
    results = read(tmp_path / "results.json")
    assert 0.0 <= results["mAP"] <= 1.0
    assert results["model"]["fusion"] == "wav"
    log = (tmp_path / "log.txt").read_text()
    assert "Pretrained weights: loaded" in log and "kept random" not in log


def test_esc50_wapt_checkpoint_needs_fusion_wav_or_allow_missing(
    esc50_folder, tmp_path
):
    """A WaPT run has no spectrogram stream: SWaB from it fails, naming it."""
    from craft_modules.models.craft import CraftPretrainer

    pre = CraftPretrainer(
        method="wapt", model_size="tiny", depth=1, target_frames=128, mask_patch=10
    )
    checkpoint = tmp_path / "wapt.ckpt"
    torch.save(pre.state_dict(), checkpoint)
    common = [
        f"--data_folder={esc50_folder}",
        f"--pretrained_path={checkpoint}",
        "--folds=[2]",
        "--batch_size=4",
        "--number_of_epochs=1",
        "--n_classes=3",
        "--fusion_layer=0",
        "--n_bottlenecks=4",
        *TINY,
    ]
    proc = run(
        ESC50,
        "hparams/craft.yaml",
        f"--output_folder={tmp_path / 'swab'}",
        *common,
        check=False,
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr  # the recipe logs its exception
    expected = f"checkpoint {checkpoint} lacks modules this model needs: spec_embed."
    assert expected in output
    assert "--allow_missing=[spec_embed]" in output
    # WaPT-AST (Table 8): the waveform tokens alone need nothing it lacks.
    run(
        ESC50,
        "hparams/craft.yaml",
        f"--output_folder={tmp_path / 'wav'}",
        "--fusion=wav",
        *common,
    )
    results = read(tmp_path / "wav" / "results.json")
    assert set(results["per_fold"]) == {"2"}
    log = (tmp_path / "wav" / "fold_2" / "log.txt").read_text()
    assert "Pretrained weights: loaded" in log
    # Opting in: AST with a random spectrogram stream, the encoder from WaPT.
    run(
        ESC50,
        "hparams/ast.yaml",
        f"--output_folder={tmp_path / 'ast'}",
        "--allow_missing=[spec_embed]",
        *common,
    )
    log = (tmp_path / "ast" / "fold_2" / "log.txt").read_text()
    assert "Backbone keys not in the checkpoint (kept random): spec_embed." in log


def test_esc50_from_an_official_ssast_checkpoint(esc50_folder, tmp_path):
    import torch
    from test_official import official_state

    checkpoint = tmp_path / "SSAST-Tiny-Patch-400.pth"
    torch.save(official_state("tiny", pretrain=True, depth=1), checkpoint)
    out = tmp_path / "run"
    run(
        ESC50,
        "hparams/ast.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={out}",
        "--init_from=ssast",
        f"--pretrained_path={checkpoint}",
        "--n_classes=3",
        "--folds=[2]",
        "--number_of_epochs=1",
        "--batch_size=4",
        *TINY,
    )
    log = (out / "fold_2" / "log.txt").read_text()
    assert "Official checkpoint: loaded 18 tensors" in log
    text = (out / "fold_2" / "inference.yaml").read_text()
    assert checkpoint.name not in text and "init_from" not in text
    checkpoint.unlink()  # the run holds every weight it was initialised with
    assert_loads_the_same_both_ways(out, out / "fold_2")
    assert "resized (1): spec_embed.pos_embed" in log


def test_unknown_key_fails_before_any_work(esc50_folder, tmp_path):
    out = tmp_path / "never"
    proc = run(
        ESC50,
        "hparams/craft.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={out}",
        "--not_a_key=3",
        check=False,
    )
    assert proc.returncode != 0
    assert "not_a_key" in proc.stderr
    assert not out.exists()


def test_missing_data_folder_is_named(tmp_path):
    missing = tmp_path / "no_such_ESC-50"
    proc = run(
        ESC50,
        "hparams/ast.yaml",
        f"--data_folder={missing}",
        f"--output_folder={tmp_path / 'o'}",
        *TINY,
        check=False,
    )
    assert proc.returncode != 0
    assert str(missing) in proc.stderr


def test_ddp_pretraining_and_finetuning_with_two_processes(audioset_folder, tmp_path):
    root, info = audioset_folder
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--standalone",
        "--nproc_per_node=2",
    ]
    common = [
        f"--data_folder={root}",
        "--distributed_backend=gloo",
        "--number_of_epochs=1",
        *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for script, yaml, extra in [
        (
            PRETRAIN,
            "hparams/craft.yaml",
            # 5 clips per step over 2 processes: shares of 3 and 2 clips.
            ["--batch_size=5", "--mask_patch=20", "--warmup_steps=2"],
        ),
        (
            AUDIOSET,
            "hparams/finetune_craft.yaml",
            [
                "--batch_size=3",  # shares of 2 and 1 clips
                "--n_classes=4",
                "--fusion_layer=0",
                "--n_bottlenecks=4",
                f"--pretrained_path={tmp_path / 'pre'}",
                "--balanced_sampling=True",  # SpeechBrain wraps it per rank
                "--weight_averaging_start=1",  # the one epoch is averaged
            ],
        ),
    ]:
        out = tmp_path / ("pre" if script == PRETRAIN else "ft")
        proc = subprocess.run(
            [*torchrun, str(script), yaml, f"--output_folder={out}", *common, *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    results = read(tmp_path / "ft" / "results.json")
    n_eval = len(read(tmp_path / "ft" / "data" / "eval.json"))
    # Every evaluation clip counted exactly once across the two ranks.
    assert results["epochs"][0]["n_clips"] == n_eval


def test_killed_run_resumes_and_finishes_its_epochs(esc50_folder, tmp_path):
    args = [
        sys.executable,
        str(ESC50),
        "hparams/ast.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={tmp_path}",
        "--folds=[1]",
        "--batch_size=2",
        "--number_of_epochs=3",
        "--n_classes=3",
        "--ckpt_interval_minutes=0",
        "--ckpt_interval_steps=2",
        *TINY,
    ]
    save = tmp_path / "fold_1" / "save"
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    killed = False
    try:
        import time

        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            metrics = tmp_path / "fold_1" / "epoch_metrics.json"
            if metrics.exists() and any(
                "brain_intra_epoch_ckpt" in p.read_text()
                for p in save.glob("CKPT+*/CKPT.yaml")
            ):
                if (
                    len(read(metrics)) == 1
                ):  # inside epoch 2, after an intra-epoch checkpoint
                    proc.kill()
                    killed = True
                    break
            time.sleep(0.02)
    finally:
        proc.wait()
    assert killed, "the run ended before it could be killed mid-training"
    assert len(read(tmp_path / "fold_1" / "epoch_metrics.json")) == 1
    run(ESC50, *args[2:])
    epochs = [e["epoch"] for e in read(tmp_path / "fold_1" / "epoch_metrics.json")]
    assert epochs == [1, 2, 3]
    log = (tmp_path / "fold_1" / "log.txt").read_text()
    assert "Loading a checkpoint" in log
    assert read(tmp_path / "results.json")["per_fold"]


def test_file_that_turns_unreadable_during_training_is_skipped(esc50_folder, tmp_path):
    import shutil

    data = tmp_path / "ESC-50"
    shutil.copytree(esc50_folder, data)
    common = [
        ESC50,
        "hparams/ast.yaml",
        f"--data_folder={data}",
        f"--output_folder={tmp_path / 'run'}",
        "--folds=[1]",
        "--batch_size=4",
        "--n_classes=3",
        *TINY,
    ]
    run(*common, "--number_of_epochs=1")
    victim = sorted((data / "audio").glob("2-*.wav"))[
        0
    ]  # a training clip of fold 1's run
    victim.write_bytes(b"this is not audio any more")
    proc = run(*common, "--number_of_epochs=2")
    output = (
        proc.stdout
        + proc.stderr
        + (tmp_path / "run" / "fold_1" / "log.txt").read_text()
    )
    assert "Skipping a clip" in output and victim.name in output
    assert [
        e["epoch"] for e in read(tmp_path / "run" / "fold_1" / "epoch_metrics.json")
    ] == [1, 2]


@pytest.fixture(scope="session")
def fsd50k_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "FSD50K"
    make_fsd50k(
        str(root), n_classes=4, n_dev=10, n_eval=4, n_val=3, duration=(0.6, 1.6)
    )
    return root


def test_fsd50k_diverse_joint_training(fsd50k_folder, tmp_path):
    run(
        FSD50K,
        "hparams/diverse.yaml",
        f"--data_folder={fsd50k_folder}",
        f"--output_folder={tmp_path}",
        "--n_classes=4",
        "--batch_size=4",
        "--number_of_epochs=1",
        "--prepare_workers=1",
        *TINY_DIVERSE,
        *QUICK,
    )
    results = read(tmp_path / "results.json")
    assert {"mAP", "mAUC", "d_prime"} <= set(results)
    assert results["model"]["streams"] == ["pitch", "timbre", "waveform", "neuralogram"]
    n_valid = len(read(tmp_path / "data" / "valid.json"))
    assert results["epochs"][0]["n_clips"] == n_valid  # validated on the val split
    # The eval set's scores are saved, those of the reported metrics.
    ids, scores, targets = load_predictions(str(tmp_path / "eval_predictions.npz"))
    assert len(ids) == len(read(tmp_path / "data" / "eval.json"))
    assert multilabel_metrics(scores, targets)["mAP"] == pytest.approx(results["mAP"])
    assert_per_class_ap(tmp_path, results)
    assert_png(tmp_path / "curves.png")


def test_fsd50k_two_stages_and_a_dropped_stream(fsd50k_folder, tmp_path):
    """Stage 1 trains the pitch stream alone; the combine YAML freezes it (others dropped)."""
    common = [
        f"--data_folder={fsd50k_folder}",
        "--n_classes=4",
        "--batch_size=4",
        "--number_of_epochs=1",
        *TINY_DIVERSE,
        *QUICK,
    ]
    run(
        FSD50K,
        "hparams/diverse_pitch.yaml",
        f"--output_folder={tmp_path / 'diverse_pitch' / '1986'}",
        *common,
    )
    stage1 = read(tmp_path / "diverse_pitch" / "1986" / "results.json")
    assert stage1["model"]["streams"] == ["pitch"]
    out = tmp_path / "combine"
    run(
        FSD50K,
        "hparams/diverse_combine.yaml",
        f"--output_folder={out}",
        f"--stage1_folder={tmp_path}",
        "--streams=[pitch]",  # the ablation switch: the other streams are dropped
        *common,
    )
    results = read(out / "results.json")
    assert results["model"]["streams"] == ["pitch"]
    first = torch.load(
        next((tmp_path / "diverse_pitch" / "1986" / "save").glob("CKPT+*/model.ckpt"))
    )
    combined = torch.load(next((out / "save").glob("CKPT+*/model.ckpt")))
    stream_keys = [k for k in first if k.startswith("streams.pitch.")]
    assert stream_keys
    # The frozen stream is the stage-1 stream, unchanged by stage 2.
    assert all(torch.equal(first[k], combined[k]) for k in stream_keys)
    assert not torch.equal(first["head.weight"], combined["head.weight"])
    # The stage-2 run needs its own folder only: it loads, and tags, once the
    # stage-1 runs are gone (its inference.yaml names no stage-1 folder).
    text = (out / "inference.yaml").read_text()
    assert "diverse_pitch" not in text and "stream_checkpoints" not in text
    shutil.rmtree(tmp_path / "diverse_pitch")
    clip = sorted(fsd50k_folder.rglob("*.wav"))[0]
    from craft_modules.inference.tagger import AudioTagger

    from_run, from_hparams = assert_loads_the_same_both_ways(out, out)
    assert from_run.mods.model.freeze_streams and from_run.mods.model.stream_names == [
        "pitch"
    ]
    assert torch.equal(
        from_hparams.mods.model.state_dict()["head.weight"], combined["head.weight"]
    )
    for tagger in (from_run, from_hparams):
        (result,) = tagger.tag_files([str(clip)], top_k=2)
        assert "error" not in result and len(result["labels"]) == 2
        assert {e["label"] for e in result["labels"]} <= set(tagger.labels)
    names = [e["display_name"] for e in read(out / "data" / "labels.json")]
    assert from_run.labels == from_hparams.labels == names
    # A stage-2 run saved before inference.yaml (the model then took the
    # stage-1 paths) loads from its hyperparams.yaml, the paths dropped.
    (out / "inference.yaml").unlink()
    saved = out / "hyperparams.yaml"
    old = re.sub(
        r"^(\s+)freeze_streams: (.*)$",
        r"\1freeze_streams: \2\n\1stream_checkpoints: {pitch: /gone/save}",
        saved.read_text(),
        count=1,
        flags=re.M,
    )
    assert "stream_checkpoints: {pitch: /gone/save}" in old
    saved.write_text(old)
    legacy = AudioTagger.from_run(str(out))
    state = legacy.mods.model.state_dict()
    assert all(torch.equal(state[k], combined[k]) for k in combined)


def test_diverse_yamls_in_esc50_and_audioset(esc50_folder, audioset_folder, tmp_path):
    run(
        ESC50,
        "hparams/diverse.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={tmp_path / 'esc'}",
        "--n_classes=3",
        "--folds=[1]",
        "--number_of_epochs=1",
        "--batch_size=4",
        "--streams=[timbre,waveform]",
        *TINY_DIVERSE,
        *QUICK,
    )
    esc = read(tmp_path / "esc" / "results.json")
    assert "1" in esc["per_fold"] and esc["model"]["streams"] == ["timbre", "waveform"]
    assert_run_tags_and_embeds(tmp_path / "esc", esc50_folder)
    root, _ = audioset_folder
    run(
        AUDIOSET,
        "hparams/finetune_diverse.yaml",
        f"--data_folder={root}",
        f"--output_folder={tmp_path / 'as'}",
        "--n_classes=4",
        "--number_of_epochs=1",
        "--batch_size=4",
        "--weight_averaging_start=1",
        *TINY_DIVERSE,
        *QUICK,
    )
    results = read(tmp_path / "as" / "results.json")
    assert 0.0 <= results["mAP"] <= 1.0 and len(results["model"]["streams"]) == 4
    # A weight-averaged run: inference.yaml loads the average, as from_run does.
    assert "averager.ckpt" in (tmp_path / "as" / "inference.yaml").read_text()
    from_run, _ = assert_loads_the_same_both_ways(tmp_path / "as", tmp_path / "as")
    assert from_run.hparams.checkpoint.startswith("average of")


TINY_CLAR = ["--widths=[8,8,16,16]"]


def assert_loads_the_same_both_ways(run_folder, experiment_folder):
    """``from_run`` and ``from_hparams`` (inference.yaml) give the same weights and outputs."""
    from craft_modules.inference.tagger import AudioTagger

    from_run = AudioTagger.from_run(str(run_folder))
    from_hparams = AudioTagger.from_hparams(source=str(experiment_folder))
    one, two = from_run.mods.model.state_dict(), from_hparams.mods.model.state_dict()
    assert one.keys() == two.keys()
    if from_run.hparams.checkpoint.endswith("(embeddings only)"):
        one = {
            k: v for k, v in one.items() if not k.startswith("mlp_head.")
        }  # new head
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert from_run.labels == from_hparams.labels
    assert from_run.hparams.multilabel == from_hparams.hparams.multilabel
    assert from_run.sample_rate == from_hparams.sample_rate
    wav = torch.rand(1, 16000) - 0.5
    torch.testing.assert_close(
        from_run.encode_batch(wav), from_hparams.encode_batch(wav)
    )
    return from_run, from_hparams


def assert_run_tags_and_embeds(run_folder, esc50_folder):
    """The inference API and HEAR work on any model's run folder."""
    from craft_modules.inference import hear
    from craft_modules.inference.tagger import AudioTagger

    tagger = AudioTagger.from_run(str(run_folder))
    labels = read(run_folder / "data" / "labels.json")
    fold = sorted(run_folder.glob("fold_*"))[0]
    assert (fold / "inference.yaml").is_file()
    assert_loads_the_same_both_ways(run_folder, fold)
    clip = sorted((esc50_folder / "audio").glob("*.wav"))[0]
    (result,) = tagger.tag_files([str(clip)], top_k=2)
    assert {e["label"] for e in result["labels"]} <= set(labels)
    model = hear.HearModel(tagger)
    emb, ts = hear.get_timestamp_embeddings(torch.rand(2, 24000) - 0.5, model)
    assert emb.shape[:2] == ts.shape and float(ts.max()) < 1500.0
    assert float(torch.diff(ts[0]).max()) <= 50.0


@pytest.mark.parametrize(
    "yaml", ["clar", "clar_raw", "clar_supervised", "clar_selfsupervised"]
)
def test_esc50_clar_yamls(yaml, esc50_folder, tmp_path):
    run(
        ESC50,
        f"hparams/{yaml}.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={tmp_path}",
        "--n_classes=3",
        "--folds=[1]",
        "--number_of_epochs=1",
        "--batch_size=4",
        "--label_fraction=0.5",
        *TINY_CLAR,
        *QUICK,
    )
    results = read(tmp_path / "results.json")
    assert 0.0 <= results["per_fold"]["1"] <= 1.0
    assert results["model"]["encoder"] == (
        "raw" if yaml == "clar_raw" else "spectrogram"
    )
    log = (tmp_path / "fold_1" / "log.txt").read_text()
    assert "6 of 12 training clips keep their labels" in log
    if yaml == "clar":
        assert_run_tags_and_embeds(tmp_path, esc50_folder)
    train_log = (tmp_path / "fold_1" / "train_log.txt").read_text()
    part = {"clar_supervised": "train ce", "clar_selfsupervised": "train probe_ce"}
    assert part.get(yaml, "train nt_xent") in train_log
    # The loss parts are kept per epoch and drawn with the loss.
    epoch = read(tmp_path / "fold_1" / "epoch_metrics.json")[0]
    assert part.get(yaml, "train nt_xent").replace(" ", "_") in epoch
    assert_png(tmp_path / "fold_1" / "curves.png")


def test_esc50_clar_trains_with_speechbrain_augmenters_in_the_view_slot(
    esc50_folder, tmp_path
):
    """SpeechBrain's Augmenter (DropChunk + DropFreq) fills CLAR's augmentation chain."""
    # Two keys: HyperPyYAML re-dumps a one-key tagged flow mapping in a flow
    # list without its braces, which no longer parses.
    augmenter = (
        "!new:speechbrain.augment.augmenter.Augmenter {augment_prob: 1.0, augmentations: ["
        "!new:speechbrain.augment.time_domain.DropChunk "
        "{drop_length_low: 1600, drop_length_high: 3200}, "
        "!new:speechbrain.augment.time_domain.DropFreq {}]}"
    )
    run(
        ESC50,
        "hparams/clar.yaml",
        f"--data_folder={esc50_folder}",
        f"--output_folder={tmp_path}",
        "--n_classes=3",
        "--folds=[1]",
        "--number_of_epochs=1",
        "--batch_size=4",
        f"--augmentation={{augmentations: [{augmenter}]}}",
        *TINY_CLAR,
        *QUICK,
    )
    saved = (tmp_path / "fold_1" / "hyperparams.yaml").read_text()
    assert "speechbrain.augment.augmenter.Augmenter" in saved
    assert "speechbrain.augment.time_domain.DropChunk" in saved
    results = read(tmp_path / "results.json")
    assert 0.0 <= results["per_fold"]["1"] <= 1.0
    train_log = (tmp_path / "fold_1" / "train_log.txt").read_text()
    losses = [float(x) for x in re.findall(r"train loss: ([-+.e0-9]+)", train_log)]
    assert losses and all(math.isfinite(x) and x > 0 for x in losses)


def test_clar_supervised_under_ddp_with_two_processes(esc50_folder, tmp_path):
    """Every parameter gets a gradient (DDP) and labels are chosen alike on both ranks."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(ESC50),
            "hparams/clar_supervised.yaml",
            f"--data_folder={esc50_folder}",
            f"--output_folder={tmp_path}",
            "--distributed_backend=gloo",
            "--n_classes=3",
            "--folds=[1]",
            "--number_of_epochs=2",
            "--batch_size=4",
            "--label_fraction=0.5",
            *TINY_CLAR,
            *QUICK,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    results = read(tmp_path / "results.json")
    assert [e["n_clips"] for e in read(tmp_path / "fold_1" / "epoch_metrics.json")] == [
        3,
        3,
    ]
    assert 0.0 <= results["per_fold"]["1"] <= 1.0


def test_audioset_clar_yaml(audioset_folder, tmp_path):
    root, _ = audioset_folder
    run(
        AUDIOSET,
        "hparams/finetune_clar.yaml",
        f"--data_folder={root}",
        f"--output_folder={tmp_path}",
        "--n_classes=4",
        "--number_of_epochs=1",
        "--batch_size=4",
        *TINY_CLAR,
        *QUICK,
    )
    results = read(tmp_path / "results.json")
    assert 0.0 <= results["mAP"] <= 1.0 and results["model"]["class"] == "ClarModel"
