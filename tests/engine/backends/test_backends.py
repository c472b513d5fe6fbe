"""Ray backend (issue 11): every dataset-level entry point gives the in-process numbers, in order, on a local Ray
with 2 CPU workers; progress, cancel (reaching running tasks), a killed worker, model loaders, the CLI.

One local Ray for the whole module (started in the fixture, shut down in its teardown); tiny models, ~20
examples, so the module stays well under two minutes on a 2-core machine.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading

import numpy as np
import pytest
from conftest import PAIRS, SINGLES, make_strong_bert

from attattr_widgets.engine.attribution.api import iter_attributions_on
from attattr_widgets.batch import RayBackend
from attattr_widgets.engine.errors import AttAttrError, AttributionCancelled, TargetError
from attattr_widgets.engine.analysis.importance import head_importance, iter_head_importance
from attattr_widgets.engine.analysis.pruning import compare_pruning, effectiveness, pruning_curve
from attattr_widgets.engine.analysis.triggers import evaluate_triggers, mine_triggers

EXAMPLES = (SINGLES + PAIRS) * 3  # 24 labelled examples, singles and pairs


@pytest.fixture(scope="module")
def bert():
    return make_strong_bert()


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(AttAttrError, match=r"attattr-widgets\[distributed\]"):
        RayBackend()


def test_bad_backend_and_arguments_are_refused(bert, tok):
    with pytest.raises(AttAttrError, match="backend must be None"):
        head_importance(bert, tok, EXAMPLES[:2], backend="ray")
    with pytest.raises(AttAttrError, match="num_workers"):
        RayBackend(num_workers=0)
    with pytest.raises(AttAttrError, match="model_loader"):
        RayBackend(model_loader=42)


# ------------------------------------------------------------------------------------------------------------
# on a local Ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # 4 logical CPUs: the 2-worker backend plus a 1-worker loader backend fit side by side (the machine has 2)
    for attempt in range(2):  # Ray's local start has a fixed 30 s window a loaded machine can miss
        try:
            ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
            break
        except Exception:  # noqa: BLE001
            ray.shutdown()
            if attempt:
                raise
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def backend(ray_cluster):
    b = RayBackend(num_workers=2, shard_size=3)
    yield b
    b.shutdown()


@pytest.mark.distributed
@pytest.mark.parametrize("method", ["attattr", "attention", "taylor", "taylor-authors", "accuracy"])
def test_head_importance_equals_in_process(method, backend, bert, tok):
    ref = list(iter_head_importance(bert, tok, EXAMPLES, method=method))
    seen = []
    got = list(iter_head_importance(bert, tok, EXAMPLES, method=method, backend=backend,
                                    progress=lambda d, t: seen.append((d, t))))
    # "attattr" runs the same unpadded examples: bit for bit; the others pad length-sorted batches that differ
    # between one shard and eight, which moves fp32 results in the 8th digit
    tol = dict(rtol=0, atol=0) if method == "attattr" else dict(rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[-1].estimate, ref[-1].estimate, **tol)
    # the same per-example scores, in the same example order
    idx_ref = np.concatenate([s.example_index for s in ref])
    idx_got = np.concatenate([s.example_index for s in got])
    if method in ("attattr", "accuracy"):
        assert idx_got.tolist() == idx_ref.tolist()
    per_ref = np.zeros((len(EXAMPLES), *ref[-1].estimate.shape))
    per_got = per_ref.copy()
    for s in ref:
        per_ref[s.example_index] = s.example_scores
    for s in got:
        per_got[s.example_index] = s.example_scores
    np.testing.assert_allclose(per_got, per_ref, **tol)
    assert backend.last_run["shards"] == 8 and backend.last_run["completed"]
    total = len(EXAMPLES) * (1 + 2 * 4 if method == "accuracy" else 1)  # accuracy: 1 + L·H masks per example
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.distributed
def test_pruning_and_effectiveness_equal_in_process(backend, bert, tok):
    imps = {"attention": head_importance(bert, tok, EXAMPLES, method="attention"),
            "random": head_importance(bert, tok, EXAMPLES, method="random")}
    ref = compare_pruning(bert, tok, EXAMPLES, imps, order=("least-first", "largest-first"))
    got = compare_pruning(bert, tok, EXAMPLES, imps, order=("least-first", "largest-first"), backend=backend)
    assert [c.method for c in got] == [c.method for c in ref]
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a.accuracy, b.accuracy)
        np.testing.assert_array_equal(a.pruned, b.pruned)
    one = pruning_curve(bert, tok, EXAMPLES, imps["attention"], backend=backend)
    np.testing.assert_array_equal(one.accuracy, ref[0].accuracy)
    e_ref = effectiveness(bert, tok, EXAMPLES[:12], steps=4)
    e_got = effectiveness(bert, tok, EXAMPLES[:12], steps=4, backend=backend)
    assert e_got.full_accuracy == e_ref.full_accuracy
    for c in e_ref.accuracy:
        for o in e_ref.accuracy[c]:
            np.testing.assert_array_equal(e_got.accuracy[c][o], e_ref.accuracy[c][o])


@pytest.mark.distributed
def test_triggers_equal_in_process(backend, bert, tok):
    ref = mine_triggers(bert, tok, EXAMPLES, min_score=-1.0, min_tokens=5)
    got = mine_triggers(bert, tok, EXAMPLES, min_score=-1.0, min_tokens=5, backend=backend)
    assert [p.example_index for p in got] == [p.example_index for p in ref]
    assert [p.tokens for p in got] == [p.tokens for p in ref]
    np.testing.assert_allclose([p.score for p in got], [p.score for p in ref], rtol=1e-6)
    r_ref = evaluate_triggers(bert, tok, EXAMPLES, ref[:3])
    r_got = evaluate_triggers(bert, tok, EXAMPLES, ref[:3], backend=backend)
    assert [r.to_dict() for r in r_got] == [r.to_dict() for r in r_ref]


@pytest.mark.distributed
def test_iter_attributions_in_order(backend, bert, tok):
    from attattr_widgets.engine.attribution.api import iter_attributions

    ref = list(iter_attributions(bert, tok, EXAMPLES[:7], target="pred", steps=4))
    got = list(iter_attributions(bert, tok, EXAMPLES[:7], target="pred", steps=4, backend=backend))
    assert [a.text for a in got] == [a.text for a in ref]
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-7)
    with pytest.raises(TargetError):
        next(iter_attributions_on(backend, bert, tok, [{"text": "no label"}]))


@pytest.mark.distributed
def test_changed_weights_are_shipped_again(backend, tok):
    import torch

    m = make_strong_bert()
    a = head_importance(m, tok, EXAMPLES[:6], method="attention", backend=backend)
    with torch.no_grad():
        m.bert.encoder.layer[0].attention.self.query.weight.mul_(3.0)  # an in-place update, as an optimiser does
    b = head_importance(m, tok, EXAMPLES[:6], method="attention", backend=backend)
    np.testing.assert_allclose(b, head_importance(m, tok, EXAMPLES[:6], method="attention"), rtol=1e-5)
    assert not np.allclose(a, b)


@pytest.mark.distributed
def test_cancel_reaches_running_tasks(backend, bert, tok):
    b = backend
    b.shard_size = 12  # two shards, one per worker

    def until_cancelled(model, tokenizer, items, *, offset, progress, cancel):
        """A shard that only ends when the cancel reaches its worker (or fails the test after a minute): the
        race-free stand-in for a long computation, whatever the machine's speed."""
        import time

        from attattr_widgets.engine.errors import AttributionCancelled

        progress(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cancel.is_set():
                raise AttributionCancelled("cancelled on the worker")
            time.sleep(0.01)
        return "the cancel never reached this worker"

    try:
        b.worker_pids()
        cancel = threading.Event()

        def stop_when_both_busy(done, total):  # progress only comes while the shards are computing
            if sum(s["shard"] is not None for s in b.status()) == 2:
                cancel.set()

        with pytest.raises(AttributionCancelled):
            list(b.map(until_cancelled, bert, tok, EXAMPLES, progress=stop_when_both_busy, cancel=cancel))
        assert b.last_run["cancelled_tasks"] == 2 and not b.last_run["completed"]
        # the workers are free again: the next run completes, with the in-process numbers
        np.testing.assert_allclose(head_importance(bert, tok, EXAMPLES[:4], method="attention", backend=b),
                                   head_importance(bert, tok, EXAMPLES[:4], method="attention"), rtol=1e-5)
    finally:
        b.shard_size = 3


@pytest.mark.distributed
def test_killed_worker_is_retried_on_another(backend, bert, tok):
    backend.worker_pids()
    killed = {}

    def kill_one(done, total):
        if killed:
            return
        busy = [s for s in backend.status() if s["shard"] is not None and s["pid"]]
        if busy:
            killed.update(busy[0])
            os.kill(busy[0]["pid"], signal.SIGKILL)

    ref = head_importance(bert, tok, EXAMPLES, steps=6)
    got = head_importance(bert, tok, EXAMPLES, steps=6, backend=backend, progress=kill_one)
    np.testing.assert_array_equal(got, ref)  # attattr, unpadded: bit for bit even after the retry
    run = backend.last_run
    assert killed and run["retries"] >= 1 and run["completed"]
    # the shard the worker was running was computed again elsewhere (or, where the kill came in the instant
    # after that shard returned, the worker's next shard was): by another process, never the killed one
    retried = [st for st in run["shard_stats"] if st["attempts"] >= 2]
    assert retried and all(st["pid"] != killed["pid"] for st in retried)


def _tiny_checkpoint(tmp_path, tok):
    path = tmp_path / "tiny"
    make_strong_bert().save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.mark.distributed
def test_model_loader_builds_the_model_on_each_worker(ray_cluster, tmp_path, tok):
    from attattr_widgets.demo import load_model

    path = _tiny_checkpoint(tmp_path, tok)
    model, tok2 = load_model(path)
    ref = head_importance(model, tok2, EXAMPLES[:6], method="taylor")
    b = RayBackend(num_workers=1, model_loader=path)  # a local path: load_model(path) on the worker
    try:
        for loader in (path, functools.partial(load_model, path)):  # and a picklable callable
            b.model_loader = loader
            got = head_importance(model, tok2, EXAMPLES[:6], method="taylor", backend=b)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    finally:
        b.shutdown()


@pytest.mark.distributed
def test_cli_importance_and_triggers_write_typed_results(ray_cluster, backend, tmp_path, tok):
    from attattr_widgets import cli
    from attattr_widgets.demo import load_model
    from attattr_widgets.engine.results import HeadImportance, TriggerPattern, load_result

    path = _tiny_checkpoint(tmp_path, tok)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES[:8]))
    out = tmp_path / "imp.npz"
    assert cli.main(["importance", "--model", path, "--data", str(data), "--method", "attention",
                     "--backend", "ray", "--workers", "1", "--out", str(out)]) == 0
    imp = load_result(out)
    assert isinstance(imp, HeadImportance) and imp.method == "attention" and imp.num_examples == 8
    model, tok2 = load_model(path)
    np.testing.assert_allclose(imp, head_importance(model, tok2, EXAMPLES[:8], method="attention"), rtol=1e-5)
    trig = tmp_path / "trig.npz"
    assert cli.main(["triggers", "--model", path, "--data", str(data), "--min-score", "-1", "--steps", "4",
                     "--out", str(trig)]) == 0
    pats = load_result(trig)
    assert pats and all(isinstance(p, TriggerPattern) for p in pats)
    assert [p.example_index for p in pats] == [
        p.example_index for p in mine_triggers(model, tok2, EXAMPLES[:8], min_score=-1.0, steps=4)]
