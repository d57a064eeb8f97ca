"""Tests of network/consensus.py against numpy and hand-worked examples."""
import numpy as np
import pytest
import torch

from network.consensus import segment_consensus


def np_var_consensus(s):
    w = s.var(axis=2)                      # (B, K), variance over classes
    w = w / w.sum(axis=1, keepdims=True)
    return (w[..., None] * s).sum(axis=1)


@pytest.fixture
def scores():
    return np.random.default_rng(0).normal(size=(4, 3, 7))


def test_mean_and_max_against_numpy(scores):
    t = torch.from_numpy(scores)
    np.testing.assert_allclose(segment_consensus(t, "mean").numpy(), scores.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(segment_consensus(t, "max").numpy(), scores.max(axis=1), rtol=1e-12)
    assert segment_consensus(t, "mean").shape == (4, 7)


def test_var_against_numpy(scores):
    out = segment_consensus(torch.from_numpy(scores), "var").numpy()
    np.testing.assert_allclose(out, np_var_consensus(scores), rtol=1e-9)


def test_var_hand_worked_two_segments():
    # s1 = [0, 4]: variance 4; s2 = [1, 3]: variance 1 -> weights 0.8, 0.2
    # out = 0.8 * [0, 4] + 0.2 * [1, 3] = [0.2, 3.8]
    s = torch.tensor([[[0.0, 4.0], [1.0, 3.0]]], dtype=torch.float64)
    np.testing.assert_allclose(segment_consensus(s, "var").numpy(), [[0.2, 3.8]], rtol=1e-9)


def test_var_stays_on_mean_scale():
    s = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 1, 5)))
    seg = s.repeat(1, 4, 1)                        # four identical segments
    np.testing.assert_allclose(segment_consensus(seg, "var").numpy(),
                               segment_consensus(seg, "mean").numpy(), rtol=1e-9)
    np.testing.assert_allclose(segment_consensus(seg, "var").numpy(), s[:, 0].numpy(), rtol=1e-9)
    flat = torch.full((1, 3, 4), 2.5, dtype=torch.float64)  # zero variance everywhere: no 0/0
    out = segment_consensus(flat, "var")
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), np.full((1, 4), 2.5), rtol=1e-9)


def test_gradcheck_mean_var_max():
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 3, 5))).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: segment_consensus(t, "mean"), (x,))
    assert torch.autograd.gradcheck(lambda t: segment_consensus(t, "var"), (x,))
    # distinct random values: no ties in max
    assert torch.autograd.gradcheck(lambda t: segment_consensus(t, "max"), (x,))


def test_unknown_mode():
    with pytest.raises(ValueError, match="median"):
        segment_consensus(torch.zeros(1, 2, 3), "median")
