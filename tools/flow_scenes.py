"""Textured, moving test material for optical flow: pairs of grey frames with their true flow.

    from tools.flow_scenes import make_pair, make_pairs
    prev, nxt, flow = make_pair(340, 256, seed=0)   # uint8 (H, W) x 2, float32 (H, W, 2)
    prevs, nexts = make_pairs(8, 96, 72, seed=0)    # lists of uint8 (H, W) frames

    python -m tools.flow_scenes --size 340x256 --seed 0 --out /tmp/scene.png   # a look at one

A scene is a stack of layers painted back to front, each a multi-scale texture (smoothed noise
summed over octaves, 1/f-like, with a few soft strokes and blobs) cut to a shape and moved by its
own similarity transform between the two frames:

- a static background covering the frame;
- a large zooming panel (3-6 % per frame about its centre, drifting slowly);
- a rotating disc (3-7 degrees per frame);
- two translating objects (an ellipse and a polygon), one slow, one fast (up to 15 px/frame);
- an occluding foreground plane entering from one side, its straight edge moving 4-9 px/frame
  and covering parts of the others.

Speeds are given for 340x256 and scaled with the frame size (a 96x72 scene moves the same
fraction of the frame). Frames get a little sensor noise (sigma 1 grey level). The flow is the
true forward motion of the topmost layer at each pixel of the first frame. Everything follows
from `seed` (numpy's default_rng); pure numpy / OpenCV.
"""
import argparse
import math

import cv2
import numpy as np

REFERENCE_SIZE = (340, 256)  # speeds below are pixels per frame at this size
NOISE_SIGMA = 1.0  # grey levels


# ---------------------------------------------------------------- textures
def fractal_texture(rng, height, width, octaves=7, roughness=0.35):
    """float32 (height, width) in 0..1: value noise summed over octaves (cell sizes 1, 2, 4, ...
    pixels, amplitude cell ** roughness), plus soft strokes and blobs for some sharper edges."""
    tex = np.zeros((height, width), np.float32)
    for k in range(octaves):
        cell = 2 ** k
        h, w = height // cell + 4, width // cell + 4
        noise = rng.standard_normal((h, w)).astype(np.float32)
        up = cv2.resize(noise, (w * cell, h * cell), interpolation=cv2.INTER_CUBIC)
        tex += cell ** roughness * up[2 * cell:2 * cell + height, 2 * cell:2 * cell + width]
    marks = np.zeros_like(tex)
    scale = max(height, width)
    for _ in range(int(rng.integers(6, 14))):  # strokes and blobs of random grey
        value = float(rng.uniform(-1, 1))
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(marks, p, q, value, max(1, int(scale * rng.uniform(0.003, 0.02))), cv2.LINE_AA)
        else:
            cv2.circle(marks, p, max(2, int(scale * rng.uniform(0.01, 0.06))), value, -1, cv2.LINE_AA)
    tex = (tex - tex.mean()) / (tex.std() + 1e-6) + 1.5 * cv2.GaussianBlur(marks, (0, 0), 0.8)
    lo, hi = np.percentile(tex, [1, 99])
    return np.clip((tex - lo) / (hi - lo + 1e-6), 0, 1).astype(np.float32)


