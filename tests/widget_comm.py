"""Test helpers for the widget tests: a recording comm (no kernel, no browser) and message accessors."""
from __future__ import annotations

import comm
import numpy as np
from comm.base_comm import BaseComm


class RecordingComm(BaseComm):
    def __init__(self, **kw):
        self.log: list[tuple[str, dict, list[bytes]]] = []
        super().__init__(**kw)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        self.log.append((msg_type, data or {}, [bytes(b) for b in (buffers or [])]))


def install(monkeypatch):
    monkeypatch.setattr(comm, "create_comm", lambda **kw: RecordingComm(**kw))


def open_state(w) -> tuple[dict, dict[tuple, bytes]]:
    kind, data, bufs = w.comm.log[0]
    assert kind == "comm_open"
    paths = {tuple(p): b for p, b in zip(data.get("buffer_paths", []), bufs)}
    return data["state"], paths


def updates(w) -> list[tuple[dict, dict[tuple, bytes]]]:
    out = []
    for kind, data, bufs in w.comm.log:
        if kind == "comm_msg" and data.get("method") == "update":
            out.append((data["state"], {tuple(p): b for p, b in zip(data.get("buffer_paths", []), bufs)}))
    return out


def customs(w) -> list[tuple[dict, list[bytes]]]:
    return [(data["content"], bufs) for kind, data, bufs in w.comm.log
            if kind == "comm_msg" and data.get("method") == "custom"]


def decode(header: dict, buf: bytes) -> np.ndarray:
    return np.frombuffer(buf, dtype=np.dtype(header["dtype"]).newbyteorder("<")).reshape(header["shape"])


def from_front_end(w, state: dict) -> None:
    """Simulate the browser's model.set(...) + save_changes()."""
    w._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def command_from_front_end(w, name: str, msg: dict, buffers: list | None = None) -> tuple[dict, list[bytes]]:
    """Simulate the browser's ``experimental.invoke(name, msg, {buffers})``: anywidget's command message, as the
    comm delivers it; returns the kernel's response and its buffers."""
    rid = f"test-{len(w.comm.log)}"
    content = {"id": rid, "kind": "anywidget-command", "name": name, "msg": msg}
    w._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                   "buffers": [memoryview(b) for b in buffers or []]})
    answers = [(c, b) for c, b in customs(w) if c.get("id") == rid]
    assert len(answers) == 1 and answers[0][0]["kind"] == "anywidget-command-response", answers
    return answers[0][0]["response"], answers[0][1]


def merged_state(w) -> dict:
    """The widget's state as the front end would hold it after all messages (buffers kept as bytes)."""
    state, paths = open_state(w)
    state = dict(state)

    def put(st, paths_):
        for path, b in paths_.items():
            cur = st
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = b

    put(state, paths)
    for st, p in updates(w):
        st = dict(st)
        put(st, p)
        state.update(st)
    return state
