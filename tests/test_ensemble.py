"""Ensembles of runs (the CRAFT paper's Table 1) and weight averaging that always runs.

``recipes/AudioSet/ensemble.py`` averages the saved evaluation scores of
several runs; ``WeightAverager.check_range`` refuses, at the start of fitting,
an averaging range that no epoch falls in; the documented full-set schedule
averages epochs 1..5 as AST's full-set recipe does.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import speechbrain as sb
import torch

from craft_modules.metrics import load_predictions, multilabel_metrics, save_predictions
from craft_modules.testing.scripts import load_script
from craft_modules.training.averaging import WeightAverager
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.experiment import load_hparams

ROOT = Path(__file__).resolve().parents[1]
ENSEMBLE = ROOT / "recipes" / "AudioSet" / "ensemble.py"
FINETUNE_YAMLS = ("finetune_craft", "finetune_ast", "finetune_swast")
#: The full-set options the README and the fine-tuning YAML headers give.
FULL_SET = [
    "--train_splits=[balanced_train,unbalanced_train]",
    "--balanced_sampling=True",
    "--lr=0.00001",
    "--number_of_epochs=5",
    "--weight_averaging_start=1",
    "--lr_schedule={start: 2, step: 1}",
]


def load_ensemble_script():
    return load_script(ENSEMBLE, "audioset_ensemble")


IDS = ["c0", "c1", "c2", "c3", "c4", "c5"]
TARGETS = np.array(
    [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]],
    dtype=np.float32,
)
SCORES_A = np.array(
    [
        [0.9, 0.2, 0.3],
        [0.6, 0.7, 0.1],
        [0.2, 0.6, 0.4],
        [0.4, 0.1, 0.8],
        [0.7, 0.5, 0.6],
        [0.1, 0.3, 0.2],
    ],
    dtype=np.float32,
)
SCORES_B = np.array(
    [
        [0.3, 0.1, 0.9],
        [0.2, 0.4, 0.3],
        [0.8, 0.9, 0.2],
        [0.5, 0.6, 0.4],
        [0.15, 0.2, 0.1],
        [0.6, 0.8, 0.7],
    ],
    dtype=np.float32,
)


def write_run(folder, ids, scores, targets):
    """A run folder holding only what ensemble.py reads."""
    save_predictions(str(folder / "eval_predictions.npz"), ids, scores, targets)
    return folder


def test_ensemble_of_two_runs_scores_the_mean_of_their_predictions(tmp_path, capsys):
    script = load_ensemble_script()
    run_a = write_run(tmp_path / "runs" / "a", IDS, SCORES_A, TARGETS)
    # Run b lists its clips in another order: they are aligned by id.
    order = [3, 0, 5, 1, 4, 2]
    run_b = write_run(
        tmp_path / "runs" / "b",
        [IDS[i] for i in order],
        SCORES_B[order],
        TARGETS[order],
    )
    script.main([str(run_a), str(run_b / "eval_predictions.npz")])

    # Written next to the run folders by default.
    written = json.loads((tmp_path / "runs" / "ensemble_results.json").read_text())
    mean = (SCORES_A.astype(np.float64) + SCORES_B.astype(np.float64)) / 2
    expected = multilabel_metrics(mean, TARGETS)
    for key in ("mAP", "mAUC", "d_prime"):
        assert written["ensemble"][key] == pytest.approx(expected[key], abs=1e-9)
    singles = [multilabel_metrics(s, TARGETS)["mAP"] for s in (SCORES_A, SCORES_B)]
    assert [run["mAP"] for run in written["per_run"]] == pytest.approx(singles)
    # The data are chosen so that the mean scores neither run's mAP.
    assert all(abs(written["ensemble"]["mAP"] - s) > 0.01 for s in singles)
    assert written["runs"] == [
        str(run_a / "eval_predictions.npz"),
        str(run_b / "eval_predictions.npz"),
    ]
    assert written["n_clips"] == len(IDS)
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert f"mAP {expected['mAP']:.4f}" in summary[0] and "2 runs" in summary[0]


def test_ensemble_output_folder_option(tmp_path):
    script = load_ensemble_script()
    run_a = write_run(tmp_path / "a", IDS, SCORES_A, TARGETS)
    run_b = write_run(tmp_path / "b", IDS, SCORES_B, TARGETS)
    script.main([str(run_a), str(run_b), f"--output_folder={tmp_path / 'out'}"])
    assert (tmp_path / "out" / "ensemble_results.json").is_file()


def test_runs_that_differ_in_clips_or_targets_are_an_error_naming_the_run(tmp_path):
    script = load_ensemble_script()
    run_a = write_run(tmp_path / "a", IDS, SCORES_A, TARGETS)
    fewer = write_run(
        tmp_path / "fewer",
        IDS[:2] + IDS[3:],
        SCORES_B[[0, 1, 3, 4, 5]],
        TARGETS[[0, 1, 3, 4, 5]],
    )
    with pytest.raises(ValueError, match=r"fewer.*clip 'c2' is missing from .*fewer"):
        script.main([str(run_a), str(fewer)])
    other = TARGETS.copy()
    other[4, 2] = 1.0
    other[5, 0] = 1.0
    relabelled = write_run(tmp_path / "relabelled", IDS, SCORES_B, other)
    with pytest.raises(ValueError, match=r"relabelled.*other targets .* clip 'c4'"):
        script.main([str(run_a), str(relabelled)])
    assert not (tmp_path / "ensemble_results.json").exists()
    with pytest.raises(FileNotFoundError, match="missing_run"):
        script.main([str(run_a), str(tmp_path / "missing_run")])


def test_ensemble_script_docstring_examples():
    script = load_ensemble_script()
    result = doctest.testmod(script, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_saved_predictions_read_back_exactly(tmp_path):
    path = tmp_path / "p.npz"
    scores = torch.rand(4, 3)
    save_predictions(
        str(path), ["x", "y", "z", "w"], scores, torch.eye(3)[[0, 1, 2, 0]]
    )
    ids, read_scores, targets = load_predictions(str(path))
    assert ids == ["x", "y", "z", "w"]
    assert np.array_equal(read_scores, scores.numpy())
    assert targets.tolist() == torch.eye(3)[[0, 1, 2, 0]].tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary left


# --- weight averaging ---------------------------------------------------------


def averaging_brain(start, epochs, use=True):
    return ClassifierBrain(
        modules={"model": torch.nn.Linear(2, 1, bias=False)},
        hparams={
            "loss": "bce",
            "use_weight_averaging": use,
            "weight_averager": WeightAverager(start_epoch=start, end_epoch=epochs),
            "number_of_epochs": epochs,
        },
        run_opts={"device": "cpu"},
    )


def test_averaging_start_beyond_the_epochs_is_an_error_at_fit_start():
    brain = averaging_brain(start=6, epochs=5)
    with pytest.raises(ValueError) as err:
        brain.on_fit_start()
    message = str(err.value)
    assert "weight_averaging_start (6)" in message
    assert "number_of_epochs (5)" in message
    # Without averaging the same range is not used, so it is no error.
    averaging_brain(start=6, epochs=5, use=False).on_fit_start()


def test_two_epochs_averaged_from_epoch_one_evaluate_the_average():
    brain = averaging_brain(start=1, epochs=2)
    brain.on_fit_start()  # the range is accepted
    model = brain.modules.model
    for epoch, weights in [(1, [1.0, 2.0]), (2, [3.0, 6.0])]:
        model.weight.data.copy_(torch.tensor([weights]))
        brain.hparams.weight_averager.update(model, epoch)
    brain.on_evaluate_start(max_key="mAP")
    assert brain.weight_averaged is True
    assert model.weight.data.tolist() == [[2.0, 4.0]]


def full_set_hparams(extra_options):
    hparams_file, _, overrides = sb.parse_arguments(
        [str(ROOT / "recipes/AudioSet/hparams/finetune_ast.yaml"), *extra_options]
    )
    tiny = "\n".join(
        [
            "data_folder: /data/AudioSet",
            "output_folder: /tmp/unused",
            "model_size: tiny",
        ]
        + ["depth: 1", "n_classes: 4"]
    )
    return load_hparams(hparams_file, overrides + "\n" + tiny)


def test_the_documented_full_set_schedule_averages_epochs_one_to_five():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in FINETUNE_YAMLS:
        header = (ROOT / "recipes/AudioSet/hparams" / f"{name}.yaml").read_text()
        header = header.split("\n\n")[0]
        for option in FULL_SET:
            assert option in header, (name, option)
            assert option in readme, option
    hparams = full_set_hparams(FULL_SET)
    averager = hparams["weight_averager"]
    assert (averager.start_epoch, averager.end_epoch) == (1, 5)
    averager.check_range(hparams["number_of_epochs"])
    # AST's full set: lr 1e-5, halved after epochs 2, 3 and 4.
    lrs = [hparams["lr_schedule"].lr_at(e) for e in range(1, 6)]
    assert lrs == pytest.approx([1e-5, 1e-5, 5e-6, 2.5e-6, 1.25e-6])
    # Without the start, the 5-epoch schedule would average nothing: refused.
    shortened = full_set_hparams([o for o in FULL_SET if "averaging" not in o])
    with pytest.raises(ValueError, match="weight_averaging_start"):
        shortened["weight_averager"].check_range(shortened["number_of_epochs"])
