"""SSAST masking: counts, uniqueness, range and the official cluster distribution."""

import pytest
import torch

from craft_modules.nn.masking import cluster_mask_ids, mask_ids, random_mask_ids


@pytest.mark.parametrize("mask_patch", [100, 250, 400, 509])
def test_cluster_masks_are_unique_sorted_and_in_range(mask_patch):
    ids = cluster_mask_ids(16, 8, 64, mask_patch)
    assert ids.shape == (16, mask_patch)
    assert (ids > 0).all() and (ids < 512).all()  # id 0 is never masked
    assert (ids[:, 1:] > ids[:, :-1]).all()  # strictly increasing: unique


def test_cluster_masks_follow_the_official_row_distribution():
    # Measured on the official generator (gen_maskid_patch of YuanGongND/ssast), 400 of 8x64.
    official_rows = torch.tensor([0.42, 0.67, 0.81, 0.87, 0.89, 0.89, 0.89, 0.82])
    ids = cluster_mask_ids(3000, 8, 64, 400)
    mask = torch.zeros(3000, 512).scatter_(1, ids, 1.0).view(3000, 8, 64)
    assert torch.allclose(mask.mean(dim=(0, 2)), official_rows, atol=0.02)
    columns = mask.mean(dim=(0, 1))
    assert abs(columns[0] - 0.70) < 0.03 and abs(columns[32] - 0.79) < 0.03
    # Clusters: a masked patch usually has a masked neighbour below or right.
    neighbour = mask[:, :-1, :-1] * (mask[:, 1:, :-1] + mask[:, :-1, 1:]).clamp(max=1)
    assert neighbour.sum() / mask[:, :-1, :-1].sum() > 0.95


def test_random_masks_for_frame_models():
    ids = mask_ids(8, 1, 512, 400, cluster=False)
    assert ids.shape == (8, 400)
    assert all(len(set(row.tolist())) == 400 for row in ids)
    assert (ids >= 0).all() and (ids < 512).all()
    counts = torch.zeros(512).index_add_(
        0, random_mask_ids(2000, 512, 400).flatten(), torch.ones(800000)
    )
    assert counts.min() / 2000 > 0.7 and counts.max() / 2000 < 0.86  # uniform, p = 0.78


def test_too_many_masked_patches_is_a_clear_error():
    with pytest.raises(ValueError, match="too large"):
        cluster_mask_ids(1, 2, 10, 19)
    with pytest.raises(ValueError, match="positive integer"):
        random_mask_ids(1, 10, 0)


def test_a_clip_whose_cluster_pool_runs_out_is_completed_without_a_sync():
    from craft_modules.nn.masking import _cover_until, _lowest_ids

    side = torch.full((4, 1), 3)
    rows = torch.arange(5).repeat_interleave(5)
    cols = torch.arange(5).repeat(5)
    in_square = (rows[None, :] < side) & (cols[None, :] < side)
    # One cluster start per clip covers at most 9 ids: 40 must be completed.
    selected = _cover_until(4, 96, 40, rows * 12 + cols, in_square, 1, None)
    assert (selected.sum(dim=1) == 40).all()
    assert not selected[:, 0].any()
    ids = _lowest_ids(selected, 40)
    assert (ids[:, 1:] > ids[:, :-1]).all() and (ids > 0).all()


def test_high_mask_ratios_on_small_grids_give_exact_counts():
    ids = cluster_mask_ids(64, 8, 12, 90)
    assert ids.shape == (64, 90)
    assert (ids[:, 1:] > ids[:, :-1]).all() and (ids > 0).all() and (ids < 96).all()