# ---------------------------------------------------------------- layers
def _rotation(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


class Layer:
    """A textured shape moved by a similarity transform: at time t its local point q (pixels,
    relative to the shape's centre) lies at centre + t * velocity + zoom**t * R(t * spin) q."""

    def __init__(self, texture, shape, centre, velocity=(0.0, 0.0), spin=0.0, zoom=1.0):
        self.texture, self.shape = texture, shape  # shape(qx, qy) -> coverage 0..1
        self.centre, self.velocity = np.asarray(centre, float), np.asarray(velocity, float)
        self.spin, self.zoom = spin, zoom

    def to_local(self, xs, ys, t):
        """Image points at time t -> local points (qx, qy)."""
        centre = self.centre + t * self.velocity
        inv = _rotation(-t * self.spin) / self.zoom ** t
        dx, dy = xs - centre[0], ys - centre[1]
        return inv[0, 0] * dx + inv[0, 1] * dy, inv[1, 0] * dx + inv[1, 1] * dy

    def to_image(self, qx, qy, t):
        centre = self.centre + t * self.velocity
        fwd = _rotation(t * self.spin) * self.zoom ** t
        return (centre[0] + fwd[0, 0] * qx + fwd[0, 1] * qy,
                centre[1] + fwd[1, 0] * qx + fwd[1, 1] * qy)

    def render(self, xs, ys, t):
        """(values 0..1, coverage 0..1) of the layer at image points (xs, ys) at time t."""
        qx, qy = self.to_local(xs, ys, t)
        th, tw = self.texture.shape
        mx = (qx + tw / 2).astype(np.float32)
        my = (qy + th / 2).astype(np.float32)
        values = cv2.remap(self.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        return values, self.shape(qx, qy)


def _soft(distance):
    """Coverage from a signed distance in pixels (negative inside): a one-pixel ramp."""
    return np.clip(0.5 - distance, 0.0, 1.0)


def ellipse(a, b):
    # distance approximated by scaling the implicit function with the local radius
    return lambda qx, qy: _soft((np.sqrt((qx / a) ** 2 + (qy / b) ** 2) - 1) * min(a, b))


def polygon(vertices):
    """Convex polygon, vertices in order of increasing angle (clockwise on screen, y down);
    coverage from the distance to its edges."""
    edges = []
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        nx, ny = y1 - y0, -(x1 - x0)  # outward normal for this orientation
        norm = math.hypot(nx, ny)
        edges.append((nx / norm, ny / norm, (nx * x0 + ny * y0) / norm))

    def shape(qx, qy):
        d = np.full(np.shape(qx), -np.inf)
        for nx, ny, c in edges:
            d = np.maximum(d, nx * qx + ny * qy - c)
        return _soft(d)
    return shape


def half_plane(nx, ny):
    """Points with nx qx + ny qy <= 0 (n a unit normal pointing out of the plane)."""
    return lambda qx, qy: _soft(nx * qx + ny * qy)


def whole():
    return lambda qx, qy: np.ones(np.shape(qx))


# ---------------------------------------------------------------- scenes
def make_layers(width, height, rng):
    """The layers of one scene, back to front."""
    k = min(width / REFERENCE_SIZE[0], height / REFERENCE_SIZE[1])  # speed scale
    diag = math.hypot(width, height)
    big = int(diag * 1.6) + 8  # texture size that covers any layer position

    def texture(contrast):
        tex = fractal_texture(rng, big, big)
        mean = rng.uniform(0.3, 0.7)
        return np.clip(mean + contrast * (tex - 0.5), 0, 1).astype(np.float32)

    def at(fx, fy):
        return (fx * width, fy * height)

    def direction(speed):
        angle = rng.uniform(0, 2 * math.pi)
        return (speed * k * math.cos(angle), speed * k * math.sin(angle))

    layers = [Layer(texture(0.8), whole(), at(0.5, 0.5))]  # static background
    w, h = 0.55 * width, 0.55 * height
    layers.append(Layer(texture(0.7), polygon(np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2),
                        at(rng.uniform(0.3, 0.45), rng.uniform(0.35, 0.5)),
                        velocity=direction(rng.uniform(0.5, 2.0)),
                        zoom=1 + rng.uniform(0.03, 0.06)))  # zooming panel
    r = 0.2 * height
    layers.append(Layer(texture(0.9), ellipse(r, r), at(rng.uniform(0.6, 0.75), rng.uniform(0.3, 0.7)),
                        velocity=direction(rng.uniform(0.0, 1.5)),
                        spin=math.radians(rng.choice([-1, 1]) * rng.uniform(3, 7))))  # rotating disc
    layers.append(Layer(texture(0.8), ellipse(0.14 * width, 0.1 * height),
                        at(rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)),
                        velocity=direction(rng.uniform(1.5, 5.0))))  # slow object
    sides = int(rng.integers(5, 8))
    angles = np.sort(rng.uniform(0, 2 * math.pi, sides))
    radius = 0.15 * height * rng.uniform(0.8, 1.2, sides)
    poly = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    layers.append(Layer(texture(0.9), polygon(poly), at(rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75)),
                        velocity=direction(rng.uniform(10.0, 15.0))))  # fast object
    edge_angle = rng.uniform(0, 2 * math.pi)  # occluding plane, edge through its centre
    nx, ny = math.cos(edge_angle), math.sin(edge_angle)
    centre = (width / 2 + nx * 0.3 * width, height / 2 + ny * 0.3 * height)  # enters from a side
    speed = rng.uniform(4.0, 9.0) * k
    layers.append(Layer(texture(0.6), half_plane(-nx, -ny), centre,
                        velocity=(-nx * speed, -ny * speed)))  # moves into the frame
    return layers


