"""dataloader/tvl1.py (TV-L1 in PyTorch) against OpenCV-contrib's CPU DualTVL1, and
dataloader/flow.py's compute_flow_batch. OpenCV's results are computed here, never stored;
frames are small (64x48 .. 128x96) so that the file runs in seconds."""
import itertools
import re

import cv2
import numpy as np
import pytest
import torch

from dataloader import tvl1, tvl1_ops
from dataloader.flow import FLOW_BACKENDS, compute_flow, compute_flow_batch
from tools.benchmark_flow import agreement
from tools.flow_scenes import make_pair, make_pairs


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread each for torch and OpenCV: the results do not depend on it, and small frames
    gain nothing from a second thread (on a busy machine they lose much)."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def opencv_tvl1(prevs, nexts, **params):
    """OpenCV's flow, defaults unless params (tvl1 names) say otherwise."""
    est = cv2.optflow.DualTVL1OpticalFlow_create()
    setters = dict(nscales=est.setScalesNumber, warps=est.setWarpingsNumber,
                   inner_iterations=est.setInnerIterations, outer_iterations=est.setOuterIterations,
                   median_filtering=est.setMedianFiltering)
    for name, value in params.items():
        setters[name](value)
    return np.stack([est.calc(a, b, None) for a, b in zip(prevs, nexts)])


def torch_tvl1(prevs, nexts, **kw):
    return tvl1.tvl1_flow(tvl1.grey_frames(prevs, "cpu"), tvl1.grey_frames(nexts, "cpu"), **kw).numpy()


@pytest.fixture(scope="module")
def scenes():
    """Three 96x72 flow_scenes pairs with OpenCV's and the torch flow (computed once)."""
    prevs, nexts = make_pairs(3, 96, 72, seed=11)
    return prevs, nexts, opencv_tvl1(prevs, nexts), torch_tvl1(prevs, nexts)


