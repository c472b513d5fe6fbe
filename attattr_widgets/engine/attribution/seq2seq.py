"""AttAttr for encoder–decoders: one source, one teacher-forced answer, three attention sites.

The answer is teacher-forced (:class:`~..model.seq2seq.Answer`); F is the score of every label at once
(:meth:`~.engine._Engine.F` with the labels [1, A] as targets: :func:`~.scores.continuation_score`,
Σ log p(y_t | source, y_<t) for ``score="logprob"``, their joint probability for ``"prob"``). Every attention
module — encoder self-attention, decoder self-attention, cross-attention — is one engine layer, attributed on its own (only its P is scaled by α; everything else recomputes), with its own
completeness Σ Attr_l ≈ F(1) − F(0). The maps are [H, n_rows, n_cols]: source × source, target × target, target
× source. Prefix caching is off (no single block list runs the three kinds), so every pass runs the whole model;
the other passes, quadrature and output form are :class:`~.engine._Engine` 's.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ArgumentError
from ..model.encode import Encoded, collate
from ..model.seq2seq import Answer
from ..quadrature import AUTO_RULE
from ..results import LayerResult, Seq2SeqAttribution, SiteMeta
from ..results.seq2seq import SITE_NAMES
from .engine import _Batch, _Engine


class _AnswerBatch(_Batch):
    """One source (``enc``) and its teacher-forced ``answer``: encoder inputs plus ``decoder_input_ids``."""

    def __init__(self, enc: Encoded, answer: Answer, device):
        self.n_src, self.n_tgt = len(enc), len(answer)
        self.slots = None  # one row: nothing repeats an input
        self.lengths = [self.n_src]
        self.B, self.T = 1, max(self.n_src, self.n_tgt)
        self.positions = {self.n_src, self.n_tgt}  # encoder rows: the source; decoder and cross: the answer
        self.inputs = {**collate([enc], 0, device), "decoder_input_ids": answer.decoder_input_ids.to(device)}
        self.where = torch.tensor([self.n_tgt - 1], device=device)


class _Seq2SeqEngine(_Engine):
    """:class:`~.engine._Engine` on an encoder–decoder: F over the answer's labels, three sites."""

    def __init__(self, model, tokenizer, options):
        super().__init__(model, tokenizer, options)
        if not isinstance(self.store, str) or self.store not in ("auto", "memory", "fp16"):
            raise ArgumentError(f"store={self.store!r}: an encoder-decoder's maps are kept in memory; pass "
                                f"store='auto', 'memory' or 'fp16'")

    def site_selection(self, layers) -> dict[str, list[int]]:
        """Each site's selected layers (site-local indices): ``layers`` None (all) or indices that select the same
        layer number in every site that has it (checked against the deepest site)."""
        counts = {s.name: s.num_layers for s in self.sites}
        if layers is None:
            return {name: list(range(counts.get(name, 0))) for name in SITE_NAMES}
        chosen = self.options.layer_list(max(counts.values()))
        return {name: [i for i in chosen if i < counts.get(name, 0)] for name in SITE_NAMES}

    def run_answer(self, enc: Encoded, text: str, answer: Answer, progress, cancel) -> Seq2SeqAttribution:
        """Attribute ``answer`` given the source ``enc`` (of ``text``) over the selected layers of every site."""
        batch = _AnswerBatch(enc, answer, self.device)
        where = self.adapter.site_layers(self.ctrl)
        chosen = self.site_selection(self.options.layers)
        engine_layers = [where[name][i] for name in SITE_NAMES for i in chosen[name]]
        self._copy = None
        captured, hidden, targets, F_clean, g_one = self.clean_pass(
            batch, engine_layers, cancel, lambda logits: answer.labels.to(self.device))
        map_dtype = np.float64 if self.acc_dtype == torch.float64 else np.float32
        shape = {"encoder": (batch.n_src, batch.n_src), "decoder": (batch.n_tgt, batch.n_tgt),
                 "cross": (batch.n_tgt, batch.n_src)}
        tokens = {"encoder": enc.tokens, "decoder": answer.decoder_tokens, "cross": answer.decoder_tokens}
        col_tokens = {"encoder": enc.tokens, "decoder": answer.decoder_tokens, "cross": enc.tokens}
        heads = {s.name: s.num_heads for s in self.sites}
        maps, metas = {}, {}
        for name in SITE_NAMES:
            rows, cols = shape[name]
            scores = np.zeros((len(chosen[name]), heads.get(name, 0), rows, cols), map_dtype)
            attn = np.zeros_like(scores)
            meta = SiteMeta(layers=list(chosen[name]), num_layers=len(where[name]))
            for index, i in enumerate(chosen[name]):
                zero, steps, converged, _panels, checks = self.attribute_layer(
                    batch, where[name][i], hidden, targets, F_clean, captured, g_one, cancel,
                    lambda b, cap, g: self.layer_maps(cap, g, b, rows, scores[index], attn[index], cancel,
                                                      n_cols=cols),
                    lambda b: attn[index])
                err, unresolved, finite = checks[0]
                meta.zero_probs.append(float(zero[0]))
                meta.completeness.append(float(err))
                meta.steps.append(int(steps))
                meta.converged.append(bool(converged))
                meta.unresolved.append(bool(unresolved))
                meta.nonfinite.append(not finite)
                if progress is not None:
                    progress(LayerResult(
                        layer=i, index=index, total=len(chosen[name]), tokens=list(tokens[name]),
                        scores=scores[index], attention=attn[index], zero_prob=float(zero[0]), completeness=err,
                        target=-1, prob=float(F_clean[0]), steps=steps, converged=converged, nonfinite=not finite,
                        unresolved=unresolved, site=name, col_tokens=list(col_tokens[name]),
                        label_tokens=list(answer.label_tokens)))
            if self.store == "fp16":
                scores, attn = scores.astype(np.float16), attn.astype(np.float16)
            maps[name], metas[name] = (scores, attn), meta
        model_name = str(getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__)
        return Seq2SeqAttribution(
            **{f"{n}_{k}": maps[n][j] for n in SITE_NAMES for j, k in enumerate(("scores", "attention"))},
            **{f"{n}_meta": metas[n] for n in SITE_NAMES},
            source_tokens=list(enc.tokens), decoder_tokens=list(answer.decoder_tokens),
            label_tokens=list(answer.label_tokens), label_ids=[int(i) for i in answer.labels[0].tolist()],
            prob=float(F_clean[0]), score=self.score, rule=AUTO_RULE if self.quad.auto else self.quad.rule,
            steps=self.quad.steps, tol=self.quad.tol if self.quad.auto else None, text=text, answer=answer.text,
            model_name=model_name, truncated=bool(enc.truncated), extra={"method": self.method},
        )
