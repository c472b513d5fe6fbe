"""The attribution of one encoder–decoder answer (:class:`Seq2SeqAttribution`): three attention sites, each with
its own maps and per-layer completeness. numpy only, no torch.

Sites (``res.encoder``, ``res.decoder``, ``res.cross``, each a :class:`SiteMaps`):

* ``encoder`` self-attention: ``[L_enc, H, n_src, n_src]``, rows and columns the source tokens;
* ``decoder`` self-attention: ``[L_dec, H, n_tgt, n_tgt]``, rows and columns the tokens the decoder reads
  (``decoder_tokens``: the start token, then the answer shifted right);
* ``cross`` attention: ``[L_dec, H, n_tgt, n_src]``, rows the decoder positions, columns the source tokens (the
  alignment view). Decoder row i predicts ``label_tokens[i]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import AttAttrError
from .attribution import Attribution
from .base import Result
from .schema import Record, array

__all__ = ["SITE_NAMES", "Seq2SeqAttribution", "SiteMaps", "SiteMeta"]

SITE_NAMES = ("encoder", "decoder", "cross")


@dataclass
class SiteMeta(Record, closed=True):
    """Per-layer facts of one site: ``layers`` (the site's layer indices, 0..num_layers-1), ``num_layers`` (the
    site's layers in the model), ``zero_probs`` F with that layer's attention zeroed, ``completeness`` the relative
    IG error |Σ scores − ΔF| / |ΔF|, ``steps`` the quadrature nodes its maps are built from, ``converged``
    whether ``steps="auto"`` met ``tol``, ``unresolved`` whether ΔF is below what the forward dtype resolves,
    ``nonfinite`` whether the layer's maps hold NaN/inf (one entry per layer each)."""

    layers: list[int]
    num_layers: int
    zero_probs: list[float] = field(default_factory=list)
    completeness: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    unresolved: list[bool] = field(default_factory=list)
    nonfinite: list[bool] = field(default_factory=list)


@dataclass
class SiteMaps:
    """One site of a :class:`Seq2SeqAttribution`, as a view: ``name``, ``scores`` / ``attention`` [L, H, n_rows,
    n_cols], ``row_tokens`` / ``col_tokens``, ``completeness`` [L], ``zero_probs`` [L], ``layers``, ``meta``."""

    name: str
    scores: np.ndarray
    attention: np.ndarray
    row_tokens: list[str]
    col_tokens: list[str]
    meta: SiteMeta

    @property
    def layers(self) -> list[int]:
        return self.meta.layers

    @property
    def completeness(self) -> np.ndarray:
        return np.asarray(self.meta.completeness, np.float64)

    @property
    def zero_probs(self) -> np.ndarray:
        return np.asarray(self.meta.zero_probs, np.float64)

    def layer(self, layer: int) -> np.ndarray:
        """Scores of the site's layer ``layer``: [H, n_rows, n_cols]."""
        return self.scores[self.meta.layers.index(layer)]

    def head_scores(self) -> np.ndarray:
        """The paper's per-head importance for this example, max over token pairs: [L, H]."""
        L, H = self.scores.shape[:2]
        return self.scores.reshape(L, H, -1).max(-1) if self.scores.size else np.zeros((L, H), self.scores.dtype)


@dataclass
class Seq2SeqAttribution(Result, kind="seq2seq_attribution", record="fields", arrays="npz"):
    """The attribution of one teacher-forced answer of an encoder–decoder (see the module docstring).

    ``prob``: F at α = 1 (``score="logprob"``: Σ of the labels' log-probabilities, nats; ``"prob"``: their joint
    probability); ``source_tokens`` n_src, ``decoder_tokens`` / ``label_tokens`` / ``label_ids`` n_tgt;
    ``text`` the source, ``answer`` the answer text; ``rule`` / ``steps`` / ``tol`` the quadrature. The six maps are
    ``.npz`` members; the per-site facts are :class:`SiteMeta` records.
    """

    encoder_scores: np.ndarray = array(float, 4)
    encoder_attention: np.ndarray = array(float, 4)
    decoder_scores: np.ndarray = array(float, 4)
    decoder_attention: np.ndarray = array(float, 4)
    cross_scores: np.ndarray = array(float, 4)
    cross_attention: np.ndarray = array(float, 4)
    encoder_meta: SiteMeta
    decoder_meta: SiteMeta
    cross_meta: SiteMeta
    source_tokens: list[str]
    decoder_tokens: list[str]
    label_tokens: list[str]
    label_ids: list[int]
    prob: float
    score: str
    rule: str
    steps: int | str
    text: str = ""
    answer: str = ""
    tol: float | None = None
    model_name: str = ""
    truncated: bool = False
    extra: dict = field(default_factory=dict)

    def site(self, name: str) -> SiteMaps:
        """The site ``name`` (``"encoder"``, ``"decoder"`` or ``"cross"``) as a :class:`SiteMaps`."""
        if name not in SITE_NAMES:
            raise KeyError(f"unknown attention site {name!r}: choose one of {', '.join(SITE_NAMES)}")
        rows = self.source_tokens if name == "encoder" else self.decoder_tokens
        cols = self.decoder_tokens if name == "decoder" else self.source_tokens
        return SiteMaps(name, getattr(self, f"{name}_scores"), getattr(self, f"{name}_attention"), list(rows),
                        list(cols), getattr(self, f"{name}_meta"))

    @property
    def encoder(self) -> SiteMaps:
        return self.site("encoder")

    @property
    def decoder(self) -> SiteMaps:
        return self.site("decoder")

    @property
    def cross(self) -> SiteMaps:
        return self.site("cross")

    def as_attribution(self, site: str) -> Attribution:
        """A square site (``"encoder"`` or ``"decoder"`` self-attention) as an :class:`Attribution` over its tokens,
        for everything built on square maps (``Explorer.from_attribution``, ``TreeView``, exports, plots).
        ``target_kind="answer"``, ``target`` -1 (the whole answer), ``target_label`` names the site and the
        answer. The cross-attention site is rectangular (answer × source) and has no such view."""
        if site not in ("encoder", "decoder"):
            raise AttAttrError(f"as_attribution({site!r}): only the square self-attention sites 'encoder' and "
                               f"'decoder' make an Attribution; read the cross-attention maps from res.cross")
        s = self.site(site)
        m = s.meta
        n = len(s.row_tokens)
        return Attribution(
            scores=s.scores, attention=s.attention, tokens=list(s.row_tokens),
            token_type_ids=np.zeros(n, np.int64), target=-1,
            target_label=f"{site} self-attention · answer {self.answer!r}", prob=self.prob,
            layer_zero_probs=np.asarray(m.zero_probs, np.float64), completeness=np.asarray(m.completeness, np.float64),
            layers=list(m.layers), num_layers=m.num_layers, rule=self.rule, steps=self.steps, score=self.score,
            text=self.text if site == "encoder" else self.answer, model_name=self.model_name, target_kind="answer",
            truncated=self.truncated, extra={**self.extra, "site": site}, layer_steps=list(m.steps),
            converged=list(m.converged), tol=self.tol,
            nonfinite=[x for x, bad in zip(m.layers, m.nonfinite) if bad],
            unresolved=[x for x, bad in zip(m.layers, m.unresolved) if bad],
        )

    def __repr__(self) -> str:
        worst = max((max(getattr(self, f"{s}_meta").completeness, default=0.0) for s in SITE_NAMES), default=0.0)
        return (f"Seq2SeqAttribution(source={len(self.source_tokens)} tokens, answer={len(self.label_tokens)} tokens, "
                f"layers enc/dec/cross={len(self.encoder_meta.layers)}/{len(self.decoder_meta.layers)}/"
                f"{len(self.cross_meta.layers)}, {self.score}={self.prob:.4f}, max completeness error={worst:.2e})")
