"""Image labels: EfficientNet-Lite0 (ImageNet-1k) probabilities mapped through models/labels.yml.

Why rules instead of raw ImageNet names: the model knows 1000 narrow classes ("tabby", "alp",
"espresso"); people search for "cat", "mountain", "coffee". labels.yml (generated from WordNet by
models/labels_build.py) gives each class a friendly name (or `ignore`), a threshold, a priority
and its categories. Classes sharing a friendly name are one label whose probability is the SUM of
theirs: softmax classes are mutually exclusive, and the int8 model spreads a cat over tabby /
tiger cat / Egyptian cat, none of which alone may pass the threshold.

Input (prepared once per photo by the indexer, from its single decode): the 224 px tile (shorter
side to 224, centre crop). A centre crop loses the sides of a panorama, so for wide photos
(width/height >= WIDE_RATIO) the left and right squares of the fit_720 image are classified too, as
PhotoPrism does; label and category probabilities are summed within each view, then the maximum
over the views is kept (summing maxima of different views would invent evidence).

Category labels: when no class of a category passes its threshold but the category's classes
together do (category_threshold in labels.yml, 0.4) the category itself becomes a label, e.g. "bird"
for a small bird the model spreads over grouse, limpkin and kite. A category already carried by an
accepted label is not repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from daemon.vision.runtime import ModelHandle

INPUT_SIZE = 224
WIDE_RATIO = 1.6
"""Aspect ratio from which a photo also gets its left and right crops classified."""


class LabelRulesError(ValueError):
    """labels.yml is missing, unreadable or does not cover the classifier's classes."""


@dataclass(frozen=True)
class LabelRule:
    name: str
    threshold: float
    priority: float
    categories: tuple[str, ...]


@dataclass(frozen=True)
class LabelResult:
    name: str
    categories: tuple[str, ...]
    confidence: float
    priority: float
    source: str = "image"


