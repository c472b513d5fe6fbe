"""Small results of every kind, built by hand (no model): the samples the result-file tests save, load and edit.

``results_of_every_kind(v)`` gives one result per kind (and a list of patterns) whose numbers depend on ``v``, so
two calls with different ``v`` write different files.
"""
from __future__ import annotations

import numpy as np

from attattr_widgets.engine.results import (
    Attribution,
    AttributionTree,
    Correlation,
    Effectiveness,
    HeadImportance,
    PruningCurve,
    Seq2SeqAttribution,
    SiteMeta,
    TreeEdge,
    TreeNode,
    TriggerPattern,
    TriggerResult,
)

L, H, N = 2, 3, 4


def make_attr(prob=0.5, tokens=("[CLS]", "a", "b", "[SEP]")) -> Attribution:
    rng = np.random.default_rng(0)
    return Attribution(scores=rng.normal(size=(L, H, N, N)).astype(np.float32),
                       attention=rng.random(size=(L, H, N, N)).astype(np.float32), tokens=list(tokens),
                       token_type_ids=np.zeros(N, np.int64), target=1, target_label="pos", prob=prob,
                       layer_zero_probs=np.zeros(L), completeness=np.zeros(L), layers=[0, 1], num_layers=L,
                       rule="gauss-legendre", steps=6, label_names=["neg", "pos"])


def make_seq2seq_attr(prob=-1.5) -> Seq2SeqAttribution:
    """Two source tokens, three answer tokens, L layers per site."""
    rng = np.random.default_rng(1)
    shapes = {"encoder": (2, 2), "decoder": (3, 3), "cross": (3, 2)}
    maps = {f"{s}_{k}": rng.normal(size=(L, H, *rc)).astype(np.float32)
            for s, rc in shapes.items() for k in ("scores", "attention")}
    metas = {f"{s}_meta": SiteMeta(layers=[0, 1], num_layers=L, zero_probs=[prob - 1] * L, completeness=[1e-4] * L,
                                   steps=[6] * L, converged=[True] * L, unresolved=[False] * L, nonfinite=[False] * L)
             for s in shapes}
    return Seq2SeqAttribution(**maps, **metas, source_tokens=["a", "</s>"], decoder_tokens=["<pad>", "x", "y"],
                              label_tokens=["x", "y", "</s>"], label_ids=[5, 6, 1], prob=prob, score="logprob",
                              rule="gauss-legendre", steps=6, text="a", answer="x y")


def make_pattern(score=0.5) -> TriggerPattern:
    return TriggerPattern(tokens=["a", "b"], token_ids=[5, 6], positions=[1, 2], segments=[0, 0],
                          relative=[0.0, 1.0], score=score, layer=0, head=1, pairs=[], pred=0, pred_label="neg",
                          gold=None, prob=0.9, example_index=0, text="a b")


def results_of_every_kind(v: float = 0.5) -> dict:
    fr = np.array([0.0, 0.5, 1.0])
    return {
        "attribution": make_attr(v),
        "head_importance": HeadImportance(np.full((L, H), v), method="attattr", num_examples=3),
        "pruning_curve": PruningCurve("attattr", fr, np.array([0.9, v, 0.3]), np.zeros((3, L, H), bool),
                                      importance=np.ones((L, H))),
        "effectiveness": Effectiveness(np.array([0, 1]), {"attribution": {"smallest-first": np.array([0.9, v])}},
                                       5, 0.9),
        "correlation": Correlation(v, None, None, 2, np.array([0, 1]), np.array([0, 0]), np.array([1.0, 2.0]),
                                   np.array([2.0, 3.0])),
        "attribution_tree": AttributionTree(tokens=list("abcd"), num_layers=L, threshold=v, root=1,
                                            nodes=[TreeNode(1, "b", L), TreeNode(2, "c", 1)],
                                            edges=[TreeEdge(1, 2, 1, 0.9)]),
        "seq2seq_attribution": make_seq2seq_attr(v),
        "trigger_pattern": make_pattern(v),
        "trigger_result": TriggerResult(make_pattern(v), [{"label": 0, "name": "neg", "n": 3, "before": 1.0,
                                                           "after": v, "drop": 1 - v}], 1.0, v, v, 3),
        "list": [make_pattern(v), make_pattern(v / 2)],
    }
