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

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pose.codec import HeatmapCodec
from pose.layout import MPII

from .augment import AugmentConfig, default_codec, top_down_sample
from .figure import (
    NUM_JOINTS,
    SKIN_TONES,
    Figure,
    draw_figure,
    head_polygon,
    jitter_colour,
    limb,
    make_figure,
    random_colour,
    xy,
)

CANVAS = 320  # source scene size in pixels; the crop is taken from it
SPLITS = ("train", "heldout")
HELDOUT_SEED_START = 1 << 40  # training seeds are 0 .. HELDOUT_SEED_START - 1
SYNTHETIC_AUGMENT = AugmentConfig(shift=0.3, shift_prob=0.25)


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
        draw.polygon([(0, y), (size, y + rng.uniform(-40, 40)), (size, size), (0, size)], fill=random_colour(rng))
    for _ in range(int(rng.integers(2, 14))):
        colour = random_colour(rng)
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.03, 0.5, 2) * size
        shape = rng.integers(5)
        if shape == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif shape == 2:
            pts = rng.uniform(0, 1, (int(rng.integers(3, 7)), 2)) * (w, h) + (x0, y0)
            draw.polygon(xy(pts), fill=colour)
        elif shape == 3:  # limb-like distractor
            a = np.array([x0, y0])
            b = a + rng.uniform(-0.3, 0.3, 2) * size
            skinlike = rng.random() < 0.5
            col = jitter_colour(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 15) if skinlike else colour
            width = rng.uniform(0.02, 0.07) * size
            limb(draw, a, b, width, width * 0.8, col)
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
            colour = random_colour(rng)
            if shape == 0:
                draw.rectangle((c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2), fill=colour)
            elif shape == 1:
                draw.ellipse((c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2), fill=colour)
            else:
                pts = c + rng.uniform(-0.5, 0.5, (int(rng.integers(3, 6)), 2)) * (w, h)
                draw.polygon(xy(pts), fill=colour)
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
