"""SSAST evaluation statistics, DDP gathering/sharding and confusion matrices.

scikit-learn and scipy are imported inside the tests that need them, so that
the processes spawned by the DDP test start faster.
"""

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from craft_modules.metrics import (
    EvalShardSampler,
    PredictionCollector,
    accuracy,
    multilabel_metrics,
    save_confusion_matrix,
)


def _random_multilabel(n=60, c=7, seed=0):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < 0.3).astype(np.float32)
    targets[0] = 1.0  # every class has positives
    targets[1] = 0.0  # ... and negatives
    scores = rng.random((n, c)).astype(np.float32) + 0.5 * targets
    return scores, targets


def test_map_and_mauc_match_a_per_class_sklearn_loop():
    from scipy.stats import norm
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores, targets = _random_multilabel()
    stats = multilabel_metrics(torch.from_numpy(scores), torch.from_numpy(targets))
    aps = [average_precision_score(targets[:, k], scores[:, k]) for k in range(7)]
    aucs = [roc_auc_score(targets[:, k], scores[:, k]) for k in range(7)]
    assert stats["mAP"] == pytest.approx(np.mean(aps), abs=1e-12)
    assert stats["mAUC"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert stats["d_prime"] == pytest.approx(math.sqrt(2) * norm.ppf(np.mean(aucs)))
    expected_acc = np.mean(targets.argmax(1) == scores.argmax(1))
    assert stats["accuracy"] == pytest.approx(expected_acc)
    assert stats["n_classes_scored"] == 7
    assert all(type(v) is float for v in stats.values())
    # numpy input gives the same result
    assert multilabel_metrics(scores, targets) == stats


def test_class_without_positives_or_negatives_is_skipped_not_nan():
    from sklearn.metrics import average_precision_score

    scores, targets = _random_multilabel()
    targets[:, 2] = 0.0  # no positives
    targets[:, 5] = 1.0  # no negatives
    stats = multilabel_metrics(scores, targets)
    kept = [0, 1, 3, 4, 6]
    aps = [average_precision_score(targets[:, k], scores[:, k]) for k in kept]
    assert stats["n_classes_scored"] == 5
    assert not any(math.isnan(v) for v in stats.values())
    assert stats["mAP"] == pytest.approx(np.mean(aps))


def test_soft_mixup_targets_are_binarised():
    scores, targets = _random_multilabel()
    soft = targets * 0.8 + (1 - targets) * 0.2
    assert multilabel_metrics(scores, soft)["mAP"] == pytest.approx(
        multilabel_metrics(scores, targets)["mAP"]
    )


def test_perfect_scores_and_class_index_targets():
    labels = torch.tensor([0, 1, 2, 1, 0, 2])
    scores = torch.nn.functional.one_hot(labels, 3).float() * 0.9 + 0.05
    stats = multilabel_metrics(scores, labels)
    assert stats["mAP"] == 1.0 and stats["mAUC"] == 1.0
    assert stats["accuracy"] == 1.0
    assert stats["d_prime"] == math.inf


def test_no_scorable_class_reports_chance_not_nan():
    stats = multilabel_metrics(torch.rand(1, 4), torch.tensor([[1.0, 0, 0, 0]]))
    assert stats["n_classes_scored"] == 0
    assert (stats["mAP"], stats["mAUC"], stats["d_prime"]) == (0.0, 0.5, 0.0)


def test_single_label_accuracy():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    assert accuracy(scores, torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)
    assert accuracy(scores, torch.eye(3)[[1, 0, 2]]) == 1.0
    with pytest.raises(ValueError):
        accuracy(scores, torch.tensor([1, 0]))


def test_collector_deduplicates_keeps_first_and_sorts():
    collector = PredictionCollector()
    collector.append(["c", "a"], torch.tensor([[3.0], [1.0]]), torch.tensor([3, 1]))
    collector.append(("b", "a"), torch.tensor([[2.0], [9.0]]), torch.tensor([2, 9]))
    assert len(collector) == 4
    ids, scores, targets = collector.gather()
    assert ids == ["a", "b", "c"]
    assert scores.squeeze(1).tolist() == [1.0, 2.0, 3.0]
    assert targets.tolist() == [1, 2, 3]
    collector.reset()
    assert len(collector) == 0
    ids, scores, _ = collector.gather()
    assert ids == [] and scores.numel() == 0
    with pytest.raises(ValueError):
        collector.append(["x"], torch.zeros(2, 1), torch.zeros(2))


def test_collector_detaches_to_cpu():
    collector = PredictionCollector()
    scores = torch.rand(2, 3, requires_grad=True)
    collector.append(["a", "b"], scores * 2, torch.zeros(2, 3))
    _, gathered, _ = collector.gather()
    assert not gathered.requires_grad and gathered.device.type == "cpu"


def test_shard_sampler_partitions_without_distributed():
    assert list(EvalShardSampler(list(range(7)))) == list(range(7))
    shards = [list(EvalShardSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    assert [len(EvalShardSampler(10, rank=r, world_size=3)) for r in range(3)] == [
        4,
        3,
        3,
    ]
    with pytest.raises(ValueError):
        EvalShardSampler(10, rank=3, world_size=3)


N_CLIPS = 11


def _ddp_worker(rank, world, init_file, results):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        sampler = EvalShardSampler(N_CLIPS)
        indices = list(sampler)
        collector = PredictionCollector()
        loader = torch.utils.data.DataLoader(
            list(range(N_CLIPS)), sampler=sampler, batch_size=2
        )
        for batch in loader:
            ids = [f"utt{i:03d}" for i in batch.tolist()]
            scores = batch.float()[:, None].repeat(1, 3)
            collector.append(ids, scores, batch)
        if rank == 1:  # a padding sampler would repeat a clip of another rank
            collector.append(["utt000"], torch.full((1, 3), -1.0), torch.tensor([0]))
        ids, scores, targets = collector.gather()
        results[rank] = (indices, len(sampler), ids, scores, targets)
    finally:
        dist.destroy_process_group()


def test_ddp_shards_partition_and_gather_returns_every_clip_once(tmp_path):
    manager = mp.Manager()
    results = manager.dict()
    init_file = os.path.join(tmp_path, "init")
    mp.spawn(_ddp_worker, args=(2, init_file, results), nprocs=2, join=True)
    results = dict(results)
    shard0, shard1 = results[0][0], results[1][0]
    assert set(shard0).isdisjoint(shard1)
    assert sorted(shard0 + shard1) == list(range(N_CLIPS))
    assert (results[0][1], results[1][1]) == (len(shard0), len(shard1))
    expected_ids = [f"utt{i:03d}" for i in range(N_CLIPS)]
    for rank in (0, 1):
        _, _, ids, scores, targets = results[rank]
        assert ids == expected_ids
        assert targets.tolist() == list(range(N_CLIPS))
        # the duplicate from rank 1 comes after rank 0's original: first kept
        assert scores[:, 0].tolist() == [float(i) for i in range(N_CLIPS)]


def test_confusion_matrix_json_and_png(tmp_path):
    targets = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    path = os.path.join(tmp_path, "plots", "cm.png")
    matrix = save_confusion_matrix(targets, predictions, ["a", "b", "c"], path)
    assert matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    with open(os.path.join(tmp_path, "plots", "cm.json")) as handle:
        saved = json.load(handle)
    assert saved["matrix"] == matrix and saved["labels"] == ["a", "b", "c"]
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    # scores are reduced with argmax; many classes still plot
    scores = torch.nn.functional.one_hot(predictions, 40).float()
    matrix = save_confusion_matrix(
        targets, scores, [f"class{k}" for k in range(40)], str(tmp_path / "big.png")
    )
    assert len(matrix) == 40 and sum(map(sum, matrix)) == 6
    assert os.path.getsize(tmp_path / "big.png") > 0
    with pytest.raises(ValueError):
        save_confusion_matrix([0, 5], [0, 1], ["a", "b"], str(tmp_path / "x.png"))


def test_confusion_matrix_without_matplotlib_writes_json_and_warns_once(
    tmp_path, monkeypatch, caplog
):
    """matplotlib is the optional ``plot`` extra: no PNG, one warning, the JSON as ever."""
    import sys

    from craft_modules import metrics

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    monkeypatch.setattr(metrics, "_warned_no_matplotlib", False)
    with caplog.at_level("WARNING", logger="craft_modules.metrics"):
        for name in ("first", "second"):
            matrix = save_confusion_matrix(
                [0, 1, 1], [0, 1, 0], ["dog", "cat"], str(tmp_path / f"{name}.png")
            )
            assert matrix == [[1, 0], [1, 1]]
            saved = json.loads((tmp_path / f"{name}.json").read_text())
            assert saved == {"labels": ["dog", "cat"], "matrix": matrix}
            assert not (tmp_path / f"{name}.png").exists()
    warned = [r for r in caplog.records if "matplotlib is not installed" in r.message]
    assert len(warned) == 1 and "craft-modules[plot]" in warned[0].message
