"""Attribution tree (Hao et al., AAAI 2021, Algorithm 1): how information flows between tokens, layer by layer.

For every attributed layer l the heads are summed, ``S_l = Σ_h Attr_h(A^l)`` ([n, n]; entry (i, j) = "query i
attends to key j"), and normalised by the layer maximum, ``a^l = S_l / |max S_l|``.  Links with ``a^l_ij > τ``
(τ = 0.4 by default) are candidate edges.  The tree grows top-down from the most attributed token (the *root*):
going from the last layer down to the first, a token that is not in the tree yet joins it as the child of a token
that already is (parent = query i, child = key j: "i attends to j", information flows from j up to i).  Every
token joins at most once, so the result is a tree; tokens never reached are left out (isolates).

Faithfulness to the authors' code (``examples/attribution_tree.py`` of YRdddream/attattr, the paper's
§"Visualizing Information Flow Inside Transformer"):

* **Normaliser** — same as the code: the maximum is taken over the query rows 1..n-1 (the ``[CLS]`` row is
  excluded: [CLS] is the classifier's read-out, its links are only considered through the root; authors' answer in
  issue #9) and its *absolute value* divides the layer.  A layer whose maximum is <= 0 (nothing positive) has no
  candidate edge.  The row is only excluded when token 0 is a special token (``[CLS]``, ``<s>``, …); a model
  without such a token (decoders) uses every row.  The [CLS] row never parents an edge; [CLS] may appear as a child.
* **Threshold** — strict ``a > τ`` everywhere (the code zeroes ``P <= τ`` first, so its later ``< τ`` test is
  effectively strict too).
* **Root** — as in the code: the token maximising ``Σ_j max(0, C_ij)`` over non-[CLS] query rows i, with
  ``C = Σ_l S_l`` (all attributed layers, diagonal removed).  The code divides C by its maximum first; that does
  not change the argmax.  The code's "if it is 0 take the runner-up" is implied: row 0 is never eligible.
* **Which layers build edges — departure.**  The code seeds the root's children from layer index 10 only and then
  scans layers 9..0, so the last layer (11) enters only through the all-layer sum C.  Here every attributed layer
  builds edges, the last one included: the root's children come from the last layer (root counts as having
  entered "above" every layer, ``layer = num_layers``), then each layer below in turn.  This keeps the tree
  consistent for any depth (a 6-layer MiniLM, or a subset ``attribution.layers`` such as ``[3, 5]``).
* **Who may parent at layer l — departure.**  Only tokens that entered at a higher layer (or the root).  The code
  scans i then j inside a layer and lets a token that joined at layer l take children at the same layer l when
  its index comes later, which makes the tree depend on token order and draws parent and child at the same
  height.  The layer-synchronous rule makes a layer's additions independent of scan order and vectorises.
* **Ties / several candidate parents — departure.**  The code takes the first qualifying parent in scan order
  (smallest query index).  Here a new token's parent is the in-tree query with the largest normalised score for
  it at that layer; exact score ties go to the smallest index (the code's choice).

Consequences worth knowing (tested in ``tests/engine/analysis/test_tree.py``): the node set shrinks monotonically
as τ grows and every node enters no higher than at a smaller τ, so the edge *count* never increases; the edge *set*
is not monotone (a token cut off at layer 8 may re-enter at layer 3 through another parent) — true of the authors'
algorithm as well.

Encoder–decoders: :func:`seq2seq_tree` grows one tree across source and answer from the three attention sites of
a ``Seq2SeqAttribution`` with the same steps applied per layer-site map (its docstring gives the layer order and
how cross-attention edges join the two token sets); :func:`seq2seq_tree_from_layer_sums` is its contract with the
browser, as :func:`tree_from_layer_sums` is the one-site one.

Speed: O(L·H·n²) for the head sum and O(L·n²) numpy work for the growth, ~1–3 ms for 12 layers × 128 tokens,
so the TreeView's threshold slider recomputes it live.

**One algorithm, two implementations.**  :func:`tree_from_layer_sums` is the contract shared with the browser
(``js/tree/tree-algo.ts``, used by the TreeView when there is no kernel: exported pages, reopened notebooks).  Its
input is the float32 head sum ``S`` [L, n, n] (:func:`layer_sums`, shipped to the browser as is) plus ``layers``,
``num_layers``, ``tokens`` and the already-resolved ``exclude_row``; every step below is float64 IEEE arithmetic in
a fixed order, so both sides give bit-identical trees (``tests/test_tree_shared.py`` runs the TypeScript through
node on many random cases):

1. ``mx_l`` = max of ``S_l`` over rows ≠ exclude_row (all rows when None or n = 1); ``denom_l = |mx_l|`` when
   ``mx_l > 0`` else +inf; ``P_l = S_l / denom_l``.
2. ``C = S_0 + S_1 + … + S_{L-1}`` (added in this order), diagonal set to 0; ``r_i = Σ_j max(0, C_ij)`` added
   j = 0..n-1 in order; root = first i ≠ exclude_row with the largest ``r_i``.
3. Layers in decreasing model index (stable for equal indices); in each, every token j not yet in the tree whose
   column has a candidate ``P_l[i, j] > τ`` with i a possible parent (in the tree before this layer, ≠ exclude_row)
   joins with the first i of largest ``P_l[i, j]``; j ascending; nodes are listed root first, then as they join.
"""
from __future__ import annotations

