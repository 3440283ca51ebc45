"""Not-safe-for-work score (Yahoo open_nsfw, int8): a hint for hiding photos, never a verdict.

Input contract (models/manifest.json): BGR float32 minus the Caffe means (104, 117, 123), the image
resized to 256x256 (aspect ignored, as the model was trained) and centre-cropped to 224.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from daemon.vision.runtime import ModelHandle

BGR_MEANS = np.array([104.0, 117.0, 123.0], dtype=np.float32)


def to_model_input(image: Image.Image) -> np.ndarray:
    """[1,224,224,3] BGR minus means."""
    rgb = image.convert("RGB").resize((256, 256), Image.BILINEAR).crop((16, 16, 240, 240))
    bgr = np.asarray(rgb, dtype=np.float32)[..., ::-1]
    return (bgr - BGR_MEANS)[None, ...]


class NsfwScorer:
    def __init__(self, handle: ModelHandle) -> None:
        self.handle = handle

    def score(self, img_224: Image.Image) -> float:
        """Probability (0..1) that the photo is not safe for work."""
        out = self.handle.run(to_model_input(img_224))[0].reshape(-1)
        return float(np.clip(out[1], 0.0, 1.0))
