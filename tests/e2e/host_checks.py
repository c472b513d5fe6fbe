"""The same browser checks in every host (JupyterLab, Notebook 7, marimo): the explorer renders, a run streams its
layers into the grid, a grid click selects a head and the kernel answers with its maps, Stop cancels, and zero is
painted in the widget background (first paint). ``root_js`` is a JS expression ``(i) => root element of the
explorer number i on the page``."""
from __future__ import annotations

import pytest

from .e2e_support import ARTIFACTS, ZERO_PROBE_JS, assert_not_blank, assert_zero_is_background, canvas_stats

GRID_CLICK_JS = """([r, l, h, H]) => { const c = r.querySelector('canvas.aa-grid-canvas'); c.scrollIntoView({block: 'center'});
  const box = c.getBoundingClientRect(); const cell = (c.clientWidth - 36) / H - 2;
  return {x: box.left + 34 + h * (cell + 2) + cell / 2, y: box.top + 18 + l * (cell + 2) + cell / 2}; }"""


class HostExplorer:
    def __init__(self, page, root_js: str, where: str):
        self.page, self.root_js, self.where = page, root_js, where

    def root(self, i):
        return self.page.evaluate_handle(f"(i) => ({self.root_js})(i)", i)

    def wait(self, i, cond, timeout=60):
        from playwright.sync_api import TimeoutError as PWTimeout

        try:
            self.page.wait_for_function(f"(i) => {{ const r = ({self.root_js})(i); return !!r && ({cond}); }}", arg=i,
                                        timeout=timeout * 1000)
        except PWTimeout:
            data = self.page.evaluate(f"(i) => {{ const r = ({self.root_js})(i); return r ? {{...r.dataset}} : null; }}", i)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(ARTIFACTS / f"failure-{self.where}-explorer{i}.png"), full_page=True)
            pytest.fail(f"{self.where}: explorer {i}: waited {timeout}s for `{cond}`; root data = {data}", pytrace=False)

    def data(self, i, key):
        return self.root(i).evaluate(f"r => r.dataset.{key}")

    def zero_is_background(self, i):
        self.wait(i, "r.dataset.state === 'done' && r.dataset.headReady === '0,0' && !!r.dataset.heatBox")
        probe = self.root(i).evaluate(ZERO_PROBE_JS)
        assert_zero_is_background(probe, self.where)
        return probe

    def click_head(self, i, l, h, H):
        pos = self.page.evaluate(GRID_CLICK_JS, [self.root(i), l, h, H])
        self.page.mouse.click(pos["x"], pos["y"])

    def streams_click_and_stop(self, i, H, shot=None):
        """Explorer ``i`` runs a long attribution: layers arrive while running, a click on a finished layer's head
        brings that head's maps from the kernel, Stop ends the run as cancelled with the layers so far."""
        self.wait(i, "r.dataset.state === 'running' && Number(r.dataset.layersDone) >= 2", timeout=90)
        r = self.root(i)
        assert_not_blank(canvas_stats(r.as_element().query_selector("canvas.aa-grid-canvas")), f"{self.where} grid",
                         min_frac=0.01)
        sel = self.data(i, "selected")
        target = (1, 2) if sel != "1,2" else (0, 3)
        self.click_head(i, *target, H)
        want = f"{target[0]},{target[1]}"
        self.wait(i, f"r.dataset.selected === '{want}' && r.dataset.headReady === '{want}'", timeout=30)
        assert_not_blank(canvas_stats(r.as_element().query_selector("canvas[data-map=attention]")),
                         f"{self.where} clicked head's attention map")
        if shot:
            r.as_element().scroll_into_view_if_needed()
            r.as_element().screenshot(path=str(shot))
        r.as_element().query_selector(".attattr-stop").click()
        self.wait(i, "r.dataset.state === 'cancelled'", timeout=60)
        done, total = int(self.data(i, "layersDone")), int(self.data(i, "layersTotal"))
        assert 2 <= done < total, (self.where, done, total)