def load_rules(path: Path, *, num_classes: int = 1000) -> list[LabelRule | None]:
    """Read labels.yml into a list indexed by class; None for an ignored class."""
    import yaml  # PyYAML; imported here so the rest of the package imports without it

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelRulesError(f"cannot read label rules {path}: {exc}") from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise LabelRulesError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list):
        raise LabelRulesError(f"{path}: expected a mapping with a 'classes' list")
    default_threshold = float(doc.get("default_threshold", 0.15))
    rules: list[LabelRule | None] = [None] * num_classes
    seen: set[int] = set()
    for entry in doc["classes"]:
        try:
            index = int(entry["index"])
            name = str(entry["label"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelRulesError(f"{path}: class entry {entry!r} lacks index/label") from exc
        if not 0 <= index < num_classes or index in seen:
            raise LabelRulesError(f"{path}: class index {index} is out of range or repeated")
        seen.add(index)
        if name == "ignore":
            continue
        rules[index] = LabelRule(
            name=name,
            threshold=float(entry.get("threshold", default_threshold)),
            priority=float(entry.get("priority", 1.0)),
            categories=tuple(str(c) for c in entry.get("categories", ())),
        )
    if len(seen) != num_classes:
        missing = sorted(set(range(num_classes)) - seen)[:10]
        raise LabelRulesError(f"{path}: covers {len(seen)} of {num_classes} classes (missing e.g. {missing})")
    return rules


@dataclass(frozen=True)
class CategoryRules:
    """Category -> parent categories, and the summed probability a category needs to be a label."""

    parents: dict[str, tuple[str, ...]]
    threshold: float = 0.4
    thresholds: dict[str, float] = field(default_factory=dict)   # per-category overrides

    def threshold_for(self, category: str) -> float:
        return self.thresholds.get(category, self.threshold)


def load_categories(path: Path) -> CategoryRules:
    """The `categories:` table of labels.yml (empty when the file has none)."""
    import yaml

    try:
        doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise LabelRulesError(f"cannot read label rules {path}: {exc}") from exc
    table = doc.get("categories") or {} if isinstance(doc, dict) else {}
    if not isinstance(table, dict):
        raise LabelRulesError(f"{path}: 'categories' must be a mapping")
    return CategoryRules(parents={str(k): tuple(str(p) for p in (v or ())) for k, v in table.items()},
                         threshold=float(doc.get("category_threshold", 0.4)),
                         thresholds={str(k): float(v) for k, v in (doc.get("category_thresholds") or {}).items()})


def to_model_input(image: Image.Image) -> np.ndarray:
    """[1,224,224,3] float32 RGB 0..255 (normalisation is inside the graph)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (INPUT_SIZE, INPUT_SIZE):
        image = centre_square(image).resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)[None, ...]


def centre_square(image: Image.Image) -> Image.Image:
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return image.crop((left, top, left + s, top + s))


def photo_views(tile_224: Image.Image, fit_720: Image.Image | None = None,
                *, wide_ratio: float = WIDE_RATIO) -> list[Image.Image]:
    """The images to classify for one photo: the tile, plus left/right squares of a wide photo."""
    views = [tile_224]
    if fit_720 is not None:
        w, h = fit_720.size
        long_side, short_side = max(w, h), min(w, h)
        if short_side > 0 and long_side / short_side >= wide_ratio:
            s = short_side
            if w >= h:
                boxes = [(0, 0, s, s), (w - s, 0, w, s)]
            else:  # a tall panorama: top and bottom
                boxes = [(0, 0, s, s), (0, h - s, s, h)]
            views += [fit_720.crop(b).resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR) for b in boxes]
    return views


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """EfficientNet-Lite0 + label rules. Thread-safe: the handle gives each thread its interpreter."""

    def __init__(self, handle: ModelHandle, rules: Sequence[LabelRule | None], *,
                 categories: CategoryRules | None = None, max_labels: int = 5) -> None:
        self.handle = handle
        self.rules = list(rules)
        self.categories = categories
        self.max_labels = max_labels
        names = sorted({r.name for r in self.rules if r is not None})
        cats = sorted({c for r in self.rules if r is not None for c in r.categories})
        # one 0/1 matrix per grouping, so per-view sums are a single matrix product
        self._names, self._cats = names, cats
        self._name_m = np.zeros((len(self.rules), len(names)))
        self._cat_m = np.zeros((len(self.rules), len(cats)))
        name_i = {n: i for i, n in enumerate(names)}
        cat_i = {c: i for i, c in enumerate(cats)}
        self._members: dict[str, list[LabelRule]] = {n: [] for n in names}
        for k, r in enumerate(self.rules):
            if r is None:
                continue
            self._name_m[k, name_i[r.name]] = 1.0
            self._members[r.name].append(r)
            for c in r.categories:
                self._cat_m[k, cat_i[c]] = 1.0

    def view_probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(views, 1000) softmax probabilities, one row per image."""
        if not images:
            raise ValueError("classify needs at least one image")
        return np.stack([softmax(self.handle.run(to_model_input(im))[0][0].astype(np.float64)) for im in images])

    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Per class, the maximum over the views (for logs and top-k)."""
        return self.view_probabilities(images).max(axis=0)

    def classify(self, images: Sequence[Image.Image]) -> list[LabelResult]:
        """Labels for ONE photo seen through `images` (its tile, and crops for a wide photo)."""
        return self.labels_from_views(self.view_probabilities(images))

    def classify_photo(self, tile_224: Image.Image, fit_720: Image.Image | None = None) -> list[LabelResult]:
        return self.classify(photo_views(tile_224, fit_720))

    def labels_from_views(self, probs: np.ndarray) -> list[LabelResult]:
        probs = np.atleast_2d(probs)
        label_p = (probs @ self._name_m).max(axis=0)
        results: list[LabelResult] = []
        for name, confidence in zip(self._names, label_p):
            members = self._members[name]
            if confidence < min(r.threshold for r in members):
                continue
            categories: list[str] = []
            for r in members:
                categories += [c for c in r.categories if c not in categories]
            results.append(LabelResult(name=name, categories=tuple(categories), confidence=float(min(confidence, 1.0)),
                                       priority=max(r.priority for r in members)))
        if self.categories is not None:
            covered = {c for r in results for c in r.categories} | {r.name for r in results}
            cat_p = (probs @ self._cat_m).max(axis=0)
            for cat, confidence in zip(self._cats, cat_p):
                if confidence >= self.categories.threshold_for(cat) and cat not in covered:
                    results.append(LabelResult(name=cat, categories=(cat, *self.categories.parents.get(cat, ())),
                                               confidence=float(min(confidence, 1.0)), priority=1.0))
            # a category label makes its parents redundant as labels of their own
            kept = {c for r in results for c in r.categories[1:]}
            results = [r for r in results if not (r.name in kept and r.categories and r.categories[0] == r.name)]
        results.sort(key=lambda r: r.confidence * r.priority, reverse=True)
        return results[: self.max_labels]

    def top_classes(self, probs: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
        """The k most probable raw ImageNet classes (for logs and the benchmark)."""
        order = np.argsort(probs)[::-1][:k]
        return [(int(i), float(probs[i])) for i in order]
