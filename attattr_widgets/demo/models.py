"""Loading the demo models (offline) and any Hugging Face / local checkpoint.

``load_model(name_or_path)`` returns ``(model, tokenizer)`` with the model in ``eval()`` mode, fp32 and
``config.id2label`` set to readable class names:

* ``"sentiment"``: binary movie-review classifier (``negative`` / ``positive``);
* ``"nli"``: 3-way SNLI classifier over (premise, hypothesis) pairs (``entailment`` / ``neutral`` /
  ``contradiction``);
* ``"decoder"``: SmolLM2-135M-Instruct, a ``LlamaForCausalLM`` (30 layers x 9 heads, GQA) for next-token
  attribution;
* ``"digits-vit"``: a ``ViTForImageClassification`` (2 layers x 4 heads, 8 x 8 pictures in 2 x 2 patches)
  trained by ``make assets`` on scikit-learn's handwritten digits (classes ``0`` … ``9``; its held-out accuracy
  is in ``training.json`` beside it); the second item returned is its image processor. Its pictures:
  ``load_dataset("digits", "test")[i]["image"]``.

The two classifiers are the pip-installed all-MiniLM-L6-v2 encoder (``BertForSequenceClassification``,
6 layers x 12 heads) plus a small trained *delta* shipped in ``attattr_widgets/demo/weights/<name>.safetensors``
(written by ``python -m attattr_widgets.demo.train``).  A delta holds fp16 tensors of two kinds:

* ``<param name>``: replaces that parameter (classifier, pooler, fine-tuned layers, ...);
* ``<linear>.lora_A`` [r, in] and ``<linear>.lora_B`` [out, r]: a low-rank update merged as
  ``W += lora_scale * B @ A`` (``lora_scale`` is in the file's metadata).

Any other string is passed to ``from_pretrained``: a Hugging Face model id (for instance
``"textattack/bert-base-uncased-SST-2"``, which needs hub access) or a local checkpoint folder.  It is loaded
as ``AutoModelForSequenceClassification`` unless its config's ``architectures`` name a causal-LM head (or
``kind="causal-lm"``), in which case ``AutoModelForCausalLM`` is used, or an image-classification head (or
``kind="image-classifier"``: ``AutoModelForImageClassification`` with its ``AutoImageProcessor``, e.g.
``load_model("google/vit-base-patch16-224")``).  Checkpoints whose config only has
placeholder names (``LABEL_0``, as in many fine-tuned hub models) get ``class 0``, ...; pass
``labels=["negative", "positive"]`` to name them.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from .assets import DemoAssetError, decoder_dir, digits_vit_dir, encoder_dir
from .data import label_names

__all__ = ["DEMO_MODELS", "apply_delta", "delta_path", "encoder_base", "load_model", "read_delta_metadata"]

WEIGHTS_DIR = Path(__file__).with_name("weights")
#: Demo model name -> (dataset whose labels it predicts | None for the decoder).
DEMO_MODELS = {"sentiment": "sentiment", "nli": "nli", "decoder": None, "digits-vit": "digits"}
LORA_A, LORA_B = ".lora_A", ".lora_B"


def delta_path(name: str) -> Path:
    """Path of the shipped delta of a demo classifier (``sentiment`` or ``nli``)."""
    return WEIGHTS_DIR / f"{name}.safetensors"


def read_delta_metadata(path: str | Path) -> dict:
    """The metadata of a delta file (training settings, data sizes, accuracies) as a dict."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {k: json.loads(v) for k, v in meta.items()}


@contextlib.contextmanager
def _quiet_loading():
    """Silence transformers' load report and progress bar while loading a demo model: the classifier head
    that the report calls "newly initialized" is replaced by the delta right after."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def encoder_base(num_labels: int, names: list[str]) -> tuple[torch.nn.Module, object]:
    """The pretrained all-MiniLM-L6-v2 encoder as a fresh ``BertForSequenceClassification`` (classifier head
    randomly initialised, train mode) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = encoder_dir()
    tok = AutoTokenizer.from_pretrained(path)
    with _quiet_loading():
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)}, dtype=torch.float32,
        )
    return model, tok


