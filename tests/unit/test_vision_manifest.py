"""The shipped models are exactly the files the manifest describes, and every class has a rule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from daemon.vision.labels import load_categories, load_rules
from daemon.vision.runtime import ModelHandle, ModelState

MODELS = Path(__file__).resolve().parents[2] / "models"
MANIFEST = json.loads((MODELS / "manifest.json").read_text())


@pytest.mark.parametrize("entry", MANIFEST["files"], ids=lambda e: e["name"])
def test_model_file_matches_manifest_sha256(entry):
    path = MODELS / entry["name"]
    assert path.is_file(), f"{entry['name']} listed in manifest.json but missing from models/"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert path.stat().st_size == entry["bytes"]
    for key in ("task", "source", "licence", "output"):
        assert entry[key], f"{entry['name']}: manifest lacks {key}"


@pytest.mark.parametrize("entry", [e for e in MANIFEST["files"] if e["name"].endswith(".tflite")],
                         ids=lambda e: e["name"])
def test_model_input_shape_is_the_documented_contract(entry):
    handle = ModelHandle(MODELS / entry["name"])
    assert handle.input_shapes[0] == tuple(entry["input"]["shape"])
    assert handle.state is ModelState.LOADED


def test_every_model_file_is_in_the_manifest():
    listed = {e["name"] for e in MANIFEST["files"]}
    shipped = {p.name for p in MODELS.iterdir() if p.suffix in (".tflite", ".txt")}
    assert shipped == listed


def test_label_rules_cover_all_1000_classes_in_model_order():
    rules = load_rules(MODELS / "labels.yml")
    assert len(rules) == 1000
    kept = [r for r in rules if r is not None]
    assert len(kept) > 900, "most classes should give a label"
    names = (MODELS / "imagenet1k_labels.txt").read_text().splitlines()
    # spot checks that the rules line up with the classifier's output order
    assert names[281].startswith("tabby") and rules[281].name == "cat"
    assert {"cat", "animal"} <= set(rules[281].categories)
    assert names[967] == "espresso" and {"coffee", "drink", "food"} <= set(rules[967].categories)
    assert names[970] == "alp" and {"mountain", "landscape"} <= set(rules[970].categories)
    assert names[985] == "daisy" and {"flower", "plant"} <= set(rules[985].categories)
    assert names[916].startswith("web site") and rules[916] is None   # ignored class
    cats = load_categories(MODELS / "labels.yml")
    assert cats.parents["cat"][-1] == "animal"
    assert set(cats.parents) == {c for r in kept for c in r.categories}
