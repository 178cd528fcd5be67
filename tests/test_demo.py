"""The demo's settings (demo/run_demo.py): a test fold worth its figures, reproducible runs.

The demo itself takes minutes and is not run here.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import speechbrain as sb

from craft_modules.testing.scripts import load_script
from craft_modules.testing.synth import make_esc50

demo = load_script("demo/run_demo.py")


def test_test_fold_has_at_least_64_clips(tmp_path):
    """Counted on the generator's fold layout (one class of the demo's size, tiny clips)."""
    settings = dict(demo.DATA, n_classes=1, duration=0.01)
    rows = make_esc50(str(tmp_path), sample_rate=8000, **settings)
    per_class = sum(row["fold"] in demo.TEST_FOLDS for row in rows)
    assert demo.DATA["n_classes"] * per_class == demo.test_clips() >= 64


def test_every_stage_runs_without_wall_clock_checkpoints_or_workers(tmp_path):
    stages = demo.stage_commands(str(tmp_path))
    assert [key for key, _, _ in stages] == ["pretrain", "craft", "ast"]
    for _, _, args in stages:
        hparams_file, run_opts, overrides = sb.parse_arguments(args[1:])
        assert run_opts["ckpt_interval_minutes"] == 0, args[0]
        assert "num_workers: 0" in overrides
    finetunes = [args for key, _, args in stages if key != "pretrain"]
    options = [
        sorted(a for a in args if "pretrained_path" not in a) for args in finetunes
    ]
    assert [o for o in options[0] if "yaml" not in o and "output" not in o] == [
        o for o in options[1] if "yaml" not in o and "output" not in o
    ], "AST and CRAFT must be fine-tuned with the same options"


def test_stage_environment_pins_threads_and_hash_seed():
    env = demo.stage_environment(1, base={"OMP_NUM_THREADS": "8", "HOME": "/h"})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["PYTHONHASHSEED"] == "0" and env["HOME"] == "/h"


def test_dataset_digest_follows_the_bytes(tmp_path):
    make_esc50(str(tmp_path / "a"), n_classes=2, clips_per_class=5, duration=0.05)
    make_esc50(str(tmp_path / "b"), n_classes=2, clips_per_class=5, duration=0.05)
    first = demo.dataset_digest(str(tmp_path / "a"))
    assert first == demo.dataset_digest(str(tmp_path / "b"))
    clip = next((tmp_path / "b" / "audio").iterdir())
    data = bytearray(clip.read_bytes())
    data[-1] ^= 1
    clip.write_bytes(bytes(data))
    assert demo.dataset_digest(str(tmp_path / "b")) != first


def test_curves_of_a_decaying_learning_rate_are_drawn(tmp_path):
    """The demo's schedule (x0.85 per epoch from epoch 6) spans more than 20x in lr.

    The learning-rate panel stays linear (from 0, in powers of ten): a log
    scale there made matplotlib refuse the scientific tick labels, and the
    fine-tuning stopped at its last epoch.
    """
    from craft_modules.plots import plot_epoch_curves

    history = [
        {
            "epoch": e,
            "loss": 1 / e,
            "train_loss": 2 / e,
            "accuracy": e / 25,
            "lr": 1e-4 * 0.85 ** max(0, e - 6),
        }
        for e in range(1, 26)
    ]
    assert plot_epoch_curves(history, str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 0
