#!/usr/bin/env python3
"""Generate models/labels.yml: the label rules for the 1000 ImageNet classes of the classifier.

    python models/labels_build.py [--wordnet /usr/share/wordnet] [--out models/labels.yml]

Why generated: ImageNet's class names ("tabby, tabby cat", "alp", "espresso") are what the model
knows, not what people search for ("cat", "mountain", "coffee"). Every ImageNet class is a WordNet
3.0 noun synset, and WordNet's hypernym tree already says that a tabby is a domestic cat is an animal.
So the categories are derived from that tree (CATEGORY_HEADS: a class gets a category when the
category's head synset is among its ancestors), then curated by hand where WordNet disagrees with
how people file their photos (CLASS_CATEGORIES, LABEL_NAMES, IGNORED). The result is committed, so the
daemon needs neither WordNet nor this script at run time; rerunning it on the same inputs gives the
same file byte for byte.

Inputs: models/imagenet1k_labels.txt (one class per line, in model output order = WordNet noun
offsets ascending) and WordNet 3.0's data.noun (Debian package wordnet-base). A class line is the
synset's lemmas joined by ", "; where two synsets share the same lemmas (crane the bird, crane the
machine) the ascending-offset order of the list decides.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

DEFAULT_THRESHOLD = 0.15
"""Softmax probability (after merging crops) a class needs to become a label. The int8 model spreads
probability over look-alike classes (three cat classes, many dog breeds), so labels that several
classes share are summed before this threshold is applied (see daemon/vision/labels.py)."""

# category -> WordNet 3.0 noun offsets of its head synsets (a class under any of them gets it).
CATEGORY_HEADS: dict[str, tuple[str, ...]] = {
    "animal": ("00015388",),                      # animal, animate being
    "mammal": ("01861778",),
    "bird": ("01503061",),
    "dog": ("02084071",),                         # dog, domestic dog
    "cat": ("02121808",),                         # domestic cat, house cat
    "wild cat": ("02127808",),                    # big cat (lion, tiger, ...)
    "wolf": ("02114100",),
    "fox": ("02118333",),
    "bear": ("02131653",),
    "monkey": ("02469914",),                      # primate
    "rodent": ("02329401",),
    "farm animal": ("02401031", "02374451"),      # bovid, equine
    "fish": ("02512053",),
    "reptile": ("01661091",),
    "snake": ("01726692",),
    "amphibian": ("01627424",),
    "insect": ("02159955",),
    "butterfly": ("02274259",),
    "spider": ("01769347",),                      # arachnid (spiders, scorpions, ticks)
    "sea life": ("01974773", "01940736", "01914609", "01905661"),  # crustacean, mollusk, coelenterate, invertebrate (pruned below)
    "plant": ("00017222",),
    "flower": ("11669921", "11669335"),           # flower (plant), flower (bloom)
    "tree": ("13104059",),
    "mushroom": ("12992868",),                    # fungus
    "fruit": ("07705931",),                       # edible fruit
    "vegetable": ("07707451",),
    "food": ("07555863", "00021265"),             # food (solid), food/nutrient
    "drink": ("07881800",),                       # beverage
    "vehicle": ("04524313", "03100490"),          # vehicle, conveyance
    "car": ("02958343",),
    "truck": ("04490091",),
    "boat": ("04530566",),                        # vessel, watercraft
    "aircraft": ("02686568",),
    "bicycle": ("02834778",),
    "train": ("04468005", "03684823", "02959942"),  # train, locomotive, railway car
    "building": ("02913152",),
    "bridge": ("02898711",),
    "musical instrument": ("03800933",),
    "electronics": ("03278248", "03082979"),      # electronic equipment, computer
    "clothing": ("03051540",),
    "shoes": ("03380867",),
    "hat": ("03502509",),
    "furniture": ("03405725",),
    "tool": ("04451818",),
    "toy": ("03964744",),
    "sport": ("04285146", "03414162", "02778669"),  # sports equipment, game equipment, ball
    "kitchen": ("03621049", "03620052", "03133538", "04381994"),  # utensils, appliances, crockery, tableware
    "weapon": ("04565375",),
}

# The family tree of the categories themselves: every class with "cat" is also "animal", and so on.
CATEGORY_PARENTS: dict[str, tuple[str, ...]] = {
    "mammal": ("animal",), "bird": ("animal",), "fish": ("animal",), "reptile": ("animal",),
    "amphibian": ("animal",), "insect": ("animal",), "spider": ("animal",), "sea life": ("animal", "water"),
    "dog": ("pet", "mammal"), "cat": ("pet", "mammal"), "wild cat": ("wildlife", "mammal"),
    "wolf": ("wildlife", "mammal"), "fox": ("wildlife", "mammal"), "bear": ("wildlife", "mammal"),
    "monkey": ("wildlife", "mammal"), "rodent": ("mammal",), "farm animal": ("mammal",),
    "snake": ("reptile",), "butterfly": ("insect",), "pet": ("animal",), "wildlife": ("animal",),
    "flower": ("plant",), "tree": ("plant",), "cactus": ("plant",), "mushroom": ("nature",),
    "plant": ("nature",), "wildlife_": (),
    "fruit": ("food",), "vegetable": ("food",), "coffee": ("drink",), "drink": ("food",),
    "car": ("vehicle",), "truck": ("vehicle",), "boat": ("vehicle",), "aircraft": ("vehicle",),
    "bicycle": ("vehicle",), "train": ("vehicle",),
    "mountain": ("landscape",), "beach": ("landscape", "water"), "lake": ("landscape", "water"),
    "landscape": ("nature",), "water": (), "bridge": ("architecture",), "building": ("architecture",),
    "shoes": ("clothing",), "hat": ("clothing",), "jewellery": ("clothing",), "bag": ("clothing",),
    "farm": ("landscape",), "shop": ("building",), "garden": ("plant",), "snow": ("nature",),
}
CATEGORY_PARENTS.pop("wildlife_")

# Hand curation, by the class's first lemma: categories WordNet does not give (or gives wrongly).
CLASS_CATEGORIES: dict[str, tuple[str, ...]] = {
    # scenes: ImageNet has no scene classes, these object classes are what landscape photos hit
    "alp": ("mountain",), "volcano": ("mountain",), "valley": ("mountain", "landscape"),
    "cliff": ("mountain", "landscape"), "promontory": ("landscape", "water"),
    "seashore": ("beach",), "sandbar": ("beach",), "lakeside": ("lake",), "coral reef": ("water", "sea life"),
    "geyser": ("landscape", "water"), "breakwater": ("water",), "dam": ("water",), "pier": ("water",),
    "dock": ("water", "boat"), "boathouse": ("water", "building"), "fountain": ("water",),
    "megalith": ("landscape",), "stone wall": ("architecture",), "worm fence": ("landscape",),
    "maze": ("garden",), "greenhouse": ("garden", "building"), "pot": ("plant",),
    # plants and fungi that are not under the flower/plant heads
    "daisy": ("flower",), "yellow lady's slipper": ("flower",), "rapeseed": ("flower",),
    "corn": ("vegetable",), "ear": ("plant",), "acorn": ("plant",), "buckeye": ("plant",),
    "hip": ("fruit", "plant"), "coral fungus": ("mushroom",), "agaric": ("mushroom",),
    "gyromitra": ("mushroom",), "stinkhorn": ("mushroom",), "earthstar": ("mushroom",),
    "hen-of-the-woods": ("mushroom",), "bolete": ("mushroom",),
    # food and drink
    "espresso": ("coffee",), "cup": ("drink",), "coffee mug": ("drink",), "eggnog": ("drink",),
    "red wine": ("drink",), "beer bottle": ("drink",), "wine bottle": ("drink",), "beer glass": ("drink",),
    "goblet": ("drink",), "teapot": ("drink", "kitchen"), "coffeepot": ("coffee", "kitchen"),
    "espresso maker": ("coffee", "kitchen"), "pop bottle": ("drink",), "water bottle": ("drink",),
    "plate": ("food",), "hotdog": ("food",), "cheeseburger": ("food",), "pizza": ("food",),
    "burrito": ("food",), "meat loaf": ("food",), "potpie": ("food",), "carbonara": ("food",),
    "guacamole": ("food",), "consomme": ("food",), "hot pot": ("food",), "trifle": ("food",),
    "ice cream": ("food",), "ice lolly": ("food",), "French loaf": ("food",), "bagel": ("food",),
    "pretzel": ("food",), "dough": ("food",), "chocolate sauce": ("food",), "bakery": ("food", "building"),
    "grocery store": ("food",), "butcher shop": ("food",), "restaurant": ("food", "building"),
    "frying pan": ("kitchen",), "wok": ("kitchen",), "Dutch oven": ("kitchen",), "caldron": ("kitchen",),
    # vehicles WordNet files elsewhere
    "airliner": ("aircraft",), "warplane": ("aircraft",), "airship": ("aircraft",), "balloon": (),
    "space shuttle": ("aircraft",), "wing": ("aircraft",),
    "mountain bike": ("bicycle",), "bicycle-built-for-two": ("bicycle",), "tricycle": ("bicycle",),
    "unicycle": ("bicycle",), "moped": ("motorcycle",), "motor scooter": ("motorcycle",),
    "streetcar": ("train",), "bullet train": ("train",), "electric locomotive": ("train",),
    "steam locomotive": ("train",), "passenger car": ("train",), "freight car": ("train",),
    "school bus": ("bus",), "trolleybus": ("bus",), "minibus": ("bus",), "car wheel": ("car",),
    "grille": ("car",), "car mirror": ("car",), "convertible": ("car",), "limousine": ("car",),
    "sports car": ("car",), "racer": ("car",), "cab": ("car",), "jeep": ("car",), "beach wagon": ("car",),
    "minivan": ("car",), "Model T": ("car",), "ambulance": ("car",), "police van": ("car",),
    "go-kart": ("car",), "golfcart": ("sport",), "gondola": ("boat",), "canoe": ("boat",),
    "paddle": ("boat",), "lifeboat": ("boat",), "speedboat": ("boat",), "yawl": ("boat",),
    "catamaran": ("boat",), "trimaran": ("boat",), "schooner": ("boat",), "fireboat": ("boat",),
    "container ship": ("boat",), "liner": ("boat",), "wreck": ("boat", "water"), "submarine": ("boat",),
    "aircraft carrier": ("boat",), "pirate": ("boat",),
    # buildings and landmarks
    "church": ("building",), "mosque": ("building",), "palace": ("building",), "castle": ("building",),
    "monastery": ("building",), "barn": ("building",), "library": ("building",), "cinema": ("building",),
    "planetarium": ("building",), "prison": ("building",), "dome": ("architecture",),
    "bell cote": ("architecture",), "stupa": ("architecture",), "triumphal arch": ("architecture",),
    "obelisk": ("architecture",), "beacon": ("architecture", "water"), "water tower": ("architecture",),
    "steel arch bridge": ("bridge",), "suspension bridge": ("bridge",), "viaduct": ("bridge",),
    "yurt": ("building",), "mobile home": ("building",), "thatch": ("building",), "tile roof": ("building",),
    "patio": ("garden",), "picket fence": ("garden",), "park bench": ("garden",), "lawn mower": ("garden",),
    "birdhouse": ("garden",), "totem pole": ("architecture",), "brass": ("architecture",),
    # sport and leisure
    "ski": ("sport", "snow"), "snowmobile": ("snow", "vehicle"), "dogsled": ("snow", "vehicle"),
    "bobsled": ("sport", "snow"), "snowplow": ("snow", "vehicle"), "shovel": ("tool",),
    "ballplayer": ("sport", "person"), "scuba diver": ("sport", "water", "person"),
    "groom": ("clothing", "person"), "snorkel": ("sport", "water"), "swimming trunks": ("water", "clothing"),
    "maillot": ("clothing", "water"), "bikini": ("clothing", "water"), "sandal": ("shoes",),
    "volleyball": ("sport",), "basketball": ("sport",), "soccer ball": ("sport",), "rugby ball": ("sport",),
    "tennis ball": ("sport",), "golf ball": ("sport",), "ping-pong ball": ("sport",),
    "croquet ball": ("sport",), "baseball": ("sport",), "football helmet": ("sport",),
    "racket": ("sport",), "puck": ("sport",), "barbell": ("sport",), "dumbbell": ("sport",),
    "parallel bars": ("sport",), "horizontal bar": ("sport",), "balance beam": ("sport",),
    "punching bag": ("sport",), "sleeping bag": ("camping",), "mountain tent": ("camping",),
    "swing": ("playground",), "carousel": ("playground",), "toyshop": ("toy",),
    "teddy": ("toy",), "jigsaw puzzle": ("toy",), "kite": ("bird",), "parachute": ("sport",),
    "stage": ("music",), "theater curtain": ("music",), "jack-o'-lantern": ("halloween",),
    "Christmas stocking": ("christmas",), "candle": ("light",), "table lamp": ("furniture", "light"),
    "spotlight": ("light",), "lampshade": ("light",), "torch": ("light",),
    # electronics WordNet files under 'device' or 'instrument' only
    "cellular telephone": ("electronics", "phone"), "dial telephone": ("phone",), "pay-phone": ("phone",),
    "iPod": ("electronics", "music"), "television": ("electronics",), "monitor": ("electronics",),
    "screen": ("electronics",), "desktop computer": ("electronics",), "laptop": ("electronics",),
    "notebook": ("electronics",), "hand-held computer": ("electronics",), "computer keyboard": ("electronics",),
    "mouse": ("electronics",), "remote control": ("electronics",), "joystick": ("electronics", "toy"),
    "printer": ("electronics",), "projector": ("electronics",), "loudspeaker": ("electronics", "music"),
    "radio": ("electronics", "music"), "tape player": ("electronics", "music"),
    "cassette player": ("electronics", "music"), "CD player": ("electronics", "music"),
    "modem": ("electronics",), "hard disc": ("electronics",), "reflex camera": ("camera", "electronics"),
    "Polaroid camera": ("camera",), "tripod": ("camera",), "lens cap": ("camera",),
    "microphone": ("electronics", "music"), "harmonica": ("music",),
    # context: ImageNet's photos of these are nearly all taken on a flower, and flower close-ups
    # without an insect are scored as them (a pink cyclamen -> "bee" 0.33), so they also count as
    # flower evidence for a search; their own label keeps its insect/bird name.
    "bee": ("flower",), "cabbage butterfly": ("flower",), "sulphur butterfly": ("flower",),
    "hummingbird": ("flower",), "admiral": ("flower",), "ringlet": ("flower",),
    # household and street objects with no useful WordNet head
    "cliff dwelling": ("architecture", "landscape"), "drilling platform": ("water",),
    "radio telescope": ("architecture",), "crane@machine": ("vehicle",), "harvester": ("vehicle", "farm"),
    "thresher": ("farm",), "refrigerator": ("kitchen",), "stove": ("kitchen",), "dishwasher": ("kitchen",),
    "spider web": ("nature",), "sunglasses": ("clothing",), "sunglass": ("clothing",),
    "necklace": ("jewellery",), "purse": ("bag",), "wallet": ("bag",), "backpack": ("bag",),
    "mailbag": ("bag",), "analog clock": ("clock",), "wall clock": ("clock",), "digital clock": ("clock",),
    "digital watch": ("clock",), "stopwatch": ("clock",), "hourglass": ("clock",), "sundial": ("clock", "garden"),
    "traffic light": ("street",), "street sign": ("street",), "parking meter": ("street",),
    "manhole cover": ("street",), "gas pump": ("street", "car"), "mailbox": ("street",),
    "bathtub": ("bathroom",), "washbasin": ("bathroom",), "tub": ("bathroom",), "soap dispenser": ("bathroom",),
    "pillow": ("bedroom",), "quilt": ("bedroom",), "confectionery": ("shop", "food"),
    "tobacco shop": ("shop",), "bookshop": ("shop", "book"), "shoe shop": ("shop",), "barbershop": ("shop",),
    "umbrella": ("rain",), "vase": ("home",), "typewriter keyboard": ("electronics",),
    "photocopier": ("electronics",), "vending machine": ("street",), "cash machine": ("street",),
    "scoreboard": ("sport",), "potter's wheel": ("craft",), "sewing machine": ("craft",),
}

# Hand-picked friendly names (default: the class's first lemma). Classes sharing a name are merged.
LABEL_NAMES: dict[str, str] = {
    "tabby": "cat", "tiger cat": "cat", "Persian cat": "cat", "Siamese cat": "cat", "Egyptian cat": "cat",
    "maillot": "swimsuit", "bikini": "swimsuit", "swimming trunks": "swimsuit",
    "seashore": "beach", "sandbar": "beach", "lakeside": "lake", "alp": "mountain",
    "espresso": "coffee", "cup": "cup", "coffee mug": "mug", "hotdog": "hot dog",
    "cellular telephone": "mobile phone", "dial telephone": "telephone", "pay-phone": "telephone",
    "notebook": "laptop", "desktop computer": "computer", "hand-held computer": "computer",
    "reflex camera": "camera", "Polaroid camera": "camera", "teddy": "teddy bear",
    "airliner": "airplane", "warplane": "airplane", "wing": "airplane",
    "mountain tent": "tent", "ice lolly": "ice cream", "French loaf": "bread", "meat loaf": "meatloaf",
    "consomme": "soup", "hot pot": "stew", "caldron": "cauldron", "jack-o'-lantern": "pumpkin",
    "pot": "flowerpot", "Granny Smith": "apple", "Bernese mountain dog": "Bernese mountain dog",
    "cab": "taxi", "beach wagon": "station wagon", "racer": "race car", "go-kart": "go-kart",
    "liner": "cruise ship", "wreck": "shipwreck", "volcano": "volcano", "pirate": "pirate ship",
    "ballplayer": "baseball player", "groom": "suit", "crane@machine": "construction crane",
    "drake": "duck", "tusker": "elephant", "African elephant": "elephant", "Indian elephant": "elephant",
    "hog": "pig", "ox": "cattle", "sorrel": "horse", "ram": "sheep",
    "hen": "chicken", "cock": "rooster", "tench": "fish", "goldfish": "goldfish",
    "daisy": "daisy", "yellow lady's slipper": "orchid", "rapeseed": "rapeseed", "hip": "rose hip",
    "ear": "corn", "corn": "corn", "bolete": "mushroom", "agaric": "mushroom",
    "totem pole": "totem pole", "brass": "memorial plaque", "thatch": "thatched roof",
    "bell cote": "bell tower", "stupa": "stupa", "jersey": "t-shirt", "sweatshirt": "sweatshirt",
    "Christmas stocking": "christmas stocking", "monitor": "computer monitor", "screen": "screen",
    "mouse": "computer mouse", "kite": "kite (bird)", "balloon": "balloon",
}

# Classes that turn up on ordinary photos as noise (textures, screens full of text, packaging) or
# would be hurtful or absurd as a tag; they never become labels.
IGNORED: frozenset[str] = frozenset({
    "web site", "book jacket", "comic book", "crossword puzzle", "envelope", "menu", "packet",
    "window screen", "window shade", "shower curtain", "doormat", "prayer rug", "handkerchief",
    "chain mail", "velvet", "wool", "paper towel", "toilet tissue", "sunscreen", "lotion", "hair spray",
    "Band Aid", "nematode", "mosquito net", "honeycomb", "bib", "diaper", "brassiere",
    "theater curtain", "rubber eraser", "matchstick", "nail", "screw", "slide rule", "oscilloscope",
    "binder", "carton", "chime", "whistle", "wig", "mask", "ski mask", "gasmask", "pajama",
    "abaya", "cloak", "poncho", "stole", "sarong", "vestment", "apron", "lab coat", "fur coat",
    "muzzle", "neck brace", "guillotine", "prison", "assault rifle",
    "rifle", "revolver", "cannon", "missile", "projectile", "tank", "half track", "bulletproof vest",
    "hook", "shopping basket", "plastic bag", "pill bottle", "syringe",
    "medicine chest", "stethoscope", "hand blower", "Petri dish", "face powder",
})
PRIORITIES: dict[str, float] = {
    # sort weight (results are ordered by confidence x priority): what a person would call the photo
    # "of" first, incidental objects last.
    "animal": 1.3, "landscape": 1.3, "flower": 1.25, "plant": 1.2, "food": 1.15, "vehicle": 1.1,
    "architecture": 1.1, "sport": 1.05, "music": 1.05,
}
THRESHOLDS: dict[str, float] = {
    # looser where the model is cautious but the tag is wanted, stricter where it over-fires
    "landscape": 0.10, "flower": 0.12, "plant": 0.12, "electronics": 0.25, "clothing": 0.25,
    "furniture": 0.25, "kitchen": 0.25,
}


def parse_wordnet_nouns(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """offset -> (lemmas, hypernym offsets) from WordNet's data.noun (format: wndb(5WN))."""
    synsets: dict[str, tuple[list[str], list[str]]] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("  "):        # licence header
                continue
            fields = line.partition(" | ")[0].split()
            offset, count = fields[0], int(fields[3], 16)
            lemmas = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(count)]
            i = 4 + 2 * count
            pointers = int(fields[i])
            i += 1
            hypernyms = []
            for _ in range(pointers):
                symbol, target, pos = fields[i], fields[i + 1], fields[i + 2]
                i += 4
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
            synsets[offset] = (lemmas, hypernyms)
    return synsets


