"""The two map-maximum importance methods: ``"attattr"`` (paper §4.1) and its ``"attention"`` baseline.

* ``"attattr"`` — I_h = E_x[max_{i,j} Attr_h(A)]: for every example, the AttAttr scores of the **gold** label's
  probability (``target="gold"``, as the authors' ``prune_head_with_attr.py``), the signed maximum over the head's
  real token pairs, averaged over examples. (The authors sum over their 200 examples, which is 200 × this mean:
  the ranking is identical.) Quadrature: Gauss–Legendre with 6 nodes by default; ``rule="left", steps=20`` is the
  authors' setting. One step per example.
* ``"attention"`` — E_x[max_{i,j} A_h], the same reduction applied to the attention probabilities themselves, so
  the two differ only in A vs Attr. (The *mean* of a head's probabilities over its real query rows is 1/n for
  every head, because each row sums to 1, so "average attention" cannot rank heads; the maximum can.) Many heads
  have a max close to 1 (a token attending to [CLS]/[SEP] or to itself), so this baseline is coarse; that is part
  of the paper's point. One step per length-sorted batch, under ``torch.no_grad()``.

``reduce`` picks the per-example summary of a head's [n, n] map: ``"max"`` (paper), ``"absmax"`` or ``"sum"``.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..attribution.api import iter_attributions
from ..backends.dispatch import iter_sharded
from ..errors import check_cancel
from ..model.adapters import adapter_for
from ..model.examples import check_labels
from ..model.predict import EncodedSet
from ..progress import Progress
from ..reductions import HEAD_REDUCTIONS
from .protocol import ImportanceRequest, ImportanceStep

__all__ = ["attattr_steps", "attention_steps"]

def _attattr_pieces(model, tokenizer, items, *, offset, progress, cancel, target, rule, steps, batch_size,
                    max_length, reduce):
    """Shard function (see :mod:`.backends`): yields ``(index [1], head scores [1, L, H] float64)`` per example,
    ``index`` global (``offset`` + position)."""
    with Progress(progress, len(items), "attattr importance") as prog:
        stream = iter_attributions(
            model, tokenizer, items, target=target, rule=rule, steps=steps, batch_size=batch_size,
            cancel=cancel, max_length=max_length, truncation=True,
        )
        for n, attr in enumerate(stream):
            s = attr.head_scores(reduce).astype(np.float64)
            prog.update(1)
            check_cancel(cancel)
            yield np.array([offset + n]), s[None]


def attattr_steps(req: ImportanceRequest) -> Iterator[ImportanceStep]:
    """The ``"attattr"`` method: one step per example, the running mean of the per-example head scores."""
    check_labels(req.items, *adapter_for(req.model).num_outputs())
    N = len(req.items)
    total = np.zeros((req.L, req.H), dtype=np.float64)
    for idx, s in iter_sharded(req.backend, _attattr_pieces, req.model, req.tokenizer, req.items,
                               progress=req.progress, cancel=req.cancel, desc="attattr importance",
                               multiple=req.batch_size or 1, target=req.target, rule=req.rule, steps=req.steps,
                               batch_size=req.batch_size, max_length=req.max_length, reduce=req.reduce):
        n = int(idx[0])
        total += s[0]
        yield ImportanceStep(req.method, n + 1, N, total / (N if n + 1 == N else n + 1), idx, s, n + 1 == N)


def _attention_pieces(model, tokenizer, items, *, offset, progress, cancel, batch_size, max_length, reduce):
    """Shard function: yields ``(index [b], reduced attention [b, L, H] float64)`` per length-sorted batch."""
    data = EncodedSet(model, tokenizer, items, max_length=max_length)
    red = HEAD_REDUCTIONS[reduce]
    net = data.net()
    with Progress(progress, len(data), "attention importance") as prog, torch.no_grad():
        for idx, inputs, last, amask in data.batches(batch_size):
            check_cancel(cancel)
            with data.ctrl.session(record=True) as c:
                net(**inputs)
                attn = dict(c.attn)
            m = amask.to(attn[0].dtype)
            valid = m[:, None, :, None] * m[:, None, None, :]  # real query rows × real keys
            per_ex = torch.stack([red(attn[l], valid).double() for l in range(data.L)], 1).cpu()  # [b, L, H]
            prog.update(len(idx))
            yield offset + np.asarray(idx), per_ex.numpy()


def attention_steps(req: ImportanceRequest) -> Iterator[ImportanceStep]:
    """The ``"attention"`` method: one step per length-sorted batch, the running mean of the reduced maps."""
    N = len(req.items)
    total = torch.zeros(req.L, req.H, dtype=torch.float64)
    done = 0
    for idx, per_ex in iter_sharded(req.backend, _attention_pieces, req.model, req.tokenizer, req.items,
                                    progress=req.progress, cancel=req.cancel, desc="attention importance",
                                    reduce=req.reduce, batch_size=req.eval_batch_size,
                                    max_length=req.max_length):
        total += torch.from_numpy(per_ex).sum(0)
        done += len(idx)
        yield ImportanceStep(req.method, done, N, (total / (N if done == N else done)).numpy(), idx, per_ex,
                             done == N)
