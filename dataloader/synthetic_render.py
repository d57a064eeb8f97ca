"""One synthetic video, drawn in memory: the frames and the flow of dataloader/synthetic.py's data set.

Each class is an appearance cue x a motion cue (e.g. `RedUp`, `BlueDown`):
- appearance = the colour of one large square or disc; it is visible in every single RGB
  frame, so the spatial stream can learn it, but it is never written into the flow;
- motion = the object's direction (Up, Down and optionally Side); it is written only into
  the flow frames. A single RGB frame does not reveal it: the object starts at a uniformly
  random place and wraps around the frame edges, so its position is unrelated to the class.
Only a fusion of the two streams can therefore tell all classes apart.

Motion classes are chosen to survive the horizontal-flip augmentation used in training
(which mirrors the frames and negates u): Up/Down are unchanged by it, and `Side` means
left or right at random per video, so flipping maps Side to Side. Left vs right would not
be a learnable class under that augmentation.

Flow is written directly from the known motion (no optical-flow estimation), quantised as
TV-L1 dumps are (dataloader/flow.py): q = round(255 * (clip(f, -20, 20) + 20) / 40),
grayscale JPEG. `flow_texture` chooses what surrounds the motion:
- "plain" (the default, what the learning tests and the README demo use): the velocity inside
  the object, 0 outside, plus +-2 quantisation steps of white noise;
- "realistic" (for benchmarks): what TV-L1 output of real video looks like to a JPEG decoder:
  a smooth camera-like motion field that drifts over the video, the object's velocity with
  soft edges and a smooth internal variation, blob-like correlated noise (TV-L1's staircase
  patches) and a little fine noise. At 340x256 its JPEGs are ~4.7 KB at quality 90 and
  ~7.8 KB at 95, in the 4-8 KB of real UCF101 TV-L1 dumps (plain: ~6.6 / 12.9 KB of white
  noise, which decodes faster per byte and packs differently). The object's velocity stays
  the only class cue in the flow.
"""
import cv2
import numpy as np

from dataloader.flow import quantize_flow

# Saturated RGB colours far from the dull, low-saturation backgrounds.
COLOURS = {
    "Red": (230, 30, 30),
    "Green": (30, 210, 30),
    "Blue": (40, 60, 235),
    "Yellow": (230, 220, 30),
    "Magenta": (220, 30, 220),
    "Cyan": (30, 215, 225),
}
MOTIONS = ("Up", "Down", "Side")
SPEED_RANGE = (4.0, 6.0)   # px/frame: quantised values 153..166 / 102..90, far from 128
SIZE_RANGE = (0.38, 0.50)  # object side (or diameter) as a fraction of min(width, height)
FLOW_NOISE = 2             # quantisation steps (+-0.3 px), uniform
FLOW_TEXTURES = ("plain", "realistic")
# "realistic" flow, px (standard deviations): per-video camera field, its per-frame drift,
# blob noise, fine noise. Chosen so that 340x256 JPEGs land in the 4-8 KB of real TV-L1 dumps.
REALISTIC_FLOW = dict(camera=0.8, drift=0.4, blobs=0.3, fine=0.06)
COLOUR_JITTER = 15         # per-video jitter of the object colour, per channel