import numpy as np

from .. import validate
from ..errors import ArgumentError, AttAttrError
from ..model.tokens import is_special_token
from ..results import AttributionTree, Seq2SeqAttribution, TreeEdge, TreeNode, sum_heads

__all__ = ["AttributionTree", "TreeEdge", "TreeNode", "attribution_tree", "layer_sums", "normalized_layer_scores",
           "resolve_exclude_row", "seq2seq_tree", "seq2seq_tree_inputs", "seq2seq_tree_from_layer_sums",
           "tree_from_layer_sums"]

def _cls_row(tokens: list[str]) -> int | None:
    """Index of the read-out token whose row the normaliser skips: 0 if token 0 is a special token
    (:func:`~attattr_widgets.engine.model.tokens.is_special_token`: the engine's one rule, on display strings)."""
    return 0 if tokens and is_special_token(tokens[0]) else None


def _check_attribution(attribution) -> None:
    validate.single_site(attribution)
    if not all(hasattr(attribution, k) for k in ("scores", "tokens", "layers")):
        raise ArgumentError(f"attribution must be an Attribution (from attribute() or Attribution.load()), got "
                            f"{validate.show(attribution)}")


def layer_sums(attribution) -> np.ndarray:
    """Head sum of each attributed layer, ``S`` [L, n, n] float32 (``scores.sum(1)``): the tree's only array input."""
    _check_attribution(attribution)
    return sum_heads(attribution.scores)  # the one implementation behind Attribution.layer_sum()


def resolve_exclude_row(tokens: list[str], exclude_row: int | None | str, n: int) -> int | None:
    """The query row left out of the normaliser (and never a parent): ``"auto"`` → 0 when token 0 is a special
    token such as ``[CLS]``, else None; an index is checked; None or n <= 1 → None."""
    if not (exclude_row is None or exclude_row == "auto"):
        exclude_row = validate.integer(exclude_row, "exclude_row", fix="'auto', None or a token index")
    row = _cls_row(tokens) if exclude_row == "auto" else exclude_row
    if row is not None and not 0 <= int(row) < max(n, 1):
        raise AttAttrError(f"exclude_row={row} is not a token index (0..{n - 1})")
    return int(row) if row is not None and n > 1 else None


def _normalize(S: np.ndarray, row: int | None) -> np.ndarray:
    """Step 1: ``P_l = S_l / |max S_l|`` over rows ≠ row (layers without a positive maximum become 0); S [L, rows,
    cols] (square for one site, answer × source for cross-attention)."""
    S = S.astype(np.float64)
    if row is not None:
        keep = np.ones(S.shape[-2], dtype=bool)
        keep[row] = False
        mx = S[:, keep, :].reshape(S.shape[0], -1).max(-1)
    else:
        mx = S.reshape(S.shape[0], -1).max(-1) if S.shape[-1] else np.zeros(S.shape[0])
    denom = np.where(mx > 0, np.abs(mx), np.inf)
    return S / denom[:, None, None]