def map_classes(class_lines: list[str], synsets: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    """WordNet offset of each class line: same lemma list, offsets strictly ascending (wnid order)."""
    by_lemmas: dict[str, list[str]] = {}
    for offset, (lemmas, _) in synsets.items():
        by_lemmas.setdefault(", ".join(lemmas), []).append(offset)
    offsets, previous = [], ""
    for index, line in enumerate(class_lines):
        candidates = sorted(o for o in by_lemmas.get(line, []) if o > previous)
        if not candidates:
            raise SystemExit(f"class {index} {line!r}: no WordNet noun synset with these lemmas")
        previous = candidates[0]
        offsets.append(previous)
    return offsets


def ancestors(offset: str, synsets: dict[str, tuple[list[str], list[str]]]) -> set[str]:
    seen: set[str] = {offset}
    stack = [offset]
    while stack:
        for parent in synsets[stack.pop()][1]:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def close_categories(direct: list[str]) -> list[str]:
    """Add every parent category, keeping the most specific first and no duplicates."""
    out: list[str] = []
    queue = list(direct)
    while queue:
        cat = queue.pop(0)
        if cat not in out:
            out.append(cat)
            queue.extend(CATEGORY_PARENTS.get(cat, ()))
    return out


def build_rules(class_lines: list[str], synsets) -> list[dict]:
    offsets = map_classes(class_lines, synsets)
    seen_first: dict[str, int] = {}
    rules = []
    for index, (line, offset) in enumerate(zip(class_lines, offsets)):
        first = line.split(", ")[0]
        key = first
        if first in seen_first and first == "crane":
            key = "crane@machine"
        seen_first.setdefault(first, index)
        anc = ancestors(offset, synsets)
        direct = [cat for cat, heads in CATEGORY_HEADS.items() if any(h in anc for h in heads)]
        # "sea life" from the invertebrate head only for aquatic invertebrates, not insects/spiders.
        if "sea life" in direct and ({"insect", "spider"} & set(direct) or first in ("slug", "snail")):
            direct.remove("sea life")
        extra = list(CLASS_CATEGORIES.get(key, CLASS_CATEGORIES.get(first, ())))
        cats = close_categories(extra + [c for c in direct if c not in extra])
        # keep the label's own name out of its categories (a "cat" label already says cat)
        name = LABEL_NAMES.get(key, first)
        wnid = "n" + offset
        if first in IGNORED:
            rules.append({"index": index, "wnid": wnid, "imagenet": line, "label": "ignore"})
            continue
        threshold = min([THRESHOLDS[c] for c in cats if c in THRESHOLDS] or [DEFAULT_THRESHOLD])
        if any(c in ("electronics", "clothing", "furniture", "kitchen") for c in cats) and not any(
                c in ("animal", "plant", "food", "landscape") for c in cats):
            threshold = max(threshold, 0.25)
        priority = max([PRIORITIES[c] for c in cats if c in PRIORITIES] or [1.0])
        rules.append({"index": index, "wnid": wnid, "imagenet": line, "label": name,
                      "threshold": threshold, "priority": priority, "categories": cats})
    # Most specific category first: a category that fewer classes carry says more ("cat" before "animal").
    counts: dict[str, int] = {}
    for r in rules:
        for c in r.get("categories", ()):
            counts[c] = counts.get(c, 0) + 1
    for r in rules:
        if "categories" in r:
            r["categories"] = sorted(r["categories"], key=lambda c: (counts[c], c))
    return rules


def check_curation(class_lines: list[str]) -> list[str]:
    """Names in the hand tables that match no class's first lemma (a typo would silently do nothing)."""
    firsts = {line.split(", ")[0] for line in class_lines} | {"crane@machine"}
    names = set(CLASS_CATEGORIES) | set(LABEL_NAMES) | set(IGNORED)
    return sorted(names - firsts)


CATEGORY_THRESHOLD = 0.4
"""Summed probability of all classes in a category for the category itself to become a label when no
single class of it passed (a small bird the model spreads over grouse, limpkin and kite)."""


CATEGORY_THRESHOLDS: dict[str, float] = {
    # broad roots need more agreement before they stand alone; 1.0 = never a label of its own
    "animal": 0.6, "mammal": 0.6, "architecture": 0.5, "nature": 1.0, "food": 0.5, "vehicle": 0.5,
    # landscape photos spread over many scene-ish classes (valley, alp, promontory, worm fence)
    "landscape": 0.3, "mountain": 0.3,
}


def category_table(rules: list[dict]) -> dict[str, list[str]]:
    """Every category used, with its parent categories (closure, most specific first)."""
    used = sorted({c for r in rules for c in r.get("categories", ())})
    return {c: close_categories([c])[1:] for c in used}


def render_yaml(rules: list[dict]) -> str:
    """Hand-written YAML so the file is stable, diff-friendly and needs no PyYAML to build."""
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = [
        "# Label rules for models/efficientnet_lite0_int8.tflite (ImageNet-1k), one entry per class.",
        "# GENERATED by models/labels_build.py from WordNet 3.0 + the curated tables in that script:",
        "# edit the script, not this file. label: ignore = never a tag. threshold = softmax probability",
        "# needed; priority = sort weight; categories = what a search for that word should find.",
        "schema: 1",
        f"default_threshold: {DEFAULT_THRESHOLD}",
        f"category_threshold: {CATEGORY_THRESHOLD}",
        "categories:",
    ]
    for cat, parents in category_table(rules).items():
        out.append(f"  {q(cat)}: [" + ", ".join(q(p) for p in parents) + "]")
    out.append("category_thresholds:")
    for cat, value in sorted(CATEGORY_THRESHOLDS.items()):
        out.append(f"  {q(cat)}: {value}")
    out += [
        "classes:",
    ]
    for r in rules:
        out.append(f"- index: {r['index']}")
        out.append(f"  wnid: {r['wnid']}")
        out.append(f"  imagenet: {q(r['imagenet'])}")
        out.append(f"  label: {q(r['label'])}")
        if r["label"] != "ignore":
            out.append(f"  threshold: {r['threshold']}")
            out.append(f"  priority: {r['priority']}")
            out.append("  categories: [" + ", ".join(q(c) for c in r["categories"]) + "]")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--classes", type=Path, default=HERE / "imagenet1k_labels.txt")
    ap.add_argument("--out", type=Path, default=HERE / "labels.yml")
    args = ap.parse_args(argv)
    data_noun = args.wordnet / "data.noun"
    if not data_noun.exists():
        print(f"WordNet not found at {data_noun} (apt install wordnet-base)", file=sys.stderr)
        return 1
    class_lines = args.classes.read_text(encoding="utf-8").splitlines()
    if len(class_lines) != 1000:
        print(f"{args.classes}: expected 1000 classes, found {len(class_lines)}", file=sys.stderr)
        return 1
    unknown = check_curation(class_lines)
    if unknown:
        print("curated names that are no ImageNet class: " + ", ".join(unknown), file=sys.stderr)
        return 1
    rules = build_rules(class_lines, parse_wordnet_nouns(data_noun))
    args.out.write_text(render_yaml(rules), encoding="utf-8")
    kept = sum(r["label"] != "ignore" for r in rules)
    print(f"{args.out}: {len(rules)} classes, {kept} labelled, {len(rules) - kept} ignored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