def render(layers, width, height, t, rng=None):
    """Frame at time t: float32 0..255, and the index of the topmost layer at each pixel."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width), np.float64)
    top = np.zeros((height, width), np.int64)
    for i, layer in enumerate(layers):
        values, cover = layer.render(xs, ys, t)
        img = img * (1 - cover) + values * cover
        top[cover > 0.5] = i
    img *= 255.0
    if rng is not None:
        img += rng.normal(0.0, NOISE_SIGMA, img.shape)
    return img, top


def true_flow(layers, top, width, height):
    """Forward flow of frame 0's pixels: where the topmost layer carries them at t = 1."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    flow = np.zeros((height, width, 2), np.float32)
    for i, layer in enumerate(layers):
        sel = top == i
        qx, qy = layer.to_local(xs[sel], ys[sel], 0.0)
        x1, y1 = layer.to_image(qx, qy, 1.0)
        flow[sel, 0], flow[sel, 1] = x1 - xs[sel], y1 - ys[sel]
    return flow


def make_pair(width, height, seed=0):
    """(prev uint8 (H, W), next uint8 (H, W), true forward flow float32 (H, W, 2))."""
    rng = np.random.default_rng(seed)
    layers = make_layers(width, height, rng)
    f0, top = render(layers, width, height, 0.0, rng)
    f1, _ = render(layers, width, height, 1.0, rng)
    to8 = lambda f: np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return to8(f0), to8(f1), true_flow(layers, top, width, height)


def make_pairs(n, width, height, seed=0):
    """n pairs of different scenes (seeds seed, seed + 1, ...): (prevs, nexts) lists."""
    pairs = [make_pair(width, height, seed + i) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


MIN_SIDE, MAX_SIDE = 32, 4096  # below, the 5-scale pyramid has nothing to work on; above, a typo


def parse_size(text):
    """'340x256' -> (340, 256) (width, height); ValueError naming the rule otherwise."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT (e.g. 340x256), got '{text}'") from None
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise ValueError(f"each side must be {MIN_SIDE}..{MAX_SIDE}, got '{text}'")
    return w, h


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="340x256", help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="scene.png", help="the two frames side by side")
    args = parser.parse_args(argv)
    try:
        width, height = parse_size(args.size)
    except ValueError as e:
        parser.error(f"--size: {e}")
    f0, f1, flow = make_pair(width, height, args.seed)
    cv2.imwrite(args.out, np.hstack([f0, f1]))
    speed = np.hypot(flow[..., 0], flow[..., 1])
    print(f"wrote {args.out}: {width}x{height}, speed max {speed.max():.1f} px, "
          f"mean {speed.mean():.2f} px, static {np.mean(speed < 0.05):.0%}")


if __name__ == "__main__":
    main()
