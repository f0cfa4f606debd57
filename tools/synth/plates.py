"""Synthetic licence plates: random texts, rendered plate images and realistic reader crops.

Everything is drawn with OpenCV's Hershey fonts and driven only by the ``np.random.Generator`` it is
given, so the same seed gives the same bytes. Three levels of use:

* ``random_plate_text(rng, fmt)``: a text from a format (``L`` letter, ``D`` digit).
* ``render_plate(text, rng, height_px)``: the flat plate itself (BGR uint8, tight to its border),
  several fonts, colours and layouts; ``augment=True`` adds perspective, blur, noise and lighting.
  The scenes generator paints this image onto cars with its own perspective.
* ``reader_crop(text, rng)``: what a plate reader receives in deployment: the plate seen in a scene
  (perspective, lighting, distance), cut out by a detector box that is a little loose or tight,
  at a small pixel size, blurred, noisy and JPEG-compressed. The plate readers train on these.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Letters used on plates. I, O and Q are left out, as on most European plates, because they are
#: confused with 1 and 0 even by people.
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
DIGITS = "0123456789"
#: The reader's character list, in model output order (index 0 of a CTC model is the blank).
CHARSET = DIGITS + LETTERS
DEFAULT_FORMAT = "LLDDDLL"

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)

# (background BGR, text BGR) pairs: EU white, UK/NL yellow, silver, and a dark plate with light text.
_STYLES = (
    ((245, 245, 245), (20, 20, 20)),
    ((230, 232, 236), (35, 30, 25)),
    ((40, 200, 245), (15, 15, 15)),
    ((200, 200, 195), (25, 25, 25)),
    ((30, 30, 30), (235, 235, 235)),
)
_STYLE_P = (0.38, 0.2, 0.22, 0.12, 0.08)
_EU_BLUE = (153, 51, 0)


def random_plate_text(rng: np.random.Generator, fmt: str = DEFAULT_FORMAT) -> str:
    """A plate text following ``fmt``: ``L`` = letter from ``LETTERS``, ``D`` = digit."""
    if not fmt or set(fmt) - {"L", "D"}:
        raise ValueError(f"plate format must be made of 'L' and 'D' only, got '{fmt}'")
    letters = rng.integers(0, len(LETTERS), len(fmt))
    digits = rng.integers(0, len(DIGITS), len(fmt))
    return "".join(LETTERS[a] if f == "L" else DIGITS[d] for f, a, d in zip(fmt, letters, digits))


def render_plate(
    text: str,
    rng: np.random.Generator,
    height_px: int = 48,
    augment: bool = False,
    font: int | None = None,
) -> np.ndarray:
    """The plate as a BGR uint8 image ``height_px`` tall, its width set by the text and layout.

    Drawn 4x larger then area-downscaled for anti-aliased strokes. ``font`` picks one of ``FONTS``
    (random when None). With ``augment``, the plate also gets ``augment_plate``'s photometric and
    geometric changes (same size out).
    """
    out, _ = _draw_plate(text, rng, height_px, font)
    return augment_plate(out, rng) if augment else out


def _draw_plate(
    text: str, rng: np.random.Generator, height_px: int, font: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``render_plate`` without augmentation, plus each character's centre (x, y) [len(text), 2] in its pixels."""
    if not text:
        raise ValueError("plate text is empty")
    if height_px < 8:
        raise ValueError(f"height_px must be >= 8, got {height_px}")
    ss = 4  # supersampling factor
    h = height_px * ss
    font = FONTS[rng.integers(0, len(FONTS))] if font is None else font
    bg, fg = _STYLES[rng.choice(len(_STYLES), p=_STYLE_P)]
    cap_ratio = rng.uniform(0.55, 0.7)  # character height / plate height
    scale = cv2.getFontScaleFromHeight(font, int(h * cap_ratio))
    thickness = max(1, round(h * rng.uniform(0.045, 0.085)))
    spacing = int(h * rng.uniform(0.03, 0.1))
    group_gap = int(h * rng.uniform(0.1, 0.3)) if rng.random() < 0.6 else 0
    sizes = [cv2.getTextSize(c, font, scale, thickness)[0] for c in text]

    advance = []
    for i, (w, _) in enumerate(sizes):
        gap = spacing
        if i + 1 < len(text) and text[i].isdigit() != text[i + 1].isdigit():
            gap += group_gap
        advance.append(w + gap)
    text_w = sum(advance) - spacing
    band_w = int(h * rng.uniform(0.35, 0.45)) if rng.random() < 0.4 and bg != (30, 30, 30) else 0
    margin = int(h * rng.uniform(0.15, 0.35))
    width = band_w + text_w + 2 * margin
    img = np.empty((h, width, 3), np.uint8)
    img[:] = bg
    if band_w:
        img[:, :band_w] = _EU_BLUE
        cx, cy, r = band_w // 2, int(h * 0.35), int(band_w * 0.3)
        cv2.circle(img, (cx, cy), r, (0, 204, 255), max(1, ss), cv2.LINE_AA)

    char_h = max(s[1] for s in sizes)
    y = (h + char_h) // 2 + int(h * rng.uniform(-0.04, 0.04))
    x = band_w + margin
    centres = np.empty((len(text), 2), np.float32)
    for i, (c, adv, (w, ch)) in enumerate(zip(text, advance, sizes)):
        cv2.putText(img, c, (x, y), font, scale, fg, thickness, cv2.LINE_AA)
        centres[i] = (x + w / 2, y - ch / 2)
        x += adv
    if rng.random() < 0.85:
        t = max(ss, int(h * rng.uniform(0.025, 0.05)))
        inset = int(h * rng.uniform(0.0, 0.05))
        cv2.rectangle(img, (inset, inset), (width - 1 - inset, h - 1 - inset), fg, t, cv2.LINE_AA)

    out_w = max(1, round(width / ss))
    out = cv2.resize(img, (out_w, height_px), interpolation=cv2.INTER_AREA)
    # Pixel centres: continuous coordinate c maps to c * scale, then -0.5 for the pixel grid.
    return out, (centres + 0.5) * np.float32([out_w / width, 1 / ss]) - 0.5


