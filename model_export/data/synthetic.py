"""Procedural human figures with exact MPII 16-joint labels.

Every sample comes from its own seed, so sample ``i`` of a split is the same image
on every machine, in every worker and in every epoch that asks for it. The
held-out split draws its seeds from a range training never reaches.

A figure is an articulated 2-D body facing the camera (eyes, nose and mouth
drawn, so the person's right side is on the image's left, the MPII convention):
anatomically limited joint angles, varied proportions, limb thickness, torso and
head shapes, clothing and skin colours, foreshortened limbs, self-occlusion. It
stands on a textured, cluttered background, sometimes with another person
behind it and objects in front of it, and goes through the shared top-down crop
recipe (:mod:`.augment`), with shifts that cut joints off at the crop border
(those are marked not visible), then blur, lighting changes and noise.
Occluded joints stay labelled, as in MPII.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from service.core.codec import HeatmapCodec
from service.core.layout import MPII

from .augment import AugmentConfig, default_codec, top_down_sample

NUM_JOINTS = 16
CANVAS = 320  # source scene size in pixels; the crop is taken from it
SPLITS = ("train", "heldout")
HELDOUT_SEED_START = 1 << 40  # training seeds are 0 .. HELDOUT_SEED_START - 1
SYNTHETIC_AUGMENT = AugmentConfig(shift=0.3, shift_prob=0.25)

J = {name: i for i, name in enumerate(MPII.names)}
Colour = tuple[int, int, int]

SKIN_TONES: tuple[Colour, ...] = (
    (255, 224, 196),
    (241, 194, 167),
    (224, 172, 105),
    (198, 134, 66),
    (161, 102, 54),
    (120, 74, 40),
    (84, 52, 30),
)
HAIR_COLOURS: tuple[Colour, ...] = (
    (20, 16, 14),
    (60, 38, 22),
    (110, 72, 40),
    (200, 160, 90),
    (150, 150, 150),
    (140, 50, 20),
    (235, 225, 200),
)


def sample_seed(split: str, index: int) -> int:
    """The seed of sample ``index`` of ``split``; the two splits' seed ranges are disjoint."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0 <= index < HELDOUT_SEED_START:
        raise ValueError(f"sample index must be in [0, {HELDOUT_SEED_START}), got {index}")
    return index if split == "train" else HELDOUT_SEED_START + index


def sample_rng(seed: int, base_seed: int = 0) -> np.random.Generator:
    """Independent generator for one sample seed."""
    return np.random.default_rng(np.random.SeedSequence([base_seed, seed]))


# ---------------------------------------------------------------- figure
@dataclass
class Figure:
    """A posed figure in canvas pixels and everything needed to draw it."""

    joints: np.ndarray  # (16, 2) canvas pixels, MPII order
    widths: dict[str, float]  # limb name -> thickness in pixels
    colours: dict[str, Colour]  # part -> colour
    stripes: dict[str, Colour | None]  # part -> stripe colour or None
    head_axis: np.ndarray  # unit vector upper neck -> head top
    head_half: tuple[float, float]  # head ellipse half width, half length
    face_shift: float  # face yaw, fraction of the head's half width
    front_arms: tuple[bool, bool]  # right, left arm in front of the torso
    front_leg: int  # 0: right leg nearer the camera, 1: left
    palette: set[Colour] = field(default_factory=set)  # every colour the figure is drawn with


def _rotate(v: np.ndarray, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _jitter_colour(rng: np.random.Generator, colour: Colour, amount: int) -> Colour:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)  # type: ignore[return-value]


