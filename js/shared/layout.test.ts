import { describe, expect, it } from "vitest";
import { centerWindow, clampWindow, gridLayout, heatCellRect, hitGrid, hitHeat, searchTokens, zoomLevels } from "./layout";

describe("grid hit testing", () => {
  const g = gridLayout(12, 12, 400, { labelW: 30, labelH: 20, min: 10, max: 30, gap: 2 });
  it("lays out cells within the width", () => {
    expect(g.cell).toBeGreaterThanOrEqual(10);
    expect(g.width).toBeLessThanOrEqual(400);
  });
  it("maps pixels to (layer, head); gaps and labels miss", () => {
    const step = g.cell + g.gap;
    expect(hitGrid(g, g.x0 + 1, g.y0 + 1)).toEqual({ layer: 0, head: 0 });
    expect(hitGrid(g, g.x0 + 3 * step + 1, g.y0 + 5 * step + g.cell - 1)).toEqual({ layer: 5, head: 3 });
    expect(hitGrid(g, g.x0 + g.cell + 0.5, g.y0 + 1)).toBeNull(); // in the gap
    expect(hitGrid(g, 5, 5)).toBeNull(); // labels
    expect(hitGrid(g, g.x0 + 12 * step + 1, g.y0)).toBeNull(); // past the last head
  });
});

describe("heatmap windows", () => {
  it("clamps windows to the matrix", () => {
    expect(clampWindow({ r0: -5, c0: 300, size: 64 }, 256)).toEqual({ r0: 0, c0: 192, size: 64 });
    expect(clampWindow({ r0: 3, c0: 3, size: 500 }, 10)).toEqual({ r0: 0, c0: 0, size: 10 });
    expect(centerWindow(100, 5, 32, 256)).toEqual({ r0: 84, c0: 0, size: 32 });
  });
  it("maps pixels to (row, col) inside a zoomed window", () => {
    const h = { x0: 50, y0: 40, side: 320, win: { r0: 100, c0: 20, size: 32 } };
    expect(hitHeat(h, 50, 40)).toEqual({ row: 100, col: 20 });
    expect(hitHeat(h, 50 + 319, 40 + 319)).toEqual({ row: 131, col: 51 });
    expect(hitHeat(h, 49, 100)).toBeNull();
    expect(hitHeat(h, 50 + 320, 100)).toBeNull();
    const [x, y, w] = heatCellRect(h, 101, 22);
    expect([x, y, w]).toEqual([50 + 20, 40 + 10, 10]);
    expect(hitHeat(h, x + w / 2, y + w / 2)).toEqual({ row: 101, col: 22 });
  });
  it("offers zoom levels below n", () => {
    expect(zoomLevels(300)).toEqual([300, 128, 64, 32, 16]);
    expect(zoomLevels(20)).toEqual([20, 16]);
  });
});

describe("token search", () => {
  it("matches case-insensitively, across sub-word markers", () => {
    const toks = ["[CLS]", "The", "Ġmovie", "##ing", "movies", "[SEP]"];
    expect(searchTokens(toks, "movie")).toEqual([2, 4]);
    expect(searchTokens(toks, "ING")).toEqual([3]);
    expect(searchTokens(toks, "  ")).toEqual([]);
  });
});

describe("rectangular windows (rows ≠ cols: cross-attention)", () => {
  it("clamps each axis to its own length and hit-tests only the shown cells", () => {
    expect(clampWindow({ r0: 5, c0: 9, size: 4 }, 3, 10)).toEqual({ r0: 0, c0: 6, size: 4 }); // 3 rows: all shown
    expect(clampWindow({ r0: 0, c0: 0, size: 99 }, 3, 10).size).toBe(10);
    const h = { x0: 10, y0: 20, side: 100, win: { r0: 0, c0: 0, size: 10 }, rows: 3, cols: 10 };
    expect(hitHeat(h, 10 + 95, 20 + 25)).toEqual({ row: 2, col: 9 });
    expect(hitHeat(h, 10 + 5, 20 + 35)).toBeNull(); // below the 3 rows
    expect(hitHeat({ ...h, rows: undefined, cols: undefined }, 10 + 5, 20 + 35)).toEqual({ row: 3, col: 0 }); // square default
  });
});