@torch.no_grad()
def apply_delta(model: torch.nn.Module, path: str | Path) -> None:
    """Apply a delta file (see module doc) to ``model`` in place; raises if a key does not fit the model."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    meta = read_delta_metadata(path)
    params = dict(model.named_parameters())
    full = {k: v for k, v in tensors.items() if not k.endswith((LORA_A, LORA_B))}
    for key in [k for k in tensors if k.endswith(LORA_A)]:
        base = key[: -len(LORA_A)]
        if base not in params or base + LORA_B not in tensors:
            raise DemoAssetError(f"delta {path} has a low-rank update for {base!r}, which this model lacks")
        a, b = tensors[key].float(), tensors[base + LORA_B].float()
        params[base].add_(float(meta["lora_scale"]) * (b @ a))
    missing_in_model = [k for k in full if k not in params]
    if missing_in_model:
        raise DemoAssetError(f"delta {path} does not fit the model: unknown tensors {missing_in_model[:5]}")
    model.load_state_dict({k: v.float() for k, v in full.items()}, strict=False)


def _load_demo_classifier(name: str) -> tuple[torch.nn.Module, object]:
    encoder_dir()  # the pip-installed base first: its error says how to install the assets
    path = delta_path(name)
    if not path.is_file():
        raise DemoAssetError(
            f"The trained delta {path.name} is missing from {path.parent}; it ships with the package, or can be "
            f"rebuilt with `python -m attattr_widgets.demo.train {name}`."
        )
    names = label_names(DEMO_MODELS[name])
    model, tok = encoder_base(len(names), names)
    apply_delta(model, path)
    return model, tok


def _load_decoder() -> tuple[torch.nn.Module, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = decoder_dir()
    tok = AutoTokenizer.from_pretrained(path)
    with _quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tok


def _load_digits_vit() -> tuple[torch.nn.Module, object]:
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    path = digits_vit_dir()
    with _quiet_loading():
        model = ViTForImageClassification.from_pretrained(path, dtype=torch.float32)
    return model, ViTImageProcessorPil.from_pretrained(path)


def _is_causal_config(config) -> bool:
    """True when the checkpoint's architectures name a causal-LM head (``...ForCausalLM``/``...LMHeadModel``)."""
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def _is_image_config(config) -> bool:
    """True when the checkpoint's architectures name an image-classification head (ViT, DeiT, …)."""
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith(("ForImageClassification", "ForImageClassificationWithTeacher")) for a in archs)


def _load_pretrained(name_or_path: str, kind: str | None, **kw) -> tuple[torch.nn.Module, object, bool]:
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if kind not in (None, "classifier", "causal-lm", "image-classifier"):
        raise ValueError(f"kind must be None, 'classifier', 'causal-lm' or 'image-classifier', not {kind!r}")
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        local = Path(name_or_path).expanduser()
        hint = (f"the folder {local} has no usable config.json; point to a folder written by save_pretrained"
                if local.exists() else
                f"{name_or_path!r} is neither a demo model ({', '.join(DEMO_MODELS)}), nor a local checkpoint "
                "folder, nor a Hugging Face model id reachable now (hub access is off when HF_HUB_OFFLINE=1; "
                "download it once with hub access, or pass a local folder)")
        raise DemoAssetError(f"Cannot load model {name_or_path!r}: {hint}.") from e
    kw.setdefault("dtype", torch.float32)
    if kind == "image-classifier" or (kind is None and _is_image_config(config)):
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        return (AutoModelForImageClassification.from_pretrained(name_or_path, **kw),
                AutoImageProcessor.from_pretrained(name_or_path), False)
    causal = kind == "causal-lm" or (kind is None and _is_causal_config(config))
    tok = AutoTokenizer.from_pretrained(name_or_path)
    auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    model = auto.from_pretrained(name_or_path, **kw)
    return model, tok, causal


def _set_labels(model: torch.nn.Module, labels: list[str] | None) -> None:
    """Set ``config.id2label``: to ``labels`` when given, else replace transformers' placeholders
    (``LABEL_0``) by ``class 0``, ...; real names stored in the checkpoint are kept."""
    cfg = model.config
    n = cfg.num_labels
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"labels has {len(labels)} names but the model has {n} classes")
        names = [str(x) for x in labels]
    else:
        current = {int(k): str(v) for k, v in (cfg.id2label or {}).items()}
        names = [current.get(i, f"LABEL_{i}") for i in range(n)]
        names = [f"class {i}" if v == f"LABEL_{i}" else v for i, v in enumerate(names)]
    cfg.id2label = dict(enumerate(names))
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}


def load_model(
    name_or_path: str, *, kind: str | None = None, labels: list[str] | None = None, **kw
) -> tuple[torch.nn.Module, object]:
    """Load ``(model, tokenizer)``: a demo model by name or any checkpoint (see module doc).

    ``name_or_path``: ``"sentiment"``, ``"nli"``, ``"decoder"``, ``"digits-vit"`` (returns ``(model, image
    processor)``), a Hugging Face model id or a local checkpoint folder.  ``kind``: ``"classifier"`` /
    ``"causal-lm"`` / ``"image-classifier"`` to force the head for ids and folders (default: from the config;
    image classifiers come with their image processor instead of a tokenizer).  ``labels``: class names for a
    classifier checkpoint whose config only has placeholders
    (e.g. ``load_model("textattack/bert-base-uncased-SST-2", labels=["negative", "positive"])``).
    Extra keyword arguments go to ``from_pretrained`` (ids and folders only).
    The model is returned in ``eval()`` mode and fp32.  Raises ``DemoAssetError`` with the fix when demo assets
    are missing (``make assets``) or the id / folder cannot be loaded offline.
    """
    if name_or_path in DEMO_MODELS:
        if kw or kind is not None or labels is not None:
            raise TypeError(f"demo model {name_or_path!r} takes no loading options")
        loader = {"decoder": _load_decoder, "digits-vit": _load_digits_vit}.get(name_or_path)
        model, tok = loader() if loader else _load_demo_classifier(name_or_path)
        model.config._name_or_path = f"attattr-demo/{name_or_path}"
    else:
        model, tok, causal = _load_pretrained(name_or_path, kind, **kw)
        if not causal:
            _set_labels(model, labels)
        elif labels is not None:
            raise ValueError("labels only applies to classifiers, not to causal language models")
    model.float().eval()
    return model, tok
