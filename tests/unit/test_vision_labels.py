"""Labels on real photos, prepared the way the indexer prepares them, asserted on categories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from daemon.vision.labels import (Classifier, LabelRulesError, load_categories, load_rules, photo_views)
from daemon.vision.nsfw import NsfwScorer
from daemon.vision.runtime import ModelHandle
from tests.conftest import copy_sample

MODELS = Path(__file__).resolve().parents[2] / "models"
NATURE = "immich-test-assets/albums/nature"


def indexer_images(path: Path) -> tuple[Image.Image, Image.Image]:
    """One decode -> (tile_224: shorter side 224 then centre crop, fit_720: longest side 720)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    w, h = im.size
    scale = 224 / min(w, h)
    resized = im.resize((max(224, round(w * scale)), max(224, round(h * scale))), Image.BILINEAR)
    left, top = (resized.width - 224) // 2, (resized.height - 224) // 2
    tile = resized.crop((left, top, left + 224, top + 224))
    fit = im.copy()
    fit.thumbnail((720, 720), Image.BILINEAR)
    return tile, fit


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    rules_path = MODELS / "labels.yml"
    return Classifier(ModelHandle(MODELS / "efficientnet_lite0_int8.tflite"), load_rules(rules_path),
                      categories=load_categories(rules_path))


@pytest.fixture(scope="module")
def labels_of(samples, classifier, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("labels")

    def get(name: str):
        tile, fit = indexer_images(copy_sample(samples, f"{NATURE}/{name}", scratch))
        return classifier.classify_photo(tile, fit)
    return get


def categories(labels) -> set[str]:
    return {c for label in labels for c in label.categories}


@pytest.mark.parametrize("name", ["cyclamen_persicum.jpg", "wood_anemones.jpg", "polemonium_reptans.jpg",
                                  "orychophragmus_violaceus.jpg", "notocactus_minimus.jpg"])
def test_flower_photos_are_found_by_flower_or_plant(labels_of, name):
    labels = labels_of(name)
    assert categories(labels) & {"flower", "plant"}, labels


@pytest.mark.parametrize("name", ["el_torcal_rocks.jpg", "tanners_ridge.jpg"])
def test_landscapes_get_a_landscape_category(labels_of, name):
    labels = labels_of(name)
    assert categories(labels) & {"landscape", "mountain", "nature"}, labels
    assert "landscape" in categories(labels)


def test_falcon_photo_is_an_animal(labels_of):
    assert "animal" in categories(labels_of("prairie_falcon.jpg"))


@pytest.mark.xfail(strict=True, reason="known model limit: EfficientNet-Lite0 sees the small falcon against a "
                   "sandstone cliff as a lizard (int8: whiptail 0.15, all bird classes together 0.06; the float32 "
                   "build agrees: common iguana 0.15), so not a quantisation loss; a better classifier turns "
                   "this into a pass and strict=True makes us notice")
def test_falcon_photo_is_a_bird(labels_of):
    assert "bird" in categories(labels_of("prairie_falcon.jpg"))


def test_falcon_cropped_to_the_bird_is_a_bird(samples, classifier, tmp_path):
    # The same photo cropped around the bird (the crop a user or an object box would give): the
    # model spreads it over grouse/limpkin/...; the category label sums them into "bird".
    _, fit = indexer_images(copy_sample(samples, f"{NATURE}/prairie_falcon.jpg", tmp_path))
    assert fit.size == (720, 480)
    crop = fit.crop((120, 60, 360, 300)).resize((224, 224), Image.BILINEAR)
    labels = classifier.classify([crop])
    bird = [label for label in labels if "bird" in label.categories]
    assert bird and "animal" in bird[0].categories, labels


def test_results_are_sorted_capped_and_well_formed(labels_of, classifier):
    for name in ("el_torcal_rocks.jpg", "wood_anemones.jpg", "orychophragmus_violaceus.jpg"):
        labels = labels_of(name)
        assert 1 <= len(labels) <= classifier.max_labels
        keys = [lab.confidence * lab.priority for lab in labels]
        assert keys == sorted(keys, reverse=True)
        assert all(0 < lab.confidence <= 1 and lab.source == "image" for lab in labels)
        assert len({lab.name for lab in labels}) == len(labels)


def test_wide_photo_adds_left_and_right_views(samples, tmp_path):
    tile, fit = indexer_images(copy_sample(samples, f"{NATURE}/wood_anemones.jpg", tmp_path))
    assert fit.width / fit.height >= 1.6
    views = photo_views(tile, fit)
    assert len(views) == 3 and all(v.size == (224, 224) for v in views)
    # left and right squares really are the photo's two ends
    left = fit.crop((0, 0, fit.height, fit.height)).resize((224, 224), Image.BILINEAR)
    assert np.array_equal(np.asarray(views[1]), np.asarray(left))
    tile2, fit2 = indexer_images(copy_sample(samples, f"{NATURE}/tanners_ridge.jpg", tmp_path))
    assert len(photo_views(tile2, fit2)) == 1          # 3:2 is not wide


def test_classes_sharing_a_label_are_summed(classifier):
    names = (MODELS / "imagenet1k_labels.txt").read_text().splitlines()
    tabby, tiger_cat, egyptian = (names.index(n) for n in
                                  ("tabby, tabby cat", "tiger cat", "Egyptian cat"))
    probs = np.zeros(1000)
    probs[[tabby, tiger_cat, egyptian]] = 0.1            # each under its 0.15 threshold...
    probs[0] = 0.7
    assert classifier.rules[tabby].threshold > 0.1
    labels = classifier.labels_from_views(probs)
    cat = [lab for lab in labels if lab.name == "cat"]
    assert cat and cat[0].confidence == pytest.approx(0.3)   # ...together "cat" is 0.3
    assert {"cat", "pet", "animal"} <= set(cat[0].categories)


def test_ignored_classes_never_become_labels(classifier):
    names = (MODELS / "imagenet1k_labels.txt").read_text().splitlines()
    probs = np.zeros(1000)
    probs[[i for i, n in enumerate(names) if n.startswith("web site")][0]] = 0.99
    assert all(lab.name != "web site" for lab in classifier.labels_from_views(probs))


def test_bad_label_rules_are_a_readable_error(tmp_path):
    (tmp_path / "short.yml").write_text("classes:\n- {index: 0, label: fish}\n")
    with pytest.raises(LabelRulesError, match="covers 1 of 1000"):
        load_rules(tmp_path / "short.yml")
    (tmp_path / "broken.yml").write_text("classes: [\n")
    with pytest.raises(LabelRulesError, match="not valid YAML"):
        load_rules(tmp_path / "broken.yml")
    with pytest.raises(LabelRulesError, match="cannot read"):
        load_rules(tmp_path / "absent.yml")


def test_nsfw_score_stays_low_on_ordinary_photos(samples, tmp_path):
    scorer = NsfwScorer(ModelHandle(MODELS / "open_nsfw_int8.tflite"))
    for rel in (f"{NATURE}/cyclamen_persicum.jpg", f"{NATURE}/tanners_ridge.jpg", "faces/obama.jpg",
                "immich-test-assets/metadata/faces/portrait.jpg"):
        tile, _ = indexer_images(copy_sample(samples, rel, tmp_path))
        score = scorer.score(tile)
        assert 0.0 <= score < 0.3, (rel, score)
