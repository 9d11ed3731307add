"""One procedural person for the synthetic dataset: an articulated 2-D body facing the camera, posed within
anatomical limits, with the 16 MPII joints exactly where they are drawn.

:func:`make_figure` poses and proportions a figure; :func:`draw_figure` paints it (limbs, torso, head with eyes,
nose and mouth, clothing, skin and hair colours). :mod:`.synthetic` puts figures in scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import ImageDraw

from pose.layout import MPII

NUM_JOINTS = MPII.num_joints

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


def jitter_colour(rng: np.random.Generator, colour: Colour, amount: int) -> Colour:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)  # type: ignore[return-value]


def random_colour(rng: np.random.Generator) -> Colour:
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

    skin = jitter_colour(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 12)
    shirt, pants = random_colour(rng), random_colour(rng)
    shoes = jitter_colour(rng, (40, 30, 25), 30) if rng.random() < 0.6 else random_colour(rng)
    hair = jitter_colour(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 10)
    if rng.random() < 0.15:  # hat
        hair = random_colour(rng)
    sleeves = rng.choice(["long", "short", "none"], p=[0.45, 0.4, 0.15])
    legs = rng.choice(["long", "short"], p=[0.7, 0.3])
    gloves = rng.random() < 0.08
    colours: dict[str, Colour] = {
        "skin": skin,
        "torso": shirt,
        "upper_arm": skin if sleeves == "none" else shirt,
        "forearm": shirt if sleeves == "long" else skin,
        "hand": random_colour(rng) if gloves else skin,
        "thigh": pants,
        "shin": pants if legs == "long" else skin,
        "shoe": shoes,
        "hair": hair,
        "neck": skin,
        "eye": jitter_colour(rng, (30, 25, 20), 15),
        "mouth": jitter_colour(rng, (150, 60, 60), 25),
    }
    stripe_shirt = random_colour(rng) if rng.random() < 0.3 else None
    stripe_pants = random_colour(rng) if rng.random() < 0.15 else None
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


def xy(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def _disc(draw: ImageDraw.ImageDraw, centre: np.ndarray, radius: float, colour: Colour) -> None:
    x, y = float(centre[0]), float(centre[1])
    r = max(radius, 0.5)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


def limb(
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
    draw.polygon(xy(quad), fill=colour)
    _disc(draw, a, width_a / 2, colour)
    _disc(draw, b, width_b / 2, colour)
    if stripe is not None and n > 4:
        t0, t1 = 0.35, 0.55
        w0, w1 = width_a + (width_b - width_a) * t0, width_a + (width_b - width_a) * t1
        p0, p1 = a + d * t0, a + d * t1
        band = np.array([p0 + normal * w0 / 2, p1 + normal * w1 / 2, p1 - normal * w1 / 2, p0 - normal * w0 / 2])
        draw.polygon(xy(band), fill=stripe)


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
        limb(draw, hip, knee, w["thigh"], w["thigh"] * 0.8, c["thigh"], st["thigh"])
        limb(draw, knee, ankle, w["shin"], w["shin"] * 0.75, c["shin"], st["shin"])
        shin_dir = (ankle - knee) / max(np.hypot(*(ankle - knee)), 1e-6)
        foot = _ellipse_points(ankle + shin_dir * w["shin"] * 0.35, shin_dir, w["shin"] * 0.55, w["shin"] * 0.75, 16)
        draw.polygon(xy(foot), fill=c["shoe"])

    def arm(side: str) -> None:
        shoulder, elbow, wrist = p[J[f"{side}_shoulder"]], p[J[f"{side}_elbow"]], p[J[f"{side}_wrist"]]
        limb(draw, shoulder, elbow, w["upper_arm"], w["upper_arm"] * 0.85, c["upper_arm"], st["upper_arm"])
        limb(draw, elbow, wrist, w["forearm"], w["forearm"] * 0.8, c["forearm"], st["forearm"])
        d = (wrist - elbow) / max(np.hypot(*(wrist - elbow)), 1e-6)
        hand = _ellipse_points(wrist + d * w["forearm"] * 0.45, d, w["forearm"] * 0.5, w["forearm"] * 0.75, 14)
        draw.polygon(xy(hand), fill=c["hand"])

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
    draw.polygon(xy(torso), fill=c["torso"])
    if st["torso"] is not None:
        for t0 in (0.25, 0.55):
            t1 = t0 + 0.12
            e0 = torso[3] + (torso[0] - torso[3]) * t0, torso[2] + (torso[1] - torso[2]) * t0
            e1 = torso[3] + (torso[0] - torso[3]) * t1, torso[2] + (torso[1] - torso[2]) * t1
            draw.polygon(xy(np.array([e0[0], e0[1], e1[1], e1[0]])), fill=st["torso"])
    limb(draw, p[J["thorax"]], p[J["upper_neck"]], w["neck"], w["neck"], c["neck"])
    for side, front in zip(sides, fig.front_arms, strict=True):
        if front:
            arm(side)

    head = head_polygon(fig)
    draw.polygon(xy(head), fill=c["skin"])
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
        draw.polygon(xy(hair), fill=c["hair"])
    # face, turned a little: eyes, nose, mouth
    face = centre + side * fig.face_shift * half_w
    length = np.hypot(*(top - centre))
    eye_r = max(half_w * 0.13, 0.8)
    for sign in (-1, 1):
        _disc(draw, face + axis * length * 0.15 + side * sign * half_w * 0.38, eye_r, c["eye"])
    nose = face - axis * length * 0.12
    draw.line(xy(np.array([face + axis * length * 0.1, nose])), fill=c["eye"], width=max(1, int(eye_r)))
    mouth_c = face - axis * length * 0.42
    draw.line(
        xy(np.array([mouth_c - side * half_w * 0.28, mouth_c + side * half_w * 0.28])),
        fill=c["mouth"],
        width=max(1, int(eye_r)),
    )
