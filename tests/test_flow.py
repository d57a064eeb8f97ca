"""dataloader/flow.py: the one quantisation rule for stored flow (bound 20)."""
import numpy as np

from dataloader.flow import BOUND, dequantize_flow, quantize_flow


def test_quantize_flow_by_hand():
    f = np.array([-30.0, -20, -10, 0, 0.1, 10, 20, 25, 1e9], dtype=np.float32)
    # 255 * (f + 20) / 40: -10 -> 63.75 -> 64, 0 -> 127.5 -> 128 (halves round to even),
    # 10 -> 191.25 -> 191; beyond +-20 clipped.
    q = quantize_flow(f)
    assert BOUND == 20 and q.dtype == np.uint8 and q.shape == f.shape
    assert q.tolist() == [0, 0, 64, 128, 128, 191, 255, 255, 255]
    assert quantize_flow(np.array([5.0]), bound=10).tolist() == [191]


def test_dequantize_is_a_right_inverse():
    q = np.arange(256, dtype=np.uint8)
    assert (quantize_flow(dequantize_flow(q)) == q).all()
    assert dequantize_flow(0) == -BOUND and dequantize_flow(255) == BOUND
    assert abs(dequantize_flow(128)) <= 2 * BOUND / 255  # within one step of no motion
