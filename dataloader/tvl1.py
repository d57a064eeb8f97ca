"""TV-L1 optical flow in plain PyTorch, batched over N frame pairs, following OpenCV-contrib's
CPU estimator (cv::optflow::DualTVL1OpticalFlow, modules/optflow/src/tvl1flow.cpp) step by step.

    flow = tvl1_flow(i0, i1)        # i0, i1: float32 (N, H, W) grey levels 0..255, any device
                                    # flow:   float32 (N, H, W, 2), [..., 0] right, [..., 1] down

The algorithm (Zach, Pock & Bischof 2007; Sanchez, Meinhardt-Llopis & Facciolo 2013) as OpenCV
runs it with its defaults; every point below was checked against tvl1flow.cpp and, where it
calls OpenCV functions, against those functions themselves (tests/test_tvl1.py):

- pyramid: level s+1 = cv::resize(level s, fx = fy = 0.8, INTER_LINEAR), no blur; output size
  round(0.8 w) x round(0.8 h) (half to even) and source coordinates (x + 0.5) * 1.25 - 0.5; a
  level under 16 pixels wide or high is dropped and ends the pyramid (340x256: 5 levels);
- coarse to fine, flow starting at zero; between levels the flow is resized to the finer size
  (INTER_LINEAR, scale = size ratio) and multiplied by 1 / 0.8; the dual variables p restart
  at zero at each level;
- per level: centred gradient of I1 (one-sided, still halved, on the border rows/columns);
- per warp (5): I1, I1x, I1y remapped at (x + u1, y + u2) by cv::remap INTER_CUBIC
  (A = -0.75, coordinates rounded to 1/32 pixel, taps outside the image count as 0), then
  rho_c = I1w - I1wx u1 - I1wy u2 - I0 and grad = I1wx^2 + I1wy^2;
- per warp, error starts at +inf; outer loop (<= 10 while error > eps^2 * pixels of the level):
  5x5 median of u1 and u2 (cv::medianBlur: replicated border), then inner loop (<= 30 while
  error > eps^2 * pixels): thresholding v = u + c (I1wx, I1wy) with c in [-lambda theta,
  lambda theta]; divergence of p (backward differences, p = 0 left of / above the image);
  u = v + theta div p and error = sum |u_new - u_old|^2; forward-difference gradient of u
  (0 on the last column / row); p = (p + tau/theta grad u) / (1 + tau/theta |grad u|).

Batching: N pairs of one size advance together; each pair keeps its own stopping rule (a
`keep` flag per pair, cleared when its error falls below the threshold). A stopped pair is
frozen by scaling its steps by 0 (u and p then stay as they are) and its median filter is
skipped, so no iteration needs a device-to-host synchronisation; whether every pair has
stopped is asked only every CHECK_EVERY iterations and before a median filter. A pair's
result does not depend on the other pairs of its batch.

Precision: float32 throughout, as OpenCV. Results differ from OpenCV's by float rounding
(order of sums, the flat-spot case in _solve_level); see docs/flow.md for the agreement.

Memory: `bytes_per_pair` (17.4 MB at 340x256) bounds what one pair needs at peak; batches are
split into chunks that fit `memory_budget` (or of `max_batch` pairs; on the CPU also of about
CPU_CHUNK_PIXELS pixels per thread), and a chunk that runs out of CUDA memory is split in half
and retried.

Not implemented: gamma != 0 (OpenCV's illumination term, off by default) and useInitialFlow.
"""
import numpy as np
import torch

from dataloader.tvl1_ops import centered_gradient, median5, remap_cubic, resize_linear

# OpenCV's defaults (DualTVL1OpticalFlow_create())
TAU = 0.25
LAMBDA = 0.15
THETA = 0.3
NSCALES = 5
WARPS = 5
EPSILON = 0.01
INNER_ITERATIONS = 30
OUTER_ITERATIONS = 10
SCALE_STEP = 0.8
MEDIAN_FILTERING = 5

MIN_LEVEL_SIZE = 16  # a pyramid level narrower or lower than this is not used
CHECK_EVERY = 10  # inner iterations between the host's "has every pair stopped?" checks
DEFAULT_CPU_BUDGET = 2 << 30  # bytes a chunk may use on the CPU when no budget is given
# On the CPU a chunk holds about this many pixels per thread (1 thread: 1 pair at 340x256,
# 18 at 96x72): larger chunks spill the maps out of the caches and wait longer for their
# slowest pair, smaller ones pay more per-operation overhead (measured in docs/flow.md).
CPU_CHUNK_PIXELS = 1 << 17
MAPS_PER_PAIR = 50  # float32 maps of the frame size one pair needs at peak (bytes_per_pair)