def _random_colour(rng: np.random.Generator) -> Colour:
    return tuple(int(c) for c in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _limb_direction(angle: float, down: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Unit vector ``angle`` degrees from ``down`` toward ``outward``."""
    t = np.deg2rad(angle)
    return np.cos(t) * down + np.sin(t) * outward


def _foreshorten(rng: np.random.Generator, p: float = 0.35, low: float = 0.45) -> float:
    return float(rng.uniform(low, 1.0)) if rng.random() < p else 1.0


def pose_figure(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
    """Joints (16, 2) in body units (about 1 = standing height, y down) plus widths and head shape."""
    s = rng.uniform(0.9, 1.1, size=12)
    head_len = 0.135 * s[0]
    neck_len = 0.06 * s[1]
    torso_len = 0.31 * s[2]
    shoulder_half = 0.11 * s[3]
    hip_half = 0.065 * s[4]
    upper_arm, forearm = 0.18 * s[5], 0.155 * s[6]
    thigh, shin = 0.245 * s[7], 0.245 * s[8]
    bulk = rng.uniform(0.75, 1.3)
    widths = {
        "upper_arm": 0.058 * bulk * s[9],
        "forearm": 0.046 * bulk * s[9],
        "thigh": 0.085 * bulk * s[10],
        "shin": 0.062 * bulk * s[10],
        "neck": 0.05 * bulk,
        "torso": bulk,
    }
    head = {"half_width": head_len * rng.uniform(0.36, 0.46), "half_length": head_len * rng.uniform(0.55, 0.62)}

    joints = np.zeros((NUM_JOINTS, 2))
    lean = float(np.clip(rng.normal(0, 10), -30, 30))
    up = np.array([np.sin(np.deg2rad(lean)), -np.cos(np.deg2rad(lean))])
    right = np.array([-up[1], up[0]])  # image right; the person's left for a front-facing figure
    yaw = rng.uniform(0.75, 1.0)  # torso turning about the vertical narrows it
    torso_vec = up * torso_len * _foreshorten(rng, 0.2, 0.7)
    joints[J["pelvis"]] = (0.0, 0.0)
    joints[J["thorax"]] = torso_vec
    joints[J["right_hip"]] = -right * hip_half * yaw
    joints[J["left_hip"]] = right * hip_half * yaw
    shoulder_drop = -up * 0.015
    joints[J["right_shoulder"]] = torso_vec - right * shoulder_half * yaw + shoulder_drop
    joints[J["left_shoulder"]] = torso_vec + right * shoulder_half * yaw + shoulder_drop
    neck_dir = _rotate(up, rng.normal(0, 8))
    joints[J["upper_neck"]] = torso_vec + neck_dir * neck_len
    head_dir = _rotate(neck_dir, float(np.clip(rng.normal(0, 14), -35, 35)))
    joints[J["head_top"]] = joints[J["upper_neck"]] + head_dir * head_len

    down = -up
    for side, outward in (("right", -right), ("left", right)):
        # arm: 0 deg hangs down, 90 is out to the side, 180 straight up, < 0 across the body
        shoulder = joints[J[f"{side}_shoulder"]]
        a = rng.uniform(-35, 185) if rng.random() < 0.6 else float(np.clip(rng.normal(20, 25), -35, 185))
        elbow = shoulder + _limb_direction(a, down, outward) * upper_arm * _foreshorten(rng)
        flex = rng.uniform(0, 150) * (1 if rng.random() < 0.7 else -0.5)
        wrist = elbow + _limb_direction(a + flex, down, outward) * forearm * _foreshorten(rng)
        joints[J[f"{side}_elbow"]], joints[J[f"{side}_wrist"]] = elbow, wrist
        # leg: thigh mostly near vertical, sometimes kicked out or raised
        hip = joints[J[f"{side}_hip"]]
        t = float(np.clip(rng.normal(8, 14), -25, 60)) if rng.random() < 0.85 else rng.uniform(-25, 120)
        knee = hip + _limb_direction(t, down, outward) * thigh * _foreshorten(rng, 0.3, 0.35)
        bend = rng.uniform(-15, 110) * (1 if rng.random() < 0.5 else -1) if rng.random() < 0.6 else rng.normal(0, 8)
        ankle = knee + _limb_direction(t + bend, down, outward) * shin * _foreshorten(rng, 0.3, 0.5)
        joints[J[f"{side}_knee"]], joints[J[f"{side}_ankle"]] = knee, ankle
    head["axis_x"], head["axis_y"] = float(head_dir[0]), float(head_dir[1])
    return joints, widths, head


def make_figure(rng: np.random.Generator, height_px: float, anchor: np.ndarray) -> Figure:
    """Pose, dress and place a figure: its joint box is centred on ``anchor``, ``height_px`` tall-ish."""
    joints, widths, head = pose_figure(rng)
    lo, hi = joints.min(axis=0), joints.max(axis=0)
    extent = max(hi[1] - lo[1], 0.6 * (hi[0] - lo[0]), 0.3)
    scale = height_px / extent
    joints = (joints - (lo + hi) / 2) * scale + anchor
    px = {k: v * scale for k, v in widths.items() if k != "torso"}
    px["torso"] = widths["torso"]
    px["hip_width"] = widths["thigh"] * scale

    skin = _jitter_colour(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 12)
    shirt, pants = _random_colour(rng), _random_colour(rng)
    shoes = _jitter_colour(rng, (40, 30, 25), 30) if rng.random() < 0.6 else _random_colour(rng)
    hair = _jitter_colour(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 10)
    if rng.random() < 0.15:  # hat
        hair = _random_colour(rng)
    sleeves = rng.choice(["long", "short", "none"], p=[0.45, 0.4, 0.15])
    legs = rng.choice(["long", "short"], p=[0.7, 0.3])
    gloves = rng.random() < 0.08
    colours: dict[str, Colour] = {
        "skin": skin,
        "torso": shirt,
        "upper_arm": skin if sleeves == "none" else shirt,
        "forearm": shirt if sleeves == "long" else skin,
        "hand": _random_colour(rng) if gloves else skin,
        "thigh": pants,
        "shin": pants if legs == "long" else skin,
        "shoe": shoes,
        "hair": hair,
        "neck": skin,
        "eye": _jitter_colour(rng, (30, 25, 20), 15),
        "mouth": _jitter_colour(rng, (150, 60, 60), 25),
    }
    stripe_shirt = _random_colour(rng) if rng.random() < 0.3 else None
    stripe_pants = _random_colour(rng) if rng.random() < 0.15 else None
    stripes: dict[str, Colour | None] = {part: None for part in colours}
    for part in ("torso", "upper_arm", "forearm"):
        if colours[part] == shirt:
            stripes[part] = stripe_shirt
    for part in ("thigh", "shin"):
        if colours[part] == pants:
            stripes[part] = stripe_pants
    palette = set(colours.values()) | {c for c in stripes.values() if c is not None}
    return Figure(
        joints=joints,
        widths=px,
        colours=colours,
        stripes=stripes,
        head_axis=np.array([head["axis_x"], head["axis_y"]]),
        head_half=(head["half_width"] * scale, head["half_length"] * scale),
        face_shift=float(rng.uniform(-0.3, 0.3)),
        front_arms=(bool(rng.random() < 0.8), bool(rng.random() < 0.8)),
        front_leg=int(rng.integers(2)),
        palette=palette,
    )


def _xy(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def _disc(draw: ImageDraw.ImageDraw, centre: np.ndarray, radius: float, colour: Colour) -> None:
    x, y = float(centre[0]), float(centre[1])
    r = max(radius, 0.5)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


def _limb(
    draw: ImageDraw.ImageDraw,
    a: np.ndarray,
    b: np.ndarray,
    width_a: float,
    width_b: float,
    colour: Colour,
    stripe: Colour | None = None,
) -> None:
    """Tapered segment with round ends; optional band across its middle."""
    d = b - a
    n = np.hypot(*d)
    normal = np.array([-d[1], d[0]]) / n if n > 1e-6 else np.array([1.0, 0.0])
    quad = np.array(
        [a + normal * width_a / 2, b + normal * width_b / 2, b - normal * width_b / 2, a - normal * width_a / 2]
    )
    draw.polygon(_xy(quad), fill=colour)
    _disc(draw, a, width_a / 2, colour)
    _disc(draw, b, width_b / 2, colour)
    if stripe is not None and n > 4:
        t0, t1 = 0.35, 0.55
        w0, w1 = width_a + (width_b - width_a) * t0, width_a + (width_b - width_a) * t1
        p0, p1 = a + d * t0, a + d * t1
        band = np.array([p0 + normal * w0 / 2, p1 + normal * w1 / 2, p1 - normal * w1 / 2, p0 - normal * w0 / 2])
        draw.polygon(_xy(band), fill=stripe)


def _ellipse_points(centre: np.ndarray, axis: np.ndarray, half_w: float, half_l: float, n: int = 28) -> np.ndarray:
    """Polygon of an ellipse whose long half-axis ``half_l`` runs along unit ``axis``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    side = np.array([-axis[1], axis[0]])
    return centre + np.cos(t)[:, None] * axis * half_l + np.sin(t)[:, None] * side * half_w


def head_polygon(fig: Figure) -> np.ndarray:
    """The drawn head outline (its bounding box is the figure's head box)."""
    neck, top = fig.joints[J["upper_neck"]], fig.joints[J["head_top"]]
    half_w, half_l = fig.head_half
    centre = top - fig.head_axis * (half_l * 0.96)  # head top lies just inside the hair
    return _ellipse_points(centre, fig.head_axis, half_w, max(half_l, 0.5 * np.hypot(*(top - neck)) + 1))


def draw_figure(draw: ImageDraw.ImageDraw, fig: Figure) -> None:
    """Paint a figure, far limbs first, torso, near limbs, then the head and face."""
    p, w, c, st = fig.joints, fig.widths, fig.colours, fig.stripes

    def leg(side: str) -> None:
        hip, knee, ankle = p[J[f"{side}_hip"]], p[J[f"{side}_knee"]], p[J[f"{side}_ankle"]]
        _limb(draw, hip, knee, w["thigh"], w["thigh"] * 0.8, c["thigh"], st["thigh"])
        _limb(draw, knee, ankle, w["shin"], w["shin"] * 0.75, c["shin"], st["shin"])
        shin_dir = (ankle - knee) / max(np.hypot(*(ankle - knee)), 1e-6)
        foot = _ellipse_points(ankle + shin_dir * w["shin"] * 0.35, shin_dir, w["shin"] * 0.55, w["shin"] * 0.75, 16)
        draw.polygon(_xy(foot), fill=c["shoe"])

    def arm(side: str) -> None:
        shoulder, elbow, wrist = p[J[f"{side}_shoulder"]], p[J[f"{side}_elbow"]], p[J[f"{side}_wrist"]]
        _limb(draw, shoulder, elbow, w["upper_arm"], w["upper_arm"] * 0.85, c["upper_arm"], st["upper_arm"])
        _limb(draw, elbow, wrist, w["forearm"], w["forearm"] * 0.8, c["forearm"], st["forearm"])
        d = (wrist - elbow) / max(np.hypot(*(wrist - elbow)), 1e-6)
        hand = _ellipse_points(wrist + d * w["forearm"] * 0.45, d, w["forearm"] * 0.5, w["forearm"] * 0.75, 14)
        draw.polygon(_xy(hand), fill=c["hand"])

    sides = ("right", "left")
    back_leg = sides[1 - fig.front_leg]
    leg(back_leg)
    leg(sides[fig.front_leg])
    for side, front in zip(sides, fig.front_arms, strict=True):
        if not front:
            arm(side)

    # torso: shoulders to hips, a little past both so thorax and pelvis sit on it
    rs, ls = p[J["right_shoulder"]], p[J["left_shoulder"]]
    rh, lh = p[J["right_hip"]], p[J["left_hip"]]
    up = (rs + ls) / 2 - (rh + lh) / 2
    up_len = max(np.hypot(*up), 1e-6)
    up_u = up / up_len
    across = (ls - rs) / max(np.hypot(*(ls - rs)), 1e-6)
    sw, hw = w["upper_arm"] * 0.45, w["hip_width"] * 0.5
    top_pad, bottom_pad = up_u * 0.06 * up_len, -up_u * 0.1 * up_len
    torso = np.array(
        [
            rs - across * sw + top_pad,
            ls + across * sw + top_pad,
            lh + across * hw + bottom_pad,
            rh - across * hw + bottom_pad,
        ]
    )
    draw.polygon(_xy(torso), fill=c["torso"])
    if st["torso"] is not None:
        for t0 in (0.25, 0.55):
            t1 = t0 + 0.12
            e0 = torso[3] + (torso[0] - torso[3]) * t0, torso[2] + (torso[1] - torso[2]) * t0
            e1 = torso[3] + (torso[0] - torso[3]) * t1, torso[2] + (torso[1] - torso[2]) * t1
            draw.polygon(_xy(np.array([e0[0], e0[1], e1[1], e1[0]])), fill=st["torso"])
    _limb(draw, p[J["thorax"]], p[J["upper_neck"]], w["neck"], w["neck"], c["neck"])
    for side, front in zip(sides, fig.front_arms, strict=True):
        if front:
            arm(side)

    head = head_polygon(fig)
    draw.polygon(_xy(head), fill=c["skin"])
    axis = fig.head_axis
    side = np.array([-axis[1], axis[0]])
    half_w, _ = fig.head_half
    centre = head.mean(axis=0)
    top = p[J["head_top"]]
    # hair: the head outline above a line across the forehead
    rel = (head - centre) @ axis
    cut = rel.max() * 0.35
    hair = head[rel >= cut]
    if len(hair) >= 3:
        draw.polygon(_xy(hair), fill=c["hair"])
    # face, turned a little: eyes, nose, mouth
    face = centre + side * fig.face_shift * half_w
    length = np.hypot(*(top - centre))
    eye_r = max(half_w * 0.13, 0.8)
    for sign in (-1, 1):
        _disc(draw, face + axis * length * 0.15 + side * sign * half_w * 0.38, eye_r, c["eye"])
    nose = face - axis * length * 0.12
    draw.line(_xy(np.array([face + axis * length * 0.1, nose])), fill=c["eye"], width=max(1, int(eye_r)))
    mouth_c = face - axis * length * 0.42
    draw.line(
        _xy(np.array([mouth_c - side * half_w * 0.28, mouth_c + side * half_w * 0.28])),
        fill=c["mouth"],
        width=max(1, int(eye_r)),
    )


# ---------------------------------------------------------------- scene
def draw_background(rng: np.random.Generator, size: int = CANVAS) -> Image.Image:
    """Smooth colour field, optional texture, then clutter shapes."""
    coarse = rng.integers(0, 256, (int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), np.float32)
    kind = rng.integers(5)
    if kind > 0:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        if kind == 1:  # stripes
            angle = rng.uniform(0, np.pi)
            freq = rng.uniform(0.05, 0.5)
            tex = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq)
        elif kind == 2:  # checker / tiles
            cell = rng.integers(6, 40)
            tex = (((xx // cell) + (yy // cell)) % 2) * 2 - 1.0
        else:  # blotchy or fine noise
            n = int(rng.choice([8, 24, 64, 160]))
            tex = (
                np.asarray(
                    Image.fromarray(rng.integers(0, 256, (n, n), dtype=np.uint8)).resize(
                        (size, size), Image.Resampling.BILINEAR
                    ),
                    np.float32,
                )
                / 127.5
                - 1.0
            )
        tint = rng.uniform(-80, 80, 3).astype(np.float32)
        base = base + tex[..., None] * tint
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.4:  # floor
        y = float(rng.uniform(0.5, 0.9) * size)
        draw.polygon([(0, y), (size, y + rng.uniform(-40, 40)), (size, size), (0, size)], fill=_random_colour(rng))
    for _ in range(int(rng.integers(2, 14))):
        colour = _random_colour(rng)
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.03, 0.5, 2) * size
        shape = rng.integers(5)
        if shape == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif shape == 2:
            pts = rng.uniform(0, 1, (int(rng.integers(3, 7)), 2)) * (w, h) + (x0, y0)
            draw.polygon(_xy(pts), fill=colour)
        elif shape == 3:  # limb-like distractor
            a = np.array([x0, y0])
            b = a + rng.uniform(-0.3, 0.3, 2) * size
            skinlike = rng.random() < 0.5
            col = _jitter_colour(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 15) if skinlike else colour
            width = rng.uniform(0.02, 0.07) * size
            _limb(draw, a, b, width, width * 0.8, col)
        else:
            draw.line([(x0, y0), (x0 + w, y0 + h)], fill=colour, width=int(rng.integers(1, 6)))
    return image


@dataclass
class Scene:
    """A rendered source scene and the main figure's labels, in canvas pixels."""

    image: np.ndarray  # (CANVAS, CANVAS, 3) uint8 RGB
    keypoints: np.ndarray  # (16, 2)
    visible: np.ndarray  # (16,) all labelled on the canvas
    head_box: tuple[float, float, float, float]  # x1, y1, x2, y2 of the drawn head
    center: np.ndarray  # (2,) centre of the person box
    box_size: float  # side of the square person box (1.25 x the joint extent)
    figure: Figure


def render_scene(
    rng: np.random.Generator,
    occluders: bool = True,
    distractors: bool = True,
    blur: bool = True,
    size: int = CANVAS,
) -> Scene:
    """Background, maybe a person behind, the main figure, maybe objects in front."""
    image = draw_background(rng, size)
    draw = ImageDraw.Draw(image)
    height = float(rng.uniform(0.45, 0.62) * size)
    anchor = np.array([size / 2, size / 2]) + rng.uniform(-0.04, 0.04, 2) * size
    if distractors and rng.random() < 0.3:
        offset = rng.choice([-1, 1]) * rng.uniform(0.35, 0.6) * size
        other = make_figure(
            rng, height * rng.uniform(0.6, 1.1), anchor + np.array([offset, rng.uniform(-0.2, 0.2) * size])
        )
        draw_figure(draw, other)
    fig = make_figure(rng, height, anchor)
    draw_figure(draw, fig)
    head = head_polygon(fig)
    head_box = (*head.min(axis=0), *head.max(axis=0))
    lo, hi = fig.joints.min(axis=0), fig.joints.max(axis=0)
    centre = (lo + hi) / 2
    box = 1.25 * max(hi[0] - lo[0], hi[1] - lo[1])
    if occluders and rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 3))):
            c = centre + rng.uniform(-0.4, 0.4, 2) * box
            w, h = rng.uniform(0.08, 0.35, 2) * box
            shape = rng.integers(3)
            colour = _random_colour(rng)
            if shape == 0:
                draw.rectangle((c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2), fill=colour)
            elif shape == 1:
                draw.ellipse((c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2), fill=colour)
            else:
                pts = c + rng.uniform(-0.5, 0.5, (int(rng.integers(3, 6)), 2)) * (w, h)
                draw.polygon(_xy(pts), fill=colour)
    if blur and rng.random() < 0.25:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.8))))
    return Scene(
        image=np.asarray(image),
        keypoints=fig.joints.copy(),
        visible=np.ones(NUM_JOINTS, np.float32),
        head_box=tuple(float(v) for v in head_box),  # type: ignore[arg-type]
        center=centre,
        box_size=float(box),
        figure=fig,
    )


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting gradient, gamma and sensor noise on a (3, H, W) float image in [0, 1]."""
    _, h, w = image.shape
    if rng.random() < 0.5:
        gx, gy = rng.uniform(-0.5, 0.5, 2)
        ramp = (
            1.0
            + gx * np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
            + gy * np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
        )
        image = image * ramp[None]
    if rng.random() < 0.3:
        image = np.clip(image, 0, 1) ** np.float32(rng.uniform(0.7, 1.4))
    if rng.random() < 0.5:
        image = image + rng.normal(0, rng.uniform(0.005, 0.04), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def generate_sample(
    seed: int,
    base_seed: int = 0,
    codec: HeatmapCodec | None = None,
    augment: AugmentConfig | None = SYNTHETIC_AUGMENT,
) -> dict[str, np.ndarray]:
    """One training sample (the format of :mod:`.augment`) from one seed."""
    rng = sample_rng(seed, base_seed)
    scene = render_scene(rng)
    x1, y1, x2, y2 = scene.head_box
    head_size = 0.6 * float(np.hypot(x2 - x1, y2 - y1))
    fill = tuple(int(v) for v in scene.image[0, 0])
    sample = top_down_sample(
        scene.image,
        scene.keypoints,
        scene.visible,
        scene.center,
        scene.box_size,
        head_size,
        codec=codec or default_codec(),
        rng=rng if augment is not None else None,
        config=augment,
        fill=fill,  # type: ignore[arg-type]
    )
    if augment is not None:
        sample["image"] = _photometric(sample["image"], rng)
    return sample


class SyntheticPoseDataset:
    """Map-style dataset of synthetic figures (works with ``torch.utils.data.DataLoader``).

    Item ``i`` in epoch ``e`` is sample ``e * size + i`` of the split, so every
    training epoch sees new figures; the held-out split ignores the epoch.
    """

    def __init__(
        self,
        split: str = "train",
        length: int = 10000,
        base_seed: int = 0,
        codec: HeatmapCodec | None = None,
        augment: AugmentConfig | None = SYNTHETIC_AUGMENT,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if length < 1:
            raise ValueError(f"dataset length must be positive, got {length}")
        self.split, self.size, self.base_seed = split, int(length), int(base_seed)
        self.codec = codec or default_codec()
        self.augment = augment
        self.epoch = 0
        self.layout = MPII

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def seed_of(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        offset = self.epoch * self.size if self.split == "train" else 0
        return sample_seed(self.split, offset + index)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return generate_sample(self.seed_of(index), self.base_seed, self.codec, self.augment)
