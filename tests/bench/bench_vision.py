"""Vision benchmark: per-model latency (1 and 2 interpreter threads), peak RSS with every model
loaded, face-similarity calibration figures, and int8 vs float32 classifier when a float file exists.

    .venv/bin/python -m tests.bench.bench_vision [--runs 30] [--float32 PATH]

Prints figures; asserts nothing. The float32 EfficientNet-Lite0 is not shipped: models/build.sh
writes it to build/models/out/efficientnet_lite0_float32.tflite (needs the 2.4 GB toolchain).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from daemon.vision.faces import FaceDetector, FaceEmbedder, detect_faces
from daemon.vision.labels import Classifier, load_categories, load_rules, photo_views
from daemon.vision.people import MATCH_THRESHOLD, cosine
from daemon.vision.runtime import ModelHandle

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
SAMPLES = Path(os.environ.get("SHOEBOX_SAMPLES", REPO.parent / "shared" / "samples"))
FLOAT_DEFAULT = REPO / "build" / "models" / "out" / "efficientnet_lite0_float32.tflite"
MODEL_FILES = ["efficientnet_lite0_int8.tflite", "face_detection_short_range.tflite",
               "face_detection_full_range.tflite", "MobileFaceNet.tflite", "open_nsfw_int8.tflite"]


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def latency(handle: ModelHandle, runs: int) -> tuple[float, float]:
    shape = handle.input_shapes[0]
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    for _ in range(3):
        handle.run(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        handle.run(x)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times)


def indexer_images(path: Path) -> tuple[Image.Image, Image.Image]:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    w, h = im.size
    s = 224 / min(w, h)
    r = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BILINEAR)
    left, top = (r.width - 224) // 2, (r.height - 224) // 2
    fit = im.copy()
    fit.thumbnail((720, 720), Image.BILINEAR)
    return r.crop((left, top, left + 224, top + 224)), fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--float32", type=Path, default=FLOAT_DEFAULT)
    args = ap.parse_args()

    print(f"cpu count {os.cpu_count()}, runs per figure {args.runs} (median / best, ms)")
    print(f"peak RSS before loading models: {rss_mb():.0f} MB")
    print("\n== latency per call ==")
    for name in MODEL_FILES:
        row = []
        for threads in (1, 2):
            med, best = latency(ModelHandle(MODELS / name, num_threads=threads), args.runs)
            row.append(f"{threads} thread{'s' if threads > 1 else ''}: {med:6.2f} / {best:6.2f}")
        print(f"{name:36s} " + "   ".join(row))

    print("\n== memory ==")
    handles = {n: ModelHandle(MODELS / n) for n in MODEL_FILES}
    before = rss_mb()
    for h in handles.values():
        latency(h, 1)
    print(f"peak RSS with all five models loaded (one interpreter each): {rss_mb():.0f} MB "
          f"(the earlier latency runs already loaded them once: peak before this step {before:.0f} MB)")

    print("\n== per photo (the indexer's work) ==")
    rules_path = MODELS / "labels.yml"
    clf = Classifier(handles["efficientnet_lite0_int8.tflite"], load_rules(rules_path),
                     categories=load_categories(rules_path))
    det = FaceDetector(handles["face_detection_full_range.tflite"])
    emb = FaceEmbedder(handles["MobileFaceNet.tflite"])
    nature = sorted((SAMPLES / "immich-test-assets/albums/nature").glob("*.jpg"))
    faces_dir = sorted((SAMPLES / "faces").glob("*.jpg")) + sorted(
        (SAMPLES / "immich-test-assets/metadata/faces").glob("*.jpg"))
    for path in nature:
        tile, fit = indexer_images(path)
        t = time.perf_counter()
        labels = clf.classify_photo(tile, fit)
        ms = (time.perf_counter() - t) * 1000
        views = len(photo_views(tile, fit))
        print(f"  {path.name:30s} {ms:6.1f} ms ({views} view{'s' if views > 1 else ''}) "
              + ", ".join(f"{lab.name} {lab.confidence:.2f}" for lab in labels))

    print("\n== faces: detection + embedding, and calibration cosines ==")
    embs = {}
    for path in faces_dir:
        _, fit = indexer_images(path)
        t = time.perf_counter()
        faces = detect_faces(fit, det, emb)
        ms = (time.perf_counter() - t) * 1000
        print(f"  {path.name:30s} {ms:6.1f} ms  {len(faces)} face(s)")
        for i, f in enumerate(faces):
            embs[f"{path.stem}#{i}"] = f.embedding
    same = {("obama#0", "obama2#0"), ("portrait#0", "portrait-orientation-6#0")}
    for a, b in itertools.combinations(embs, 2):
        kind = "same" if (a, b) in same or (b, a) in same else "different"
        print(f"  {kind:9s} {a:26s} {b:26s} {cosine(embs[a], embs[b]):+.3f}")
    print(f"  MATCH_THRESHOLD = {MATCH_THRESHOLD}")

    print("\n== int8 vs float32 classifier ==")
    if not args.float32.is_file():
        print(f"  left: no float32 EfficientNet-Lite0 at {args.float32} (run `make models-build`, "
              "2.4 GB toolchain, then rerun with --float32 PATH)")
        return
    f32 = Classifier(ModelHandle(args.float32), load_rules(rules_path), categories=load_categories(rules_path))
    med8, _ = latency(handles["efficientnet_lite0_int8.tflite"], args.runs)
    med32, _ = latency(f32.handle, args.runs)
    print(f"  latency 1 thread: int8 {med8:.2f} ms, float32 {med32:.2f} ms")
    names = (MODELS / "imagenet1k_labels.txt").read_text().splitlines()
    agree = 0
    photos = nature + faces_dir
    for path in photos:
        tile, _ = indexer_images(path)
        p8, p32 = clf.probabilities([tile]), f32.probabilities([tile])
        a, b = int(p8.argmax()), int(p32.argmax())
        agree += a == b
        print(f"  {path.name:30s} int8 {names[a].split(',')[0]} {p8[a]:.2f} | float32 {names[b].split(',')[0]} "
              f"{p32[b]:.2f} | float32 labels: " + ", ".join(lab.name for lab in f32.classify_photo(*indexer_images(path))))
    print(f"  top-1 agreement: {agree}/{len(photos)}")


if __name__ == "__main__":
    main()
