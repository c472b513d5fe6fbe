# A small marimo app for the end-to-end suite (tests/e2e/test_hosts.py runs it with `marimo run`): a zero-probe
# explorer (exact zeros, first paint) and a long streaming run with a Stop button.
import marimo

app = marimo.App(width="full")


@app.cell
def _():
    import marimo as mo

    from attattr_widgets.widgets import Explorer
    from tests.e2e.e2e_support import TINY_MODEL_SRC, ZERO_ATTR_SRC

    ns = {}
    exec(TINY_MODEL_SRC + ZERO_ATTR_SRC, ns)  # noqa: S102 - the suite's own constant source
    return Explorer, mo, ns


@app.cell
def _(Explorer, mo, ns):
    zero_view = mo.ui.anywidget(Explorer.from_attribution(ns["zero_attr"](), selected=[0, 0], query=1))
    zero_view
    return


@app.cell
def _(Explorer, mo, ns):
    slow_model, slow_tok = ns["make_tiny"](layers=24, heads=4, hidden=64, seed=1)
    ex = Explorer(slow_model, slow_tok)
    ex.explain(" ".join(["the movie was not very good , but the actors were great and i love this film ."] * 6),
               steps=256)
    run_view = mo.ui.anywidget(ex)
    run_view
    return


if __name__ == "__main__":
    app.run()
