import { describe, expect, it } from "vitest";
import { HoverLock, type LockSource } from "./hover-lock";

function make(src: Partial<LockSource> = {}) {
  const s: LockSource = { locked: [], query: -1, n: 5, ...src };
  return { s, hl: new HoverLock(() => s) };
}

describe("HoverLock precedence", () => {
  it("query: hover row > locked row > query trait > default > 0", () => {
    const { s, hl } = make({ defaultQuery: 3 });
    expect(hl.query()).toBe(3); // default
    s.query = 1;
    expect(hl.query()).toBe(1);
    s.locked = [2, 4];
    expect(hl.query()).toBe(2);
    hl.setHover({ row: 4, col: 0 });
    expect(hl.query()).toBe(2); // hover only counts when asked for
    expect(hl.query(true)).toBe(4);
    hl.setHover(null);
    expect(hl.query(true)).toBe(2);
  });

  it("out-of-range values fall back; no tokens gives -1", () => {
    const { s, hl } = make({ query: 9, defaultQuery: 7 });
    expect(hl.query()).toBe(0);
    s.n = 0;
    expect(hl.query()).toBe(-1);
  });

  it("readout shows hover over lock and says when it shows the lock", () => {
    const { s, hl } = make();
    expect(hl.shown()).toBeNull();
    s.locked = [1, 2];
    expect(hl.shown()).toEqual({ cell: { row: 1, col: 2 }, locked: true });
    hl.setHover({ row: 3, col: 3 });
    expect(hl.shown()).toEqual({ cell: { row: 3, col: 3 }, locked: false });
  });

  it("click locks, clicking the locked cell unlocks", () => {
    const { s, hl } = make();
    expect(hl.click({ row: 1, col: 3 })).toEqual({ locked: [1, 3], query: 1 });
    s.locked = [1, 3];
    expect(hl.click({ row: 1, col: 3 })).toEqual({ locked: [] });
    expect(hl.click({ row: 2, col: 3 })).toEqual({ locked: [2, 3], query: 2 });
    expect(HoverLock.query(4)).toEqual({ locked: [], query: 4 });
  });

  it("setHover reports changes only", () => {
    const { hl } = make();
    expect(hl.setHover(null)).toBe(false);
    expect(hl.setHover({ row: 1, col: 1 })).toBe(true);
    expect(hl.setHover({ row: 1, col: 1 })).toBe(false);
    expect(hl.setHover({ row: 1, col: 2 })).toBe(true);
    expect(hl.setHover(null)).toBe(true);
  });

  it("focus and arrow moves start from the lock, else the hovered query on the diagonal, clamped", () => {
    const { s, hl } = make({ query: 2 });
    expect(hl.focus()).toEqual([2, 2]);
    hl.setHover({ row: 4, col: 1 });
    expect(hl.focus()).toEqual([4, 4]);
    hl.setHover(null);
    s.locked = [1, 1];
    expect(hl.move(0, 1)).toEqual({ locked: [1, 2], query: 1 });
    s.locked = [4, 0];
    expect(hl.move(1, -1)).toEqual({ locked: [4, 0], query: 4 });
  });
});
