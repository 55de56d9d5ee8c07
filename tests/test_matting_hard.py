"""Alpha matting where colour alone misleads, on synthetic composites with known alpha:

- a translucent printed flag (uniform alpha 0.5, strong colour print) over foliage: the alpha
  must not follow the print;
- thin hair strands in front of a bright, busy background: no false alpha in the background.

Each image is ``alpha F + (1 - alpha) B`` with F, B and alpha made here, so the true alpha is known.
"""
from __future__ import annotations

import cv2
import numpy as np

from mattekit.matting import estimate_alpha


def _noise(rng, shape, sigma):
    """Smooth noise (H x W) with unit standard deviation, Gaussian-blurred at ``sigma`` px."""
    n = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return n / max(float(n.std()), 1e-6)


def foliage(rng, h, w):
    """A dark-to-mid green, leafy background (H x W x 3 in [0,1]) with texture at two scales."""
    leaves = 0.6 * _noise(rng, (h, w), 2.0) + 0.4 * _noise(rng, (h, w), 7.0)
    light = np.clip(0.35 + 0.15 * leaves, 0.05, 0.8)
    return np.clip(np.dstack([0.45 * light, light, 0.35 * light + 0.05 * _noise(rng, (h, w), 3.0)]), 0, 1)


def busy_bright(rng, h, w):
    """A bright, busy background (H x W x 3 in [0,1]): blobs of 8 light colours a few px across,
    as a sunlit street or foliage in bokeh would have, with slight shading."""
    palette = rng.uniform(0.45, 1.0, (8, 3)).astype(np.float32)
    votes = np.stack([_noise(rng, (h, w), 3.0) for _ in palette])
    image = palette[votes.argmax(0)]
    image += 0.02 * _noise(rng, (h, w), 4.0)[..., None]
    return np.clip(cv2.GaussianBlur(image, (0, 0), 0.7), 0, 1)


def translucent_flag(seed=0, h=180, w=240):
    """(image, trimap, alpha): a flag of uniform alpha 0.5 (blue field, white cross, red stripe)
    hanging from an opaque pole over foliage. The trimap knows the pole's core and the foliage
    more than 6 px from the flag; the whole flag is unknown."""
    rng = np.random.default_rng(seed)
    back = foliage(rng, h, w)
    front = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    top, bottom, left, right = 30, 150, 40, 220
    front[top:bottom, left:right] = (0.1, 0.2, 0.75)  # blue field
    front[80:100, left:right] = (0.95, 0.95, 0.95)  # white cross
    front[top:bottom, 100:120] = (0.95, 0.95, 0.95)
    front[top:45, 150:right] = (0.85, 0.1, 0.1)  # red stripe
    alpha[top:bottom, left:right] = 0.5
    pole = (slice(10, h), slice(30, 40))
    front[pole] = (0.45, 0.3, 0.15)
    front[pole] += 0.05 * _noise(rng, (h - 10, 10), 1.0)[..., None]
    alpha[pole] = 1.0
    image = np.clip(alpha[..., None] * front + (1 - alpha[..., None]) * back, 0, 1).astype(np.float32)
    trimap = np.full((h, w), 0.5, np.float32)
    near = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool)
    trimap[~near] = 0.0
    trimap[12:h, 32:38] = 1.0
    return image, trimap, alpha


def hair_strands(seed=0, h=200, w=240, strands=40):
    """(image, trimap, alpha): dark hair strands 1-2 px wide (anti-aliased) growing from an opaque
    head into a bright, busy background. The unknown band covers the strands' whole reach."""
    rng = np.random.default_rng(seed)
    back = busy_bright(rng, h, w)
    cover = np.zeros((h * 4, w * 4), np.float32)  # strands drawn at 4x and area-averaged: soft edges
    cv2.circle(cover, (4 * 60, 4 * 200), 4 * 90, 1.0, -1)
    for _ in range(strands):
        angle = rng.uniform(-1.4, 0.1)
        length = rng.uniform(60, 120)
        x, y = 60 + 85 * np.cos(angle), 200 + 85 * np.sin(angle)
        points = []
        curl = rng.uniform(-0.012, 0.012)
        for step in range(int(length)):
            points.append((int(4 * x), int(4 * y)))
            angle += curl
            x, y = x + np.cos(angle), y + np.sin(angle)
        cv2.polylines(cover, [np.array(points, np.int32)], False, 1.0, thickness=int(rng.integers(4, 8)))
    alpha = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
    hair = np.dstack([np.full((h, w), v, np.float32) for v in (0.32, 0.2, 0.1)])
    hair += 0.04 * _noise(rng, (h, w), 1.5)[..., None]
    image = np.clip(alpha[..., None] * hair + (1 - alpha[..., None]) * back, 0, 1).astype(np.float32)
    trimap = np.full((h, w), 0.5, np.float32)
    head = np.zeros((h, w), np.uint8)
    cv2.circle(head, (60, 200), 80, 1, -1)
    trimap[head.astype(bool)] = 1.0
    reach = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    trimap[~reach] = 0.0
    return image, trimap, alpha


# Bounds between the old matting's figures and the new one's (seeds 0 and 1; in each test's docstring).
FLAG_SAD, FLAG_PRINT_GAP = 5.5, 0.3
HAIR_SAD, HAIR_FALSE_ALPHA = (1.68, 0.8), (1.2, 0.5)


def sad(alpha, gt, trimap):
    unknown = (trimap > 0.1) & (trimap < 0.9)
    return float(np.abs(alpha[unknown] - gt[unknown]).sum() / 1000)


def test_uniform_partial_alpha_does_not_follow_the_print():
    """The old matting made the flag's alpha follow its print (about 0.8 on the white cross, 0.2
    on the blue field; SAD 7.8 and 8.9 for seeds 0 and 1, closed-form 8.8 and 8.6)."""
    for seed in (0, 1):
        image, trimap, gt = translucent_flag(seed)
        alpha = estimate_alpha(image, trimap)
        assert sad(alpha, gt, trimap) < FLAG_SAD, seed
        cross, field = alpha[85:95, 150:210], alpha[50:75, 130:210]
        assert abs(float(cross.mean()) - float(field.mean())) < FLAG_PRINT_GAP, seed


def test_hair_over_a_busy_background_leaves_little_false_alpha():
    """False alpha = the sum of alpha over unknown pixels whose true alpha is 0 (old: 1.20 and 0.50)."""
    for seed in (0, 1):
        image, trimap, gt = hair_strands(seed)
        alpha = estimate_alpha(image, trimap)
        unknown = (trimap > 0.1) & (trimap < 0.9)
        false_alpha = float(alpha[unknown & (gt == 0)].sum() / 1000)
        assert false_alpha < HAIR_FALSE_ALPHA[seed], seed
        assert sad(alpha, gt, trimap) < HAIR_SAD[seed], seed
