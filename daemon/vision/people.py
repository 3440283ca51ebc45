"""People: matching and clustering face embeddings (pure logic; the store keeps the results).

Embeddings are MobileFaceNet's 192-d vectors, L2-normalised, compared by cosine similarity.

MATCH_THRESHOLD = 0.55, calibrated as follows (faces aligned by daemon.vision.faces, full-range
BlazeFace on the 720 px image):
  - same person, different photos: obama.jpg vs obama2.jpg 0.805;
  - same photo, rotated by EXIF (portrait.jpg vs portrait-orientation-6.jpg): 0.99;
  - different people (obama, obama2, biden, grace_hopper, the immich portrait: 8 pairs): -0.19 .. 0.14;
  - the model README's wider set (15 aligned faces of 9 people): same >= 0.70, different <= 0.43.
0.55 sits between the highest different-person (0.43) and lowest same-person (0.70) cosine seen.
Merging two people is worse than splitting one (a user merges clusters with one click, but has to
untangle a wrong merge face by face), so when in doubt the threshold errs high.

Matching a face to a named person compares it with each of that person's faces and scores the
person by the mean of the top-k (k=3) similarities: one stray face (a mislabelled one, or a profile)
cannot pull strangers in alone, yet a person seen from several angles matches on the closest ones.
Clustering unnamed faces is incremental: a face joins the nearest cluster (cosine to the
cluster's normalised mean) above the threshold, else starts a new cluster; a face the user rejected
from a cluster/person is never put back there.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MATCH_THRESHOLD = 0.55
TOP_K = 3


@dataclass(frozen=True)
class NewCluster:
    """A cluster to create; faces given the same NewCluster number belong together."""

    number: int


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (normalised here, so raw vectors are fine too)."""
    return float(_unit(a) @ _unit(b))


def centroid(members: np.ndarray) -> np.ndarray:
    """Normalised mean of one embedding (192,) or several (k, 192)."""
    m = _unit(np.atleast_2d(members))
    return _unit(m.mean(axis=0))


def match_person(embedding: np.ndarray, people: Mapping[int, np.ndarray], *,
                 threshold: float = MATCH_THRESHOLD, top_k: int = TOP_K,
                 exclude: Collection[int] = ()) -> tuple[int, float] | None:
    """Best named person for a face, or None when nobody reaches the threshold.

    people maps person id -> that person's face embeddings (k, 192); `exclude` holds persons the
    user said this face is not.
    """
    e = _unit(embedding)
    best: tuple[int, float] | None = None
    for person_id, faces in people.items():
        if person_id in exclude:
            continue
        faces = np.atleast_2d(faces)
        if faces.size == 0:
            continue
        sims = _unit(faces) @ e
        k = min(top_k, len(sims))
        score = float(np.sort(sims)[-k:].mean())
        if score >= threshold and (best is None or score > best[1]):
            best = (person_id, score)
    return best


def assign_clusters(new: Sequence[np.ndarray], clusters: Mapping[int, np.ndarray], *,
                    threshold: float = MATCH_THRESHOLD, face_ids: Sequence[Hashable] | None = None,
                    rejected: Collection[tuple[Hashable, int]] = ()) -> list[int | NewCluster]:
    """Cluster id (existing) or NewCluster(n) for each new embedding, in order.

    clusters maps cluster id -> a centroid (192,) or its member embeddings (k, 192). Faces of this
    batch that start clusters are themselves candidates for the faces after them, so two new faces
    of one new person end up in the same NewCluster. `rejected` holds (face id, cluster id) pairs the
    user undid; face ids default to the position in `new`.
    """
    ids = list(face_ids) if face_ids is not None else list(range(len(new)))
    if len(ids) != len(new):
        raise ValueError(f"{len(new)} embeddings but {len(ids)} face ids")
    banned = set(rejected)
    keys: list[int | NewCluster] = []
    cents: list[np.ndarray] = []
    sums: list[np.ndarray] = []          # running sums for the clusters made in this batch
    for cid, members in clusters.items():
        keys.append(cid)
        cents.append(centroid(members))
        sums.append(np.zeros(0))
    out: list[int | NewCluster] = []
    made = 0
    for face_id, emb in zip(ids, new):
        e = _unit(emb)
        best_i, best_s = -1, threshold
        if cents:
            sims = np.stack(cents) @ e
            for i in np.argsort(-sims):
                if sims[i] < threshold:
                    break
                if (face_id, keys[i]) in banned:
                    continue
                best_i, best_s = int(i), float(sims[i])
                break
        if best_i < 0:
            key: int | NewCluster = NewCluster(made)
            made += 1
            keys.append(key)
            cents.append(e)
            sums.append(e.copy())
            out.append(key)
            continue
        out.append(keys[best_i])
        if isinstance(keys[best_i], NewCluster):   # keep a new cluster's centroid current
            sums[best_i] = sums[best_i] + e
            cents[best_i] = _unit(sums[best_i])
    return out
