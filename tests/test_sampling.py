"""Tests of dataloader/sampling.py against hand-computed positions and boxes."""
import numpy as np
import pytest

from dataloader.sampling import (random_crop_box, sample_test_positions, sample_train_positions,
                                 stack_indices, usable_positions)
from dataloader.sampling import test_crop_boxes as crop_boxes


def test_usable_positions():
    assert usable_positions(30, 1) == 30
    assert usable_positions(30, 10) == 21
    assert usable_positions(10, 10) == 1
    assert usable_positions(5, 10) == 1  # shorter than the span: position 0, clamped later
    assert usable_positions(0, 1) == 1


@pytest.mark.parametrize("num_frames,span,segments", [
    # hand-computed: usable 30 -> [0,10) [10,20) [20,30); usable 21 -> [0,7) [7,14) [14,21)
    (30, 1, [(0, 10), (10, 20), (20, 30)]),
    (30, 10, [(0, 7), (7, 14), (14, 21)]),
])
def test_train_positions_in_own_segment_and_cover_it(num_frames, span, segments):
    rng = np.random.default_rng(0)
    draws = np.stack([sample_train_positions(num_frames, 3, span, rng) for _ in range(2000)])
    assert draws.shape == (2000, 3)
    assert np.issubdtype(draws.dtype, np.integer)
    for k, (lo, hi) in enumerate(segments):
        assert draws[:, k].min() >= lo and draws[:, k].max() < hi
        assert set(draws[:, k].tolist()) == set(range(lo, hi))  # every position is reachable
    usable = num_frames - span + 1
    assert set(draws.ravel().tolist()) == set(range(usable))


@pytest.mark.parametrize("num_frames,span", [(2, 1), (1, 1), (5, 10), (10, 10), (11, 10), (3, 3)])
def test_train_positions_short_videos_stay_in_range(num_frames, span):
    rng = np.random.default_rng(1)
    usable = max(num_frames - span + 1, 1)
    for _ in range(300):
        p = sample_train_positions(num_frames, 3, span, rng)
        assert p.shape == (3,)
        assert (p >= 0).all() and (p < usable).all()
        assert (np.diff(p) >= 0).all()  # segments stay in temporal order
        assert (p + span - 1 <= max(num_frames - 1, span - 1)).all()
        idx = stack_indices(int(p[-1]), span, num_frames)
        assert max(idx) <= num_frames - 1


def test_train_positions_two_frames_three_segments():
    # usable 2: edges floor(0, 2/3, 4/3, 2) = 0, 0, 1, 2 -> segments {0}, {0}, {1}
    rng = np.random.default_rng(2)
    draws = {tuple(sample_train_positions(2, 3, 1, rng).tolist()) for _ in range(100)}
    assert draws == {(0, 0, 1)}


def _even(usable, n):
    # centre of each 1/n of the usable range, in exact integer arithmetic
    return [((2 * i + 1) * usable) // (2 * n) for i in range(n)]


def test_test_positions_hand_worked():
    p = sample_test_positions(100, 19, 1)
    assert p.shape == (19,)
    # (i + 0.5) * 100 / 19: 2.63, 7.89, 13.16, 18.42, 23.68, ..., 97.37
    assert p[:5].tolist() == [2, 7, 13, 18, 23]
    assert p[-1] == 97
    assert p.tolist() == _even(100, 19)
    # flow, span 10 in 100 frames: 91 usable positions
    assert sample_test_positions(100, 19, 10).tolist() == _even(91, 19)
    assert sample_test_positions(100, 3, 1).tolist() == [16, 50, 83]


def test_test_positions_short_video_repeats_in_range():
    p = sample_test_positions(5, 19, 1)
    assert p.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]
    assert p.tolist() == _even(5, 19)
    assert sample_test_positions(5, 19, 10).tolist() == [0] * 19


def test_stack_indices_clamps_at_end():
    assert stack_indices(0, 10, 30) == list(range(10))
    assert stack_indices(25, 10, 30) == [25, 26, 27, 28, 29, 29, 29, 29, 29, 29]
    assert stack_indices(0, 10, 4) == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]
    assert stack_indices(7, 1, 30) == [7]


def test_random_crop_box_range_and_coverage():
    rng = np.random.default_rng(3)
    boxes = np.array([random_crop_box(20, 26, 16, rng) for _ in range(2000)])
    assert set(boxes[:, 0].tolist()) == set(range(0, 5))   # 0 .. 20-16
    assert set(boxes[:, 1].tolist()) == set(range(0, 11))  # 0 .. 26-16
    assert random_crop_box(16, 16, 16, rng) == (0, 0)


def test_test_crop_boxes_hand_worked():
    # 256x340 frame, 224 crop: centre top (256-224)/2 = 16, centre left (340-224)/2 = 58
    assert crop_boxes(256, 340, 224, 1) == [(16, 58, False)]
    assert crop_boxes(256, 340, 224, 3) == [(16, 0, False), (16, 58, False), (16, 116, False)]
    # portrait: the three crops run along the height
    assert crop_boxes(340, 256, 224, 3) == [(0, 16, False), (58, 16, False), (116, 16, False)]
    ten = crop_boxes(256, 340, 224, 10)
    five = [(0, 0), (0, 116), (32, 0), (32, 116), (16, 58)]
    assert len(ten) == 10
    assert [(y, x) for y, x, f in ten if not f] == five
    assert sorted((y, x) for y, x, f in ten if f) == sorted(five)
    assert sum(f for _, _, f in ten) == 5
    for y, x, _ in ten:
        assert 0 <= y <= 256 - 224 and 0 <= x <= 340 - 224


@pytest.mark.parametrize("n", [0, 2, 5, 11])
def test_test_crop_boxes_invalid_count(n):
    with pytest.raises(ValueError, match=str(n)):
        crop_boxes(256, 340, 224, n)


def test_train_positions_equal_a_linspace_reference():
    """Segment edges floor(linspace(0, usable, K + 1)), drawn with the same generator: the
    positions (and so every run's samples) are those numpy's linspace gives."""
    for n in range(1, 400, 7):
        for k in (1, 2, 3, 5, 7):
            for span in (1, 10):
                usable = max(n - span + 1, 1)
                edges = np.floor(np.linspace(0, usable, k + 1)).astype(np.int64)
                lo = np.minimum(edges[:-1], usable - 1)
                hi = np.maximum(edges[1:], lo + 1)
                want = np.random.default_rng(n).integers(lo, hi)
                got = sample_train_positions(n, k, span, np.random.default_rng(n))
                assert got.tolist() == want.tolist(), (n, k, span)
