"""OpenCV's image operations that its TV-L1 calls, reproduced in PyTorch on batches of maps
(..., H, W), float32, bit for bit where OpenCV's arithmetic allows (tests/test_tvl1.py
compares each with OpenCV): bilinear resize, centred gradient, bicubic remap, 5x5 median."""
import numpy as np
import torch

INTER_TAB_SIZE = 32  # cv::remap rounds source coordinates to 1/32 pixel


def _linear_taps(n_in, n_out, scale, clamp_weights, device):
    """Source indices and weights of cv::resize INTER_LINEAR along one axis.

    The source coordinate is (x + 0.5) * scale - 0.5 in double, split into its floor and a
    float fraction. Horizontally OpenCV also sets the fraction to 0 where the coordinate falls
    left of the first or on/right of the last pixel; vertically it only clamps the rows.
    """
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    i0 = np.floor(pos)
    frac = (pos - i0).astype(np.float32)
    i0 = i0.astype(np.int64)
    if clamp_weights:
        frac[(i0 < 0) | (i0 >= n_in - 1)] = 0
    i1 = np.clip(i0 + 1, 0, n_in - 1)
    i0 = np.clip(i0, 0, n_in - 1)
    w0 = np.float32(1) - frac
    as_tensor = lambda a: torch.from_numpy(a).to(device)
    return as_tensor(i0), as_tensor(i1), as_tensor(w0), as_tensor(frac)


def resize_linear(x, size, scale=None):
    """cv::resize(..., INTER_LINEAR) of the last two dims of x (..., H, W) to size (h, w).

    scale: source pixels per output pixel, (sy, sx); by default the size ratio, as OpenCV
    takes it when dsize is given (1 / (h / H)); cv::resize(fx=0.8) uses 1 / 0.8 instead.
    Separable like OpenCV's float path: rows first, then columns, weights in float32.
    """
    (in_h, in_w), (h, w) = x.shape[-2:], size
    sy, sx = scale if scale is not None else (1.0 / (h / in_h), 1.0 / (w / in_w))
    i0, i1, a0, a1 = _linear_taps(in_w, w, sx, True, x.device)
    x = x.index_select(-1, i0) * a0 + x.index_select(-1, i1) * a1  # (..., H, w)
    j0, j1, b0, b1 = _linear_taps(in_h, h, sy, False, x.device)
    return x.index_select(-2, j0) * b0[:, None] + x.index_select(-2, j1) * b1[:, None]


def centered_gradient(img):
    """(dx, dy) of img (..., H, W): 0.5 (f[x+1] - f[x-1]); on the borders OpenCV takes the
    one-sided difference, still halved, which is the centred one on a replicated border."""
    pad = torch.nn.functional.pad(img.unsqueeze(-3), (1, 1, 1, 1), mode="replicate").squeeze(-3)
    dx = 0.5 * (pad[..., 1:-1, 2:] - pad[..., 1:-1, :-2])
    dy = 0.5 * (pad[..., 2:, 1:-1] - pad[..., :-2, 1:-1])
    return dx, dy


def remap_cubic(img, u):
    """cv::remap(img, x + u1, y + u2, INTER_CUBIC, BORDER_CONSTANT 0) for img (N, C, H, W)
    and u (N, 2, H, W), every channel sampled at the same points -> (N, C, H, W).

    OpenCV rounds the map x + u1 (float32) to 1/32 pixel (half to even) and weighs the 4x4
    taps around it with the cubic kernel A = -0.75; taps outside the image count as 0.
    grid_sample(bicubic, zeros) has the same kernel and border; its normalised coordinates are
    made exact by padding the image with zeros to power-of-two sizes: then (2x + 1) / size - 1
    and grid_sample's way back, (g + 1) * size / 2 - 0.5, lose no bit of a multiple of 1/32.
    """
    n, c, h, w = img.shape
    hp, wp = 1 << (h - 1).bit_length(), 1 << (w - 1).bit_length()
    padded = torch.nn.functional.pad(img, (0, wp - w, 0, hp - h))  # zeros right and below
    xs = torch.arange(w, device=img.device, dtype=torch.float32) + u[:, 0]  # (N, H, W)
    ys = torch.arange(h, device=img.device, dtype=torch.float32)[:, None] + u[:, 1]
    xs = torch.round(xs * INTER_TAB_SIZE).mul_(1.0 / INTER_TAB_SIZE)
    ys = torch.round(ys * INTER_TAB_SIZE).mul_(1.0 / INTER_TAB_SIZE)
    gx, gy = xs.mul_(2.0 / wp).add_(1.0 / wp - 1), ys.mul_(2.0 / hp).add_(1.0 / hp - 1)
    grid = torch.stack([gx, gy], dim=-1)  # (N, H, W, 2), exact for sizes up to 2^19
    return torch.nn.functional.grid_sample(padded, grid, mode="bicubic", padding_mode="zeros",
                                           align_corners=False)