def augment_plate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild perspective, lighting, blur and noise on a plate image (same size out)."""
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-0.06, 0.06, (4, 2)) * np.float32([w, h]) * np.float32([0.3, 1.0])
    m = cv2.getPerspectiveTransform(src, (src + jitter).astype(np.float32))
    out = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return _photometric(out, rng)


def reader_crop(
    text: str,
    rng: np.random.Generator,
    plate_height: tuple[int, int] = (12, 48),
    padding: tuple[float, float] = (-0.04, 0.18),
) -> np.ndarray:
    """A plate as a detector's box crop would give it to the reader (BGR uint8).

    The plate is rendered, set in a patch of car body, warped by a random view (yaw, tilt, roll),
    lit, then cut by the warped plate's bounding box with each side moved by a random fraction of
    the box size in ``padding`` (negative = the box cuts into the plate, as a tight detector box
    does), scaled so the plate is ``plate_height`` pixels tall (distance), blurred, noised and JPEG
    compressed.
    """
    return reader_crop_with_centres(text, rng, plate_height, padding)[0]


def reader_crop_with_centres(
    text: str,
    rng: np.random.Generator,
    plate_height: tuple[int, int] = (12, 48),
    padding: tuple[float, float] = (-0.04, 0.18),
) -> tuple[np.ndarray, np.ndarray]:
    """``reader_crop`` (same bytes for the same ``rng``) and where each character's centre landed in
    the crop, (x, y) [len(text), 2] in crop pixels: dense per-position targets for reader training."""
    plate, centres = _draw_plate(text, rng, int(rng.integers(40, 64)), None)
    ph, pw = plate.shape[:2]
    # Car body around the plate: a colour, a vertical gradient and a little texture.
    canvas_h, canvas_w = ph * 2, pw + ph
    body = rng.uniform(20, 235, 3)
    grad = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.1), canvas_h // 4)[:, None, None]
    texture = body * grad + rng.normal(0, 6, (canvas_h // 4, canvas_w // 4, 3))
    canvas = cv2.resize(np.clip(texture, 0, 255).astype(np.uint8), (canvas_w, canvas_h))
    x0, y0 = ph // 2, ph // 2
    canvas[y0 : y0 + ph, x0 : x0 + pw] = plate

    corners = np.float32([[x0, y0], [x0 + pw, y0], [x0 + pw, y0 + ph], [x0, y0 + ph]])
    m = _view_homography(corners, rng)
    warped = cv2.warpPerspective(canvas, m, (canvas_w, canvas_h), borderMode=cv2.BORDER_REFLECT)
    quad = cv2.perspectiveTransform(corners[None], m)[0]
    centres = cv2.perspectiveTransform((centres + np.float32([x0, y0]))[None], m)[0]
    bx0, by0 = quad.min(0)
    bx1, by1 = quad.max(0)
    bw, bh = bx1 - bx0, by1 - by0
    pads = rng.uniform(*padding, 4) * np.float32([bw, bh, bw, bh])
    x_lo = int(np.clip(bx0 - pads[0], 0, canvas_w - 2))
    y_lo = int(np.clip(by0 - pads[1], 0, canvas_h - 2))
    x_hi = int(np.clip(bx1 + pads[2], x_lo + 2, canvas_w))
    y_hi = int(np.clip(by1 + pads[3], y_lo + 2, canvas_h))
    crop = _lighting(warped[y_lo:y_hi, x_lo:x_hi], rng)

    target_h = rng.uniform(*plate_height) * (y_hi - y_lo) / max(bh, 1.0)
    s = target_h / crop.shape[0]
    size = (max(4, round(crop.shape[1] * s)), max(4, round(crop.shape[0] * s)))
    scale = np.float32([size[0] / crop.shape[1], size[1] / crop.shape[0]])
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    centres = (centres - np.float32([x_lo, y_lo]) + 0.5) * scale - 0.5
    return _degrade(crop, rng, blur_sigma=0.035 * target_h), centres


def _view_homography(corners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Homography of a random viewpoint: roll, yaw (one side shorter), tilt and shear."""
    c = corners.mean(0)
    p = corners - c
    h = p[3, 1] - p[0, 1]
    roll = np.deg2rad(rng.uniform(-7, 7))
    rot = np.float32([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    p = p @ rot.T
    yaw = rng.uniform(-0.15, 0.15)  # relative height change of the right side vs the left
    tilt = rng.uniform(-0.1, 0.1)  # relative width change of the bottom vs the top
    p[:, 1] *= 1 + yaw * np.sign(p[:, 0])
    p[:, 0] *= 1 + tilt * np.sign(p[:, 1])
    p[:, 0] += rng.uniform(-0.08, 0.08) * h * np.sign(p[:, 1])  # shear
    p[:, 0] *= rng.uniform(0.8, 1.05)  # foreshortening of a yawed plate
    return cv2.getPerspectiveTransform(corners, (p + c).astype(np.float32))


def _lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, contrast/brightness and a soft shadow edge across the crop."""
    f = img.astype(np.float32) / 255.0
    f = f ** rng.uniform(0.6, 1.6)
    f = f * rng.uniform(0.55, 1.25) + rng.uniform(-0.12, 0.12)
    if rng.random() < 0.35:
        h, w = f.shape[:2]
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = (xx - w * rng.uniform(0.2, 0.8)) * np.cos(angle) + (yy - h * rng.uniform(0.2, 0.8)) * np.sin(
            angle
        )
        shade = 1 - rng.uniform(0.3, 0.6) / (1 + np.exp(-d / max(2.0, 0.05 * w)))
        f *= shade[..., None]
    return np.clip(f * 255.0, 0, 255).astype(np.uint8)


def _degrade(img: np.ndarray, rng: np.random.Generator, blur_sigma: float = 1.0) -> np.ndarray:
    """Optical/motion blur (up to ``blur_sigma``), sensor noise and JPEG compression, as a camera frame has."""
    r = rng.random()
    if r < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, max(0.35, blur_sigma)))
    elif r < 0.45:
        k = int(rng.integers(2, 4))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        img = cv2.filter2D(img, -1, kernel)
    sigma = rng.uniform(0, 8)
    noisy = img.astype(np.float32) + rng.normal(0, sigma, img.shape).astype(np.float32)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _degrade(_lighting(img, rng), rng)