# ---------------------------------------------------------------- building blocks vs OpenCV
def test_pyramid_sizes_follow_opencv():
    for w, h in [(340, 256), (96, 72), (50, 37), (21, 300), (40, 30)]:
        expected, level = [(h, w)], np.zeros((h, w), np.float32)
        for _ in range(4):  # OpenCV's sizes for fx = fy = 0.8, and its 16-pixel stop
            level = cv2.resize(level, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
            if min(level.shape) < 16:
                break
            expected.append(level.shape)
        assert tvl1.pyramid_sizes(h, w) == expected
    assert len(tvl1.pyramid_sizes(256, 340)) == 5 and len(tvl1.pyramid_sizes(30, 40)) == 3


@pytest.mark.parametrize("h, w", [(256, 340), (72, 96), (37, 50), (17, 23)])
def test_resize_matches_opencv(h, w):
    rng = np.random.default_rng(h)
    img = (rng.random((h, w)) * 255).astype(np.float32)
    down = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)  # the pyramid
    mine = tvl1_ops.resize_linear(torch.from_numpy(img), down.shape, (1 / 0.8, 1 / 0.8)).numpy()
    np.testing.assert_allclose(mine, down, rtol=0, atol=1e-4)  # 255 * a few float eps
    flow = (rng.standard_normal(down.shape) * 10).astype(np.float32)
    up = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)  # flow to the finer level
    np.testing.assert_allclose(tvl1_ops.resize_linear(torch.from_numpy(flow), (h, w)).numpy(), up,
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("h, w", [(72, 96), (37, 50), (16, 16)])
def test_remap_matches_opencv(h, w):
    rng = np.random.default_rng(w)
    img = (rng.random((2, 3, h, w)) * 255).astype(np.float32)
    u = (rng.standard_normal((2, 2, h, w)) * 4).astype(np.float32)
    u[:, :, ::3] = np.round(u[:, :, ::3] * 4) / 4  # also exact and half 1/32 steps
    u[:, 0, :, -5:] += w  # and points far outside the image
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    ref = np.stack([[cv2.remap(img[k, c], xs + u[k, 0], ys + u[k, 1], cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0) for c in range(3)]
                    for k in range(2)])
    mine = tvl1_ops.remap_cubic(torch.from_numpy(img), torch.from_numpy(u)).numpy()
    # float rounding only: a wrong kernel (A = -0.5), no 1/32 rounding or another border are
    # off by whole grey levels
    np.testing.assert_allclose(mine, ref, rtol=0, atol=2e-4)
    assert np.abs(mine - ref).mean() < 2e-5


@pytest.mark.parametrize("h, w", [(72, 96), (37, 51), (5, 5), (3, 4), (1, 7)])
def test_median_matches_opencv(h, w):
    rng = np.random.default_rng(h * w)
    x = rng.standard_normal((3, h, w)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = 0.25  # many ties
    ref = np.stack([cv2.medianBlur(x[k], 5) for k in range(3)])
    assert np.array_equal(tvl1_ops.median5(torch.from_numpy(x)).numpy(), ref)


def test_median_network_on_every_0_1_input():
    """0-1 principle: a min/max network gives the median of every input if it does for every
    0-1 input. All 5x5 0-1 windows whose columns are sorted (the network's own first step
    sorts them; 6^5 cases), at an even and an odd output position."""
    windows = np.array([[[1.0 if r >= z else 0.0 for z in zs] for r in range(5)]
                        for zs in itertools.product(range(6), repeat=5)], np.float32)  # (7776, 5, 5)
    truth = (windows.reshape(len(windows), -1).sum(1) >= 13).astype(np.float32)
    img = np.zeros((len(windows), 5, 7), np.float32)
    img[:, :, 1:6] = windows
    out = tvl1_ops.median5(torch.from_numpy(img)).numpy()
    assert np.array_equal(out[:, 2, 3], truth)  # output x = 3 (odd): columns 1..5
    img = np.zeros((len(windows), 5, 6), np.float32)
    img[:, :, 0:5] = windows
    assert np.array_equal(tvl1_ops.median5(torch.from_numpy(img)).numpy()[:, 2, 2], truth)  # even
    for bits in itertools.product([0.0, 1.0], repeat=5):  # the column sort itself
        col = tvl1_ops._compare_exchange([torch.tensor(b) for b in bits], tvl1_ops._SORT_5)
        assert [float(c) for c in col] == sorted(bits)


@pytest.mark.parametrize("params", [
    dict(nscales=1, warps=1, inner_iterations=3, outer_iterations=2),   # median, iterations
    dict(nscales=1, warps=2, inner_iterations=4, outer_iterations=1),   # a second warp
    dict(nscales=2, warps=1, inner_iterations=4, outer_iterations=1),   # pyramid, upsampling
    dict(nscales=1, warps=1, inner_iterations=30, outer_iterations=10),  # to convergence
])
def test_few_iterations_match_opencv(params):
    """Before the iterations amplify float rounding, the torch flow is OpenCV's to ~1e-5 px:
    thresholding, divergence, dual step, median, gradients, warp and pyramid all agree."""
    prevs, nexts = make_pairs(2, 64, 48, seed=3)
    ref = opencv_tvl1(prevs, nexts, **params)
    mine = torch_tvl1(prevs, nexts, **params)
    assert np.abs(mine - ref).max() < 2e-4 and np.abs(mine - ref).mean() < 2e-6


# ---------------------------------------------------------------- the whole estimator
def test_agreement_with_opencv(scenes):
    """The acceptance criteria, on textured scenes with several motions, rotation, zoom,
    occlusion, a static background (tools/flow_scenes.py)."""
    prevs, nexts, ref, mine = scenes
    a = agreement(mine, ref, prevs, nexts)
    assert a["epe_mean"] <= 0.15 and a["epe_p95"] <= 0.5, a
    assert a["within_0_5"] >= 0.97 and a["warp_ratio"] <= 1.03, a
    assert np.abs(ref).max() > 2  # the scenes do move


def test_agreement_metrics_by_hand():
    prev = np.tile(np.arange(20, dtype=np.uint8) * 10, (10, 1))  # a ramp of 10 levels / px
    nxt = prev + 10  # = prev one pixel to the right: flow -1 explains it, flow 0 leaves 10
    ref = np.zeros((1, 10, 20, 2), np.float32)
    flow = ref + np.array([-0.25, 0], np.float32)
    a = agreement(flow, ref, [prev], [nxt])
    assert a["epe_mean"] == a["epe_p95"] == 0.25 and a["within_0_5"] == 1.0
    assert a["warp_error_ref"] == pytest.approx(10) and a["warp_error"] == pytest.approx(7.5)
    assert a["warp_ratio"] == pytest.approx(0.75)


def test_known_translation():
    """A smooth texture moved by (2.3, -1.7) px: that motion is found in the interior
    (independent of OpenCV: the frames are sums of sinusoids, shifted exactly). TV-L1 stops
    a little short of it (about 2 % here; OpenCV's estimate is the same)."""
    h, w, d = 96, 128, (2.3, -1.7)
    rng = np.random.default_rng(5)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    freq = rng.uniform(0.03, 0.25, (12, 2)) * rng.choice([-1, 1], (12, 2))
    phase, amp = rng.uniform(0, 2 * np.pi, 12), rng.uniform(4, 10, 12)
    frame = lambda dx, dy: np.clip(128 + sum(
        a * np.sin(f[0] * (xs - dx) + f[1] * (ys - dy) + p) for f, p, a in zip(freq, phase, amp)),
        0, 255).round().astype(np.uint8)
    flow = torch_tvl1([frame(0, 0)], [frame(*d)])[0]
    inner = flow[12:-12, 12:-12]
    err = np.hypot(inner[..., 0] - d[0], inner[..., 1] - d[1])
    assert err.mean() < 0.1 and np.percentile(err, 95) < 0.15, (err.mean(), inner.mean((0, 1)))


def test_batch_independence_and_chunks(scenes):
    """A pair's flow does not depend on the other pairs of its batch nor on the chunking."""
    prevs, nexts, _, batch = scenes
    alone = torch_tvl1(prevs[1:2], nexts[1:2])[0]
    np.testing.assert_allclose(batch[1], alone, rtol=0, atol=1e-5)
    reordered = torch_tvl1([prevs[2], prevs[0]], [nexts[2], nexts[0]])
    np.testing.assert_allclose(reordered, batch[[2, 0]], rtol=0, atol=1e-5)
    for max_batch in (1, 2):
        np.testing.assert_allclose(torch_tvl1(prevs, nexts, max_batch=max_batch), batch,
                                   rtol=0, atol=1e-5)


def test_out_of_memory_splits_the_chunk(monkeypatch):
    """A chunk that runs out of CUDA memory is split in half and retried, not a crash; the
    pairs come back complete and in order."""
    calls = []

    def fake_chunk(i0, i1, params):
        calls.append(len(i0))
        if len(i0) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.stack([i0, i1], dim=-1)  # stands in for the flow
    monkeypatch.setattr(tvl1, "_flow_chunk", fake_chunk)
    i0 = torch.arange(7.0).view(7, 1, 1).expand(7, 4, 5).contiguous()
    out = tvl1.tvl1_flow(i0, i0 + 100, max_batch=7)
    assert calls == [7, 3, 3, 1]  # 7 fails; halves of 3 from then on
    assert torch.equal(out, torch.stack([i0, i0 + 100], dim=-1))


def test_per_pair_stopping(monkeypatch):
    """In one batch a constant pair stops after its first iteration of every warp (exact
    zeros) while a moving pair goes on; the moving pair's flow is the one it gets alone."""
    prev, nxt, _ = make_pair(64, 48, seed=4)
    still = np.full_like(prev, 90)
    keeps = []
    iterate = tvl1._Level.iterate

    def spy(self, u, *args):
        keeps.append(args[4].view(-1).tolist())  # keep: 1 = the pair is still iterating
        return iterate(self, u, *args)
    monkeypatch.setattr(tvl1._Level, "iterate", spy)
    both = torch_tvl1([still, prev], [still, nxt])
    monkeypatch.undo()
    assert np.array_equal(both[0], np.zeros_like(both[0]))
    still_runs, moving_runs = sum(k[0] for k in keeps), sum(k[1] for k in keeps)
    levels = len(tvl1.pyramid_sizes(48, 64))
    assert still_runs == levels * tvl1.WARPS  # one iteration per warp, then frozen
    assert moving_runs > 5 * still_runs
    np.testing.assert_allclose(both[1], torch_tvl1([prev], [nxt])[0], rtol=0, atol=1e-5)


def test_constant_and_black_frames():
    black = np.zeros((40, 50), np.uint8)
    pairs = [(black, black), (np.full_like(black, 10), np.full_like(black, 200)),
             (np.full_like(black, 255), black)]
    flow = compute_flow_batch([a for a, _ in pairs], [b for _, b in pairs], backend="torch")
    assert flow.shape == (3, 40, 50, 2) and flow.dtype == np.float32
    assert np.array_equal(flow, np.zeros_like(flow))  # no motion, and no NaN


# ---------------------------------------------------------------- compute_flow_batch
def test_opencv_backend_is_compute_flow():
    prevs, nexts = make_pairs(2, 48, 40, seed=8)
    for method in ("tvl1", "farneback"):
        batch = compute_flow_batch(prevs, nexts, method=method, backend="opencv")
        loop = np.stack([compute_flow(a, b, method) for a, b in zip(prevs, nexts)])
        assert batch.dtype == np.float32 and np.array_equal(batch, loop)


def test_torch_backend_is_tvl1_flow(scenes):
    prevs, nexts, _, mine = scenes
    flow = compute_flow_batch(prevs, nexts, backend="torch", device="cpu")
    assert flow.dtype == np.float32 and flow.shape == (3, 72, 96, 2)
    np.testing.assert_allclose(flow, mine, rtol=0, atol=1e-5)


def test_empty_batch():
    for backend in FLOW_BACKENDS:
        assert compute_flow_batch([], [], backend=backend).shape == (0, 0, 0, 2)
        empty = np.zeros((0, 48, 64), np.uint8)
        out = compute_flow_batch(empty, empty, backend=backend)
        assert out.shape == (0, 48, 64, 2) and out.dtype == np.float32
    assert tvl1.tvl1_flow(torch.zeros(0, 5, 6), torch.zeros(0, 5, 6)).shape == (0, 5, 6, 2)


def test_bad_input():
    a, b = np.zeros((48, 64), np.uint8), np.zeros((40, 64), np.uint8)
    cases = [
        (dict(prevs=[a, a], nexts=[a]), "2 first frames but 1 second frames"),
        (dict(prevs=[a, b], nexts=[a, b]), "pair 1 is 64x40 but pair 0 is 64x48"),
        (dict(prevs=[a], nexts=[b]), "pair 0: prevs[0] is 64x48 but nexts[0] is 64x40"),
        (dict(prevs=[a.astype(np.float32)], nexts=[a]), "prevs[0] must be a uint8 grey frame"),
        (dict(prevs=[a, a], nexts=[a, a.astype(np.uint16)]), "nexts[1] must be a uint8 grey frame"),
        (dict(prevs=[np.zeros((48, 64, 3), np.uint8)], nexts=[a]), "of shape (48, 64, 3)"),
        (dict(prevs=[a], nexts=[a], method="lk"), "unknown flow method 'lk'"),
    ]
    for backend in FLOW_BACKENDS:
        for kwargs, message in cases:
            with pytest.raises(ValueError, match=re.escape(message)):
                compute_flow_batch(backend=backend, **kwargs)
    for kwargs, message in [
        (dict(method="farneback", backend="torch"), "the torch backend computes TV-L1 only"),
        (dict(backend="jax"), "unknown flow backend 'jax'"),
        (dict(backend="opencv", device="cuda"), "the opencv backend runs on the CPU"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            compute_flow_batch([a], [a], **kwargs)
    with pytest.raises(ValueError, match="float32"):
        tvl1.tvl1_flow(torch.zeros(1, 5, 6, dtype=torch.uint8), torch.zeros(1, 5, 6, dtype=torch.uint8))
    with pytest.raises(ValueError, match=re.escape("(2, 5, 6) on cpu and (2, 5, 7)")):
        tvl1.tvl1_flow(torch.zeros(2, 5, 6), torch.zeros(2, 5, 7))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_cuda_without_gpu():
    a = np.zeros((48, 64), np.uint8)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        compute_flow_batch([a], [a], backend="torch", device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        compute_flow_batch([], [], backend="torch", device="cuda")