def _background(rng, height, width):
    """A static texture: smoothed noise at two scales, mid/low brightness, a weak random
    tint. Its tint and brightness are drawn independently of the class on purpose."""
    base = rng.uniform(45.0, 110.0)
    coarse = rng.standard_normal((height // 12 + 2, width // 12 + 2)).astype(np.float32)
    fine = rng.standard_normal((height // 4 + 2, width // 4 + 2)).astype(np.float32)
    tex = (cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * 18.0
           + cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR) * 7.0)
    tint = rng.uniform(0.7, 1.0, size=3).astype(np.float32)
    return np.clip(base + tex, 0, 255)[..., None] * tint  # (H, W, 3) float32, low saturation


def _velocity(rng, motion):
    """(u, v) in px/frame; u positive right, v positive down (image coordinates)."""
    speed = rng.uniform(*SPEED_RANGE)
    if motion == "Up":
        return 0.0, -speed
    if motion == "Down":
        return 0.0, speed
    return speed * rng.choice([-1.0, 1.0]), 0.0  # Side: left or right, so flips map it to itself


def _object_masks(rng, n_frames, height, width, vx, vy):
    """(N, H, W) bool masks of the object in each frame, moving by (vx, vy) per frame and
    wrapping around the edges (toroidally), so no single frame's position encodes motion."""
    size = rng.uniform(*SIZE_RANGE) * min(height, width)
    disc = rng.random() < 0.5
    t = np.arange(n_frames)
    cx = rng.uniform(0, width) + vx * t
    cy = rng.uniform(0, height) + vy * t
    # Signed toroidal distance from each pixel centre to the object centre.
    dx = (np.arange(width)[None, :] + 0.5 - cx[:, None] + width / 2) % width - width / 2    # (N, W)
    dy = (np.arange(height)[None, :] + 0.5 - cy[:, None] + height / 2) % height - height / 2  # (N, H)
    if disc:
        return dy[:, :, None] ** 2 + dx[:, None, :] ** 2 <= (size / 2) ** 2
    return (np.abs(dy) <= size / 2)[:, :, None] & (np.abs(dx) <= size / 2)[:, None, :]


def _smooth_noise(rng, n, height, width, cell):
    """(n, H, W) float32 smooth noise of unit-ish amplitude: a random grid with one value
    per `cell` pixels, cubic-interpolated (a margin of one cell hides the border effects)."""
    grid = rng.standard_normal((n, height // cell + 3, width // cell + 3)).astype(np.float32)
    size = (width + 2 * cell, height + 2 * cell)
    return np.stack([cv2.resize(g, size, interpolation=cv2.INTER_CUBIC)[cell:cell + height, cell:cell + width]
                     for g in grid])


def _realistic_flow(rng, obj, vx, vy):
    """(u, v) quantised flow of the "realistic" texture (module docstring) for the object
    masks `obj` (N, H, W) moving at (vx, vy) px/frame."""
    n, h, w = obj.shape
    a = REALISTIC_FLOW
    soft = np.stack([cv2.GaussianBlur(m.astype(np.float32), (0, 0), 3) for m in obj])
    flows = []
    for velocity in (vx, vy):
        camera = _smooth_noise(rng, 1, h, w, 96)[0] * a["camera"] + _smooth_noise(rng, n, h, w, 96) * a["drift"]
        inside = soft * velocity * (1 + 0.2 * _smooth_noise(rng, n, h, w, 24))
        noise = _smooth_noise(rng, n, h, w, 8) * a["blobs"] + rng.standard_normal((n, h, w), np.float32) * a["fine"]
        flows.append(quantize_flow(camera + inside + noise))
    return flows


def render_video(rng, colour, motion, n_frames, width=160, height=120, flow_texture="plain"):
    """Render one video in memory.

    Returns (rgb, u, v): rgb (N, H, W, 3) uint8 in RGB order, u and v (N-1, H, W) uint8
    quantised flow, where flow frame t is the motion from RGB frame t to t+1 at the pixels
    of frame t (as TV-L1 dumps). The flow never sees the colour, the RGB never the velocity.
    Everything is composed in uint8 with integer noise: float images made this several
    times slower than writing the JPEGs.
    """
    vx, vy = _velocity(rng, motion)
    masks = _object_masks(rng, n_frames, height, width, vx, vy)
    colour_rgb = np.array(COLOURS[colour], np.float64) + rng.uniform(-COLOUR_JITTER, COLOUR_JITTER, 3)
    # Clip to [4, 251] so that adding noise in [-4, 4] cannot wrap around in uint8.
    colour_rgb = np.clip(np.rint(colour_rgb), 4, 251).astype(np.uint8)
    background = np.clip(np.rint(_background(rng, height, width)), 4, 251).astype(np.uint8)
    # Compose channel planes (3, N, H, W): np.where is several times faster there than on
    # interleaved (N, H, W, 3) pixels.
    planes = np.where(masks[None], colour_rgb[:, None, None, None],
                      np.ascontiguousarray(background.transpose(2, 0, 1))[:, None])
    # Per-frame noise in [-4, 4] from random bytes (uniform 0..7 + a fair bit, mean 4):
    # rng.integers on uint8 is slow here.
    b = np.frombuffer(rng.bytes(planes.size), np.uint8).reshape(planes.shape)
    planes += (b & 7) + ((b >> 4) & 1)
    planes -= np.uint8(4)
    rgb = np.moveaxis(planes, 0, -1)  # (N, H, W, 3) view

    if flow_texture == "realistic":
        return (rgb, *_realistic_flow(rng, masks[:-1], vx, vy))
    if flow_texture != "plain":
        raise ValueError(f"flow_texture must be one of {', '.join(FLOW_TEXTURES)}, not {flow_texture}")
    # Flow = velocity inside the object, 0 outside, plus noise. The noise is added in
    # quantisation steps (1 step = 40/255 px), which is the same as quantising a flow
    # whose noise falls on the quantisation grid, and avoids float images.
    obj = masks[:-1]
    flows = []
    for velocity in (vx, vy):
        levels = quantize_flow(np.array([0.0, velocity])).astype(np.int16)
        q = np.where(obj, levels[1], levels[0]).astype(np.int16)
        q += rng.integers(-FLOW_NOISE, FLOW_NOISE + 1, size=q.shape, dtype=np.int16)
        flows.append(np.clip(q, 0, 255).astype(np.uint8))
    return rgb, flows[0], flows[1]