def normalized_layer_scores(attribution, *, exclude_row: int | None | str = "auto") -> tuple[np.ndarray, list[int]]:
    """``(a, layers)``: head-summed scores of each attributed layer divided by |max over non-[CLS] rows|, [L, n, n]
    float64 (layers without a positive maximum are all zero), and the model layer index of each."""
    S = layer_sums(attribution)
    row = resolve_exclude_row([str(t) for t in attribution.tokens], exclude_row, S.shape[-1])
    return _normalize(S, row), [int(x) for x in attribution.layers]


def attribution_tree(attribution, *, threshold: float = 0.4, exclude_row: int | None | str = "auto"
                     ) -> AttributionTree:
    """Build the attribution tree of one :class:`~attattr_widgets.engine.attribution.Attribution`.

    Args:
        attribution: any object with ``scores`` [L, H, n, n], ``tokens`` (n), ``layers`` (model layer index of each
            row of ``scores``; any subset, any order) and ``num_layers`` (model total; defaults to max(layers)+1).
        threshold: τ, links with normalised score ``> τ`` are candidate edges (paper and code: 0.4). Must be >= 0.
        exclude_row: the query row left out of the normaliser and never a parent: ``"auto"`` (0 when token 0 is a
            special token such as ``[CLS]``), an index, or None.

    Returns: an :class:`AttributionTree`; ``to_dict()`` gives the TreeView's JSON.  See the module docstring for
    where this follows and where it departs from the authors' code.  An encoder–decoder's
    :class:`~attattr_widgets.engine.results.Seq2SeqAttribution` gives its tree across source and answer
    (:func:`seq2seq_tree`).
    """
    if isinstance(attribution, Seq2SeqAttribution):
        return seq2seq_tree(attribution, threshold=threshold, exclude_row=exclude_row)
    tau = validate.number(threshold, "threshold", minimum=0.0, fix="the paper uses 0.4")
    S = layer_sums(attribution)
    tokens = [str(t) for t in attribution.tokens]
    layers = [int(x) for x in attribution.layers]
    num_layers = int(getattr(attribution, "num_layers", 0) or (max(layers) + 1 if layers else 0))
    return tree_from_layer_sums(S, layers=layers, num_layers=num_layers, tokens=tokens, threshold=tau,
                                exclude_row=resolve_exclude_row(tokens, exclude_row, S.shape[-1]))


def tree_from_layer_sums(S: np.ndarray, *, layers: list[int], num_layers: int, tokens: list[str],
                         threshold: float = 0.4, exclude_row: int | None = None) -> AttributionTree:
    """The tree algorithm on the head sums ``S`` [L, n, n] (float32 as from :func:`layer_sums`), ``layers`` (model
    index of each row of S), ``num_layers``, ``tokens`` (n), τ and a resolved ``exclude_row`` (index or None).

    The contract shared with the browser (``js/tree/tree-algo.ts``): see the module docstring, steps 1–3.
    """
    tau = validate.number(threshold, "threshold", minimum=0.0, fix="the paper uses 0.4")
    S = np.asarray(S)
    if S.ndim != 3 or S.shape[-1] != S.shape[-2]:
        raise AttAttrError(f"layer sums must have shape [layers, n, n], got {S.shape}")
    n = S.shape[-1]
    if n == 0:
        raise AttAttrError("attribution has no tokens")
    if len(tokens) != n:
        raise AttAttrError(f"attribution has {len(tokens)} tokens but scores for {n}")
    if len(layers) != S.shape[0]:
        raise AttAttrError(f"attribution.layers lists {len(layers)} layers but scores has {S.shape[0]}")
    row = exclude_row if n > 1 else None
    P = _normalize(S, row)

    # step 2 — root: largest positive off-diagonal row sum of C = Σ_l S_l, sums in a fixed order
    C = _layer_total(S, n, n)
    np.fill_diagonal(C, 0.0)
    eligible = _eligible(n, row)
    root = int(np.argmax(np.where(eligible, _positive_row_sums(C), -np.inf)))

    # step 3 — growth, layer-synchronous, top layer first
    in_tree = np.zeros(n, dtype=bool)
    in_tree[root] = True
    can_parent = in_tree.copy()
    nodes = [TreeNode(root, tokens[root], num_layers)]
    edges: list[TreeEdge] = []
    for k in sorted(range(len(layers)), key=lambda k: -layers[k]):
        joined = _join(P[k], tau, can_parent & eligible, ~in_tree)
        for i, j, score in joined:
            edges.append(TreeEdge(i, j, layers[k], score))
            nodes.append(TreeNode(j, tokens[j], layers[k]))
            in_tree[j] = True
        can_parent = in_tree.copy()
    return AttributionTree(tokens=tokens, num_layers=num_layers, threshold=tau, root=root, nodes=nodes, edges=edges)