# A comparator network that puts ranks 7..12 (0-based) of 20 values, given as 4 sorted columns
# of 5 on wires 8 * column + row, on wires 7..12. (a, b, lo, hi): wire a gets min, wire b max;
# lo / hi say whether that output is used later. Wires 5-7, 13-15, ... start at +inf (None).
# Found by pruning Batcher's odd-even merge sort of 32 wires; exactness follows from the 0-1
# principle and is checked on every 0-1 input in tests/test_tvl1.py.
_RANKS_7_TO_12_OF_4_COLUMNS = (
    (0, 8, 1, 1), (1, 9, 1, 1), (2, 10, 1, 1), (3, 11, 1, 1), (4, 12, 1, 1), (16, 24, 1, 1),
    (17, 25, 1, 1), (18, 26, 1, 1), (19, 27, 1, 1), (20, 28, 1, 1), (4, 8, 1, 1), (5, 9, 1, 1),
    (6, 10, 1, 1), (7, 11, 1, 1), (20, 24, 1, 1), (21, 25, 1, 1), (22, 26, 1, 1), (23, 27, 1, 0),
    (2, 4, 1, 1), (3, 5, 1, 1), (6, 8, 1, 1), (10, 12, 1, 1), (18, 20, 1, 1), (19, 21, 1, 1),
    (22, 24, 1, 1), (26, 28, 1, 0), (1, 2, 1, 1), (3, 4, 1, 1), (5, 6, 1, 1), (7, 8, 1, 1),
    (9, 10, 1, 1), (17, 18, 1, 1), (19, 20, 1, 1), (21, 22, 1, 1), (23, 24, 1, 1), (25, 26, 1, 0),
    (0, 16, 0, 1), (1, 17, 0, 1), (2, 18, 0, 1), (3, 19, 0, 1), (4, 20, 1, 1), (5, 21, 1, 1),
    (6, 22, 1, 0), (7, 23, 1, 0), (8, 24, 1, 0), (9, 25, 1, 0), (8, 16, 1, 1), (9, 17, 1, 1),
    (10, 18, 1, 0), (11, 19, 1, 0), (12, 20, 1, 0), (13, 21, 1, 0), (4, 8, 0, 1), (5, 9, 0, 1),
    (6, 10, 1, 1), (7, 11, 1, 1), (12, 16, 1, 0), (13, 17, 1, 0), (6, 8, 0, 1), (7, 9, 1, 1),
    (10, 12, 1, 1), (11, 13, 1, 0), (7, 8, 1, 1), (9, 10, 1, 1), (11, 12, 1, 1),
)
_SORT_5 = ((0, 3, 1, 1), (1, 4, 1, 1), (0, 2, 1, 1), (1, 3, 1, 1), (0, 1, 1, 1), (2, 4, 1, 1),
           (1, 2, 1, 1), (3, 4, 1, 1), (2, 3, 1, 1))  # an optimal 5-sorter


def _compare_exchange(wires, network):
    """Run a comparator network in place on a list of tensors (None = +inf)."""
    for a, b, lo, hi in network:
        x, y = wires[a], wires[b]
        if y is None:  # min(x, inf) = x: nothing moves
            continue
        if x is None:
            wires[a], wires[b] = y, None
            continue
        if lo:
            wires[a] = torch.minimum(x, y)
        if hi:
            wires[b] = torch.maximum(x, y)
    return wires


def _median_with_column(ranks, col):
    """Rank 12 of 25 values given ranks 7..12 of 20 of them (a list) and the other 5 sorted:
    the k-th of a union of two sorted lists is min over i of max(a[k - i], b[i - 1])."""
    out = ranks[5]  # a[12]
    for i in range(5):
        out = torch.minimum(out, torch.maximum(ranks[4 - i], col[i]))  # a[11 - i], b[i]
    return out


def median5(x):
    """cv::medianBlur(x, 5) of the last two dims of x (..., H, W), float32: the exact median of
    the 5x5 neighbourhood, borders replicated.

    A selection network instead of a sort: each column of 5 is sorted once (shared by the 5
    outputs that see it); two neighbouring outputs share 4 of their 5 columns, whose middle
    ranks 7..12 are selected once for both; each output then merges in its own column.
    About 80 min/max per pixel, a few times faster than torch.median over unfolded patches.
    """
    h, w = x.shape[-2:]
    w2 = w + w % 2  # outputs are made in pairs (x even, x + 1)
    pad = torch.nn.functional.pad(x.reshape(-1, 1, h, w), (2, 2 + w2 - w, 2, 2), mode="replicate")
    cols = _compare_exchange([pad[:, 0, r:r + h] for r in range(5)], _SORT_5)  # 5 x (B, h, w2+4)
    del pad
    wires = [None] * 32  # the 4 shared columns (padded x + 1 .. x + 4) of each even x
    for j in range(4):
        wires[8 * j:8 * j + 5] = [col[..., j + 1:j + 1 + w2:2] for col in cols]
    ranks = _compare_exchange(wires, _RANKS_7_TO_12_OF_4_COLUMNS)[7:13]
    even = _median_with_column(ranks, [col[..., 0:w2:2] for col in cols])  # own column x
    odd = _median_with_column(ranks, [col[..., 5:5 + w2:2] for col in cols])  # x + 5
    out = torch.stack([even, odd], dim=-1).view(-1, h, w2)[..., :w]
    return out.reshape(x.shape)