# ---------------------------------------------------------------- devices and sizes
def resolve_device(device):
    """torch.device from a name; a clear error when CUDA is asked for and there is none."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' asked for, but torch sees no CUDA device")
    return device


def grey_frames(frames, device):
    """uint8 (H, W) frames -> float32 (N, H, W) grey levels 0..255 on device (OpenCV's
    convertTo: no scaling, no smoothing)."""
    return torch.from_numpy(np.stack(frames)).to(device).to(torch.float32)


def pyramid_sizes(height, width, nscales=NSCALES, scale_step=SCALE_STEP):
    """(h, w) of each pyramid level, finest first, as cv::resize(fx=fy=scale_step) makes them:
    size = saturate_cast<int>(size * scale_step), i.e. rounded half to even like Python's round.
    The first level under MIN_LEVEL_SIZE ends the pyramid (it is computed, then dropped)."""
    sizes = [(height, width)]
    for _ in range(1, nscales):
        h, w = sizes[-1]
        h, w = round(h * scale_step), round(w * scale_step)
        if h < MIN_LEVEL_SIZE or w < MIN_LEVEL_SIZE:
            break
        sizes.append((h, w))
    return sizes


def bytes_per_pair(height, width):
    """Peak bytes one pair needs while its flow is computed: MAPS_PER_PAIR float32 maps of the
    frame size (50 * 4 * 340 * 256 = 17.4 MB at 340x256).

    What a pair holds at the finest level, in maps of the frame size: the two image pyramids
    (2 x 2.5), u (2), I1 and its gradient (3), the level's buffers (15: p 4, grad u 4, u's
    spare 2, rho 1, divergence 2, scratch 2), one warp's I1w, I1wx, I1wy, rho_c and -1/grad
    (5): 30 maps. On top of that come, one after the other, the median filter's temporaries
    (about 18 maps while it filters one component) and the remap's (about 9, when the last
    warp's 5 maps are already freed). Measured on the CPU (peak resident memory of 9 pairs
    less that of 1, glibc's mmap threshold fixed): 48 maps per pair; MAPS_PER_PAIR keeps a
    little room above that.
    """
    return MAPS_PER_PAIR * 4 * height * width


# ---------------------------------------------------------------- the solver
def _warp(i0, stack, u):
    """One warp's constants: I1w's gradient (N, 2, h, w), grad = |grad I1w|^2 and
    rho_c = I1w - I1wx u1 - I1wy u2 - I0 (N, h, w)."""
    warped = remap_cubic(stack, u)  # (N, 3, h, w): I1w, I1wx, I1wy
    i1w, i1wxy = warped[:, 0], warped[:, 1:]
    i1wx, i1wy = i1wxy.unbind(1)
    grad = i1wx * i1wx + i1wy * i1wy
    rho_c = i1w - i1wx * u[:, 0] - i1wy * u[:, 1] - i0
    return i1wxy, grad, rho_c


class _Level:
    """The state of one pyramid level for N pairs, with buffers reused by every iteration.

    p (N, 2, 2, h+1, w+1): dual variables [pair, direction x/y, flow component], with a zero
    first row and column so that the divergence needs no border case; gu (N, 2, 2, h, w):
    the forward gradient of u, same order, its last column / row staying zero.
    """

    def __init__(self, n, h, w, device):
        zeros = lambda *shape: torch.zeros(*shape, device=device)
        self.p = zeros(n, 2, 2, h + 1, w + 1)
        self.gu = zeros(n, 2, 2, h, w)
        self.rho = zeros(n, h, w)
        self.div, self.tmp = zeros(n, 2, h, w), zeros(n, 2, h, w)
        self.spare = zeros(n, 2, h, w)  # u's other buffer

    def iterate(self, u, i1wxy, rho_c, neg_inv_grad, l_t, keep, theta_m, taut_m):
        """One inner iteration for every pair -> (new u, error per pair (N,)); u's old buffer
        becomes the spare. keep (N, 1, 1), theta_m, taut_m (N, 1, 1, 1): 1, theta, tau/theta
        for an active pair, 0 for a stopped one (its u and p then stay as they are)."""
        rho, div, tmp, p, gu = self.rho, self.div, self.tmp, self.p, self.gu
        # (1) thresholding: v = u + c (I1wx, I1wy), c = clamp(-rho / grad, -l_t, l_t)
        torch.mul(i1wxy[:, 0], u[:, 0], out=rho).addcmul_(i1wxy[:, 1], u[:, 1]).add_(rho_c)
        c = rho.mul_(neg_inv_grad).clamp_(-l_t, l_t).mul_(keep)  # (N, h, w)
        v = torch.addcmul(u, c.unsqueeze(1), i1wxy, out=self.spare)  # (N, 2, h, w)
        # (2) divergence of p: backward differences
        px, py = p[:, 0], p[:, 1]  # (N, 2, h+1, w+1)
        torch.sub(px[..., 1:, 1:], px[..., 1:, :-1], out=div)
        div.add_(torch.sub(py[..., 1:, 1:], py[..., :-1, 1:], out=tmp))
        # (3) u = v + theta div p; error = sum |u_new - u_old|^2
        u_new = v.addcmul_(theta_m, div)
        error = torch.sub(u_new, u, out=tmp).square_().flatten(1).sum(1)
        self.spare = u
        # (4) forward-difference gradient of u
        torch.sub(u_new[..., :, 1:], u_new[..., :, :-1], out=gu[:, 0, :, :, :-1])
        torch.sub(u_new[..., 1:, :], u_new[..., :-1, :], out=gu[:, 1, :, :-1, :])
        # (5) p = (p + taut grad u) / (1 + taut |grad u|)
        norm = torch.mul(gu[:, 0], gu[:, 0], out=div)  # div is free again
        norm.addcmul_(gu[:, 1], gu[:, 1])
        norm.sqrt_().mul_(taut_m).add_(1)
        p[..., 1:, 1:].addcmul_(taut_m.unsqueeze(1), gu).div_(norm.unsqueeze(1))
        return u_new, error


def _solve_level(i0, i1, u, *, tau, lambda_, theta, warps, epsilon, inner_iterations,
                 outer_iterations, median_filtering):
    """procOneScale: refine u (N, 2, h, w) on one pyramid level of i0, i1 (N, h, w)."""
    n, h, w = i0.shape
    i1x, i1y = centered_gradient(i1)
    stack = torch.stack([i1, i1x, i1y], dim=1)  # (N, 3, h, w)
    del i1x, i1y
    level = _Level(n, h, w, i0.device)
    scaled_eps = float(np.float32(epsilon * epsilon * h * w))  # OpenCV keeps it in a float
    l_t = float(np.float32(lambda_ * theta))
    theta_f, taut = float(np.float32(theta)), float(np.float32(tau / theta))
    for _ in range(warps):
        i1wxy = rho_c = neg_inv_grad = None  # free the last warp's maps first
        i1wxy, grad, rho_c = _warp(i0, stack, u)
        # -1 / grad, for c = clamp(-rho / grad). Where grad <= FLT_EPSILON OpenCV takes c = 0
        # if |rho| <= l_t grad; here c may then be anything in [-l_t, l_t], but it multiplies
        # a gradient under 3.5e-4: v moves by less than 2e-5 px. grad = 0 gives c = +-l_t
        # (or 0), times a zero gradient: no NaN on flat frames.
        neg_inv_grad = grad.clamp_(min=1e-30).reciprocal_().neg_()
        del grad
        keep = torch.ones(n, 1, 1, device=i0.device)  # 1 while a pair's error > eps (+inf now)
        for _ in range(outer_iterations):
            if not bool(keep.any()):
                break
            if median_filtering > 1:
                u = _median_active(u, keep.view(n) > 0)
            for it in range(inner_iterations):
                theta_m, taut_m = (keep * theta_f).unsqueeze(1), (keep * taut).unsqueeze(1)
                u, error = level.iterate(u, i1wxy, rho_c, neg_inv_grad, l_t, keep, theta_m,
                                         taut_m)
                keep.mul_((error > scaled_eps).view(n, 1, 1))
                if (it + 1) % CHECK_EVERY == 0 and it + 1 < inner_iterations \
                        and not bool(keep.any()):
                    break
    return u


def _median_active(u, active):
    """u with its two components median filtered (5x5), for the active pairs only."""
    # one component at a time: the filter's temporaries take ~20 maps per map filtered
    filtered = lambda v: torch.stack([median5(v[:, 0]), median5(v[:, 1])], dim=1)
    if bool(active.all()):
        return filtered(u)
    index = active.nonzero().squeeze(1)
    return u.index_copy(0, index, filtered(u.index_select(0, index)))


def _flow_chunk(i0, i1, params):
    """Flow (N, H, W, 2) of one chunk of pairs, coarse to fine."""
    n, h, w = i0.shape
    scale_step = params["scale_step"]
    sizes = pyramid_sizes(h, w, params["nscales"], scale_step)
    pyr0, pyr1 = [i0], [i1]
    for size in sizes[1:]:  # cv::resize(fx = fy = scale_step): source step exactly 1 / step
        step = (1.0 / scale_step, 1.0 / scale_step)
        pyr0.append(resize_linear(pyr0[-1], size, step))
        pyr1.append(resize_linear(pyr1[-1], size, step))
    u = torch.zeros(n, 2, *sizes[-1], device=i0.device)
    solve = {k: v for k, v in params.items() if k not in ("nscales", "scale_step")}
    for level in range(len(sizes) - 1, -1, -1):
        u = _solve_level(pyr0[level], pyr1[level], u, **solve)
        if level:
            u = resize_linear(u, sizes[level - 1]) * (1.0 / scale_step)
    return u.permute(0, 2, 3, 1).contiguous()


def _chunks(n, chunk, solve):
    """solve(start, stop) over [0, n) in chunks of at most `chunk`; a chunk that runs out of
    CUDA memory is split in half and retried (and later chunks keep the smaller size)."""
    out, start = [], 0
    while start < n:
        stop = min(start + chunk, n)
        try:
            out.append(solve(start, stop))
        except torch.cuda.OutOfMemoryError:
            if stop - start == 1:
                raise
            chunk = (stop - start) // 2
            torch.cuda.empty_cache()
            continue
        start = stop
    return out


def tvl1_flow(i0, i1, *, tau=TAU, lambda_=LAMBDA, theta=THETA, nscales=NSCALES, warps=WARPS,
              epsilon=EPSILON, inner_iterations=INNER_ITERATIONS,
              outer_iterations=OUTER_ITERATIONS, scale_step=SCALE_STEP,
              median_filtering=MEDIAN_FILTERING, max_batch=None, memory_budget=None):
    """TV-L1 flow from i0 to i1, float32 (N, H, W) grey levels 0..255 on one device ->
    float32 (N, H, W, 2) on that device, [..., 0] horizontal (right), [..., 1] vertical (down).

    The parameters are OpenCV's, with its defaults. Pairs are processed in chunks of at most
    max_batch pairs; by default as many as memory_budget bytes hold (bytes_per_pair each;
    memory_budget defaults to half the free CUDA memory, or DEFAULT_CPU_BUDGET), and on the
    CPU no more than CPU_CHUNK_PIXELS pixels per thread. The chunking does not change the
    results.
    An empty batch (N = 0) gives an empty (0, H, W, 2) result.
    """
    if not (torch.is_tensor(i0) and torch.is_tensor(i1)):
        raise TypeError("tvl1_flow takes two tensors (N, H, W)")
    if i0.dtype != torch.float32 or i1.dtype != torch.float32:
        raise ValueError(f"tvl1_flow takes float32 tensors, not {i0.dtype} / {i1.dtype}")
    if i0.dim() != 3 or i0.shape != i1.shape or i0.device != i1.device:
        raise ValueError(f"tvl1_flow takes two (N, H, W) tensors of one shape on one device, "
                         f"not {tuple(i0.shape)} on {i0.device} and {tuple(i1.shape)} on {i1.device}")
    n, h, w = i0.shape
    if n == 0:
        return i0.new_zeros(0, h, w, 2)
    if h < 1 or w < 1:
        raise ValueError(f"frames of size {w}x{h} have no pixels")
    if median_filtering not in (0, 1, 5):
        raise ValueError(f"median_filtering: 5 (OpenCV's default) or 0/1 (off), not {median_filtering}")
    if max_batch is None:
        if memory_budget is None:
            memory_budget = (torch.cuda.mem_get_info(i0.device)[0] // 2
                             if i0.device.type == "cuda" else DEFAULT_CPU_BUDGET)
        max_batch = max(1, memory_budget // bytes_per_pair(h, w))
        if i0.device.type == "cpu":
            pixels = CPU_CHUNK_PIXELS * torch.get_num_threads()
            max_batch = min(max_batch, max(1, pixels // (h * w)))
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, not {max_batch}")
    params = dict(tau=tau, lambda_=lambda_, theta=theta, nscales=nscales, warps=warps,
                  epsilon=epsilon, inner_iterations=inner_iterations,
                  outer_iterations=outer_iterations, scale_step=scale_step,
                  median_filtering=median_filtering)
    parts = _chunks(n, max_batch, lambda a, b: _flow_chunk(i0[a:b], i1[a:b], params))
    return parts[0] if len(parts) == 1 else torch.cat(parts)