# -- shared steps ------------------------------------------------------------------------------------------------

def _eligible(n: int, row: int | None) -> np.ndarray:
    """[n] bool: the query rows that may parent (every row but the excluded read-out row)."""
    ok = np.ones(n, dtype=bool)
    if row is not None:
        ok[row] = False
    return ok


def _layer_total(S: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``C = S_0 + S_1 + … + S_{L-1}`` in float64, added in this order ([rows, cols]; zeros when L = 0)."""
    S64 = np.asarray(S).astype(np.float64)
    C = S64[0].copy() if len(S64) else np.zeros((rows, cols))
    for k in range(1, len(S64)):
        C += S64[k]
    return C


def _positive_row_sums(C: np.ndarray) -> np.ndarray:
    """``r_i = Σ_j max(0, C_ij)``, added j = 0..cols-1 in order ([rows] float64)."""
    Cp = np.maximum(C, 0.0)
    r = np.zeros(C.shape[0])
    for j in range(C.shape[1]):
        r += Cp[:, j]
    return r


def _join(M: np.ndarray, tau: float, parents: np.ndarray, open_cols: np.ndarray) -> list[tuple[int, int, float]]:
    """One layer of step 3 on a normalised map ``M`` [rows, cols]: every open column j with a candidate
    ``M[i, j] > τ`` from an allowed parent row i joins with the first i of largest ``M[i, j]``; returns
    ``(parent, child, score)`` with j ascending."""
    cand = (M > tau) & parents[:, None] & open_cols[None, :]
    cols = np.flatnonzero(cand.any(0))
    if not cols.size:
        return []
    masked = np.where(cand[:, cols], M[:, cols], -np.inf)
    best = masked.argmax(0)  # largest score; ties -> smallest query index
    return [(i, j, float(M[i, j])) for j, i in zip(cols.tolist(), best.tolist())]


# -- encoder–decoders: one tree across source and answer --------------------------------------------------------

def seq2seq_tree(res: Seq2SeqAttribution, *, threshold: float = 0.4, exclude_row: int | None | str = "auto"
                 ) -> AttributionTree:
    """The attribution tree of an encoder–decoder's answer, across source and answer tokens.

    Tokens: ``tree.tokens = source_tokens + decoder_tokens`` (n_src + n_tgt; an answer node's ``position`` is its
    decoder position, whose token is what that row reads: the start token, then the answer shifted right);
    ``tree.sides[i]`` and each node's ``side`` say ``"source"`` or ``"answer"``, ``position`` the index within
    that side's tokens; edges use the joint index.

    Layers, one stack bottom to top: encoder layer l is level ``l`` (0..L_enc-1), decoder layer l is level
    ``L_enc + l``; ``tree.encoder_layers = L_enc``, ``tree.num_layers = L_enc + L_dec`` (the root's level, above
    the top decoder layer); an edge's ``layer`` is its level.  Each layer-site map is normalised on its own with
    the paper's rule (step 1: head sum, divided by |its max over rows ≠ the excluded row|; ``exclude_row``
    "auto" = 0 where that site's row token 0 is special — the decoder start token, BART's ``<s>`` — as in
    ``tree_view(site=...)``; None or an index apply to all three sites).

    Root: the answer row i (≠ excluded) with the largest ``Σ_j max(0, C_dec[i, j]) + Σ_s max(0, C_cross[i, s])``,
    ``C_dec`` = Σ of the decoder self-attention head sums over its layers (diagonal 0), ``C_cross`` = the same
    for cross-attention (answer rows × source columns, no diagonal): the answer token that reads most.

    Growth (step 3 per site, strict ``> τ``, layer-synchronous, parents = tokens in the tree before the layer):
    decoder layers from the top down; at each, decoder self-attention joins answer tokens (parent = answer query
    i, child = answer key j) and cross-attention joins source tokens (parent = answer query i, child = source
    key s) — both from the same in-tree answer parents, decoder edges listed first.  Then the encoder layers
    from the top down join source tokens from in-tree source parents (source query → source key).  An answer
    token never parents an encoder edge and a source token never parents a decoder or cross edge, because its
    row is not in those maps.  Each token joins once; a new token's parent is the allowed row of largest score,
    ties to the smallest index.  :func:`seq2seq_tree_from_layer_sums` is this on the head sums, shared with the
    browser (``js/tree/tree-algo.ts``), so an exported TreeView's slider works without a kernel.
    """
    sums, inputs = seq2seq_tree_inputs(res, exclude_row)
    return seq2seq_tree_from_layer_sums(*sums, threshold=threshold, **inputs)


def seq2seq_tree_inputs(res: Seq2SeqAttribution, exclude_row: int | None | str = "auto"
                        ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict]:
    """What :func:`seq2seq_tree_from_layer_sums` consumes for ``res``: the head sums of each attributed layer of
    the three sites, float32 (encoder [L_enc, n_src, n_src], decoder [L_dec, n_tgt, n_tgt], cross [L_dec, n_tgt,
    n_src]), and its keyword arguments (tokens, layer indices, layer counts, resolved excluded rows) — the one
    place both the kernel's tree and the browser's embedded copy (``widgets.embed.embed_layer_sums``) take them."""
    if not isinstance(res, Seq2SeqAttribution):
        raise ArgumentError(f"seq2seq_tree needs an encoder-decoder's Seq2SeqAttribution, got {validate.show(res)}")
    src = [str(t) for t in res.source_tokens]
    tgt = [str(t) for t in res.decoder_tokens]
    enc, dec, crs = res.encoder, res.decoder, res.cross
    if dec.layers != crs.layers:
        raise AttAttrError(f"decoder layers {dec.layers} and cross-attention layers {crs.layers} differ: the tree "
                           f"needs both sites attributed at the same decoder layers")
    sums = tuple(sum_heads(s.scores, square=False) for s in (enc, dec, crs))
    L_enc = int(enc.meta.num_layers)
    return sums, dict(
        source_tokens=src, answer_tokens=tgt, encoder_layers=[int(x) for x in enc.layers],
        decoder_layers=[int(x) for x in dec.layers], encoder_num_layers=L_enc,
        num_layers=L_enc + int(dec.meta.num_layers), exclude_source=resolve_exclude_row(src, exclude_row, len(src)),
        exclude_answer=resolve_exclude_row(tgt, exclude_row, len(tgt)))


def seq2seq_tree_from_layer_sums(Se: np.ndarray, Sd: np.ndarray, Sc: np.ndarray, *, source_tokens: list[str],
                                 answer_tokens: list[str], encoder_layers: list[int], decoder_layers: list[int],
                                 encoder_num_layers: int, num_layers: int, threshold: float = 0.4,
                                 exclude_source: int | None = None, exclude_answer: int | None = None
                                 ) -> AttributionTree:
    """:func:`seq2seq_tree` on the head sums (:func:`seq2seq_tree_inputs`), the model layer index of each of their
    rows (decoder and cross share ``decoder_layers``), ``encoder_num_layers`` (L_enc), ``num_layers`` (L_enc +
    L_dec), τ and the resolved excluded rows of each side (index or None).

    The contract shared with the browser (``js/tree/tree-algo.ts`` ``seq2seqTreeFromLayerSums``), with the
    fixed-order float64 arithmetic of the module docstring's steps 1–3 applied per layer-site map; the root's score
    is the decoder sum plus the cross sum (``r_dec[i] + r_cross[i]``)."""
    tau = validate.number(threshold, "threshold", minimum=0.0, fix="the paper uses 0.4")
    src, tgt = [str(t) for t in source_tokens], [str(t) for t in answer_tokens]
    ns, nt = len(src), len(tgt)
    if ns == 0 or nt == 0:
        raise AttAttrError(f"encoder-decoder result has {ns} source and {nt} answer tokens; both must be non-empty")
    shapes = (("encoder", Se, (len(encoder_layers), ns, ns)), ("decoder", Sd, (len(decoder_layers), nt, nt)),
              ("cross", Sc, (len(decoder_layers), nt, ns)))
    for name, S, shape in shapes:
        if np.shape(S) != shape:
            raise AttAttrError(f"{name} layer sums have shape {np.shape(S)}, expected {shape} for "
                               f"{shape[0]} layers, {ns} source and {nt} answer tokens")
    row_e = exclude_source if ns > 1 else None
    row_d = exclude_answer if nt > 1 else None
    Pe, Pd, Pc = _normalize(Se, row_e), _normalize(Sd, row_d), _normalize(Sc, row_d)
    L_enc = int(encoder_num_layers)

    Cd = _layer_total(Sd, nt, nt)
    np.fill_diagonal(Cd, 0.0)
    ok_e, ok_d = _eligible(ns, row_e), _eligible(nt, row_d)
    reads = _positive_row_sums(Cd) + _positive_row_sums(_layer_total(Sc, nt, ns))
    root = int(np.argmax(np.where(ok_d, reads, -np.inf)))

    tokens = src + tgt
    sides = ["source"] * ns + ["answer"] * nt
    in_src, in_tgt = np.zeros(ns, dtype=bool), np.zeros(nt, dtype=bool)
    in_tgt[root] = True
    nodes = [_node(ns + root, tokens, sides, ns, num_layers)]
    edges: list[TreeEdge] = []

    def add(joined, p_off: int, c_off: int, level: int, mark: np.ndarray) -> None:
        for i, j, score in joined:
            edges.append(TreeEdge(p_off + i, c_off + j, level, score))
            nodes.append(_node(c_off + j, tokens, sides, ns, level))
            mark[j] = True

    for k in sorted(range(len(decoder_layers)), key=lambda k: -decoder_layers[k]):
        level = L_enc + int(decoder_layers[k])
        parents = in_tgt & ok_d
        joined_d = _join(Pd[k], tau, parents, ~in_tgt)
        joined_c = _join(Pc[k], tau, parents, ~in_src)
        add(joined_d, ns, ns, level, in_tgt)
        add(joined_c, ns, 0, level, in_src)
    for k in sorted(range(len(encoder_layers)), key=lambda k: -encoder_layers[k]):
        add(_join(Pe[k], tau, in_src & ok_e, ~in_src), 0, 0, int(encoder_layers[k]), in_src)
    return AttributionTree(tokens=tokens, num_layers=int(num_layers), threshold=tau, root=ns + root,
                           nodes=nodes, edges=edges, sides=sides, encoder_layers=L_enc)


def _node(index: int, tokens: list[str], sides: list[str], ns: int, layer: int) -> TreeNode:
    """A node of the tree across source and answer: joint ``index``, its ``side`` and ``position`` in that side."""
    return TreeNode(index, tokens[index], layer, side=sides[index], position=index if index < ns else index - ns)
