"""Tests of dataloader/transforms.py against numpy."""
import numpy as np
import torch

from dataloader.transforms import mirror, normalize, to_network_input

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def distinct_uint8(shape, seed=0):
    """uint8 array with all-distinct values (as far as 256 allows) in random order."""
    n = int(np.prod(shape))
    assert n <= 256
    return np.random.default_rng(seed).permutation(256)[:n].astype(np.uint8).reshape(shape)


def np_flow_flip(a):
    """Independent flow flip: mirror width, u channels (0, 2, 4, ...) -> 255 - u."""
    out = a[..., ::-1].astype(np.int64)
    for c in range(a.shape[-3]):
        if c % 2 == 0:
            out[..., c, :, :] = 255 - out[..., c, :, :]
    return out.astype(np.uint8)


def np_flow_norm(a):
    return (np.asarray(a) / 255.0 - 0.5) / 0.226


def np_rgb_norm(a):  # (..., 3, H, W)
    return (a / 255.0 - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]


def test_mirror_reverses_width_of_flagged_samples_only():
    a = distinct_uint8((2, 3, 2, 2, 4), seed=2)  # (B, P, C=2, H, W)
    flags = np.array([[True, False, False], [False, True, True]])
    x = torch.from_numpy(a.copy())
    out = mirror(x, torch.from_numpy(flags)).numpy()
    for b in range(2):
        for p in range(3):
            np.testing.assert_array_equal(out[b, p], a[b, p, ..., ::-1] if flags[b, p] else a[b, p])
    np.testing.assert_array_equal(x.numpy(), a)  # the input batch is not modified
    assert out.dtype == np.uint8


def test_mirror_without_flags_returns_input_unchanged():
    a = distinct_uint8((2, 2, 3, 4), seed=3)
    out = mirror(torch.from_numpy(a.copy()), torch.tensor([False, False]))
    np.testing.assert_array_equal(out.numpy(), a)


def test_flow_flip_mirrors_all_channels_and_inverts_u_only():
    a = distinct_uint8((2, 4, 3, 5))          # (P, C=4 -> u1 v1 u2 v2, H, W)
    out = to_network_input(torch.from_numpy(a.copy()), torch.tensor([True, True]), "flow").numpy()
    np.testing.assert_allclose(out, np_flow_norm(np_flow_flip(a)), rtol=1e-5, atol=1e-5)
    # spot check by hand: u1 pixel (0, 0) comes from the last column, inverted; v1 is not inverted
    assert abs(out[0, 0, 0, 0] - np_flow_norm(255 - a[0, 0, 0, 4])) < 1e-5
    assert abs(out[0, 1, 0, 0] - np_flow_norm(a[0, 1, 0, 4])) < 1e-5


def test_rgb_flip_does_not_invert():
    a = distinct_uint8((1, 3, 4, 6), seed=1)
    out = to_network_input(torch.from_numpy(a.copy()), torch.tensor([True]), "rgb").numpy()
    np.testing.assert_allclose(out, np_rgb_norm(a[..., ::-1]), rtol=1e-5, atol=1e-5)


def test_only_flagged_samples_are_flipped_batched():
    a = distinct_uint8((2, 3, 2, 2, 4), seed=2)  # (B, P, C=2, H, W)
    flags = np.array([[True, False, False], [False, True, True]])
    out = to_network_input(torch.from_numpy(a.copy()), torch.from_numpy(flags), "flow").numpy()
    for b in range(2):
        for p in range(3):
            want = np_flow_flip(a[b, p]) if flags[b, p] else a[b, p]
            np.testing.assert_allclose(out[b, p], np_flow_norm(want), rtol=1e-5, atol=1e-5)


def test_normalize_flow_centres_on_no_motion():
    x = torch.tensor([0, 127, 128, 255], dtype=torch.uint8).view(1, 4, 1, 1)
    out = normalize(x, "flow").view(-1).numpy()
    want = (np.array([0, 127, 128, 255]) / 255.0 - 0.5) / 0.226
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    assert abs(out[1]) < 0.01 and abs(out[2]) < 0.01 and abs(out[1] + out[2]) < 1e-6
    assert out.dtype == np.float32


def test_normalize_rgb_imagenet():
    a = distinct_uint8((2, 3, 4, 5), seed=4)
    out = normalize(torch.from_numpy(a.copy()), "rgb").numpy()
    want = (a / 255.0 - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_to_network_input_flips_then_normalises():
    a = distinct_uint8((2, 2, 3, 4), seed=5)
    out = to_network_input(torch.from_numpy(a.copy()), torch.tensor([True, False]), "flow").numpy()
    want = np.stack([np_flow_flip(a[0]), a[1]]) / 255.0
    want = (want - 0.5) / 0.226
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
