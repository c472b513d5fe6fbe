import { describe, expect, it } from "vitest";
import { DARK, LIGHT, colorOf, diverging, formatValue, lutIndex, makeLUT, makeTheme, niceTicks, parseColor, positiveScale, sequential, signedScale } from "./color";
import { legendTicks } from "./legend";

describe("diverging scale", () => {
  it("is the background at 0 and red / blue at the ends (light and dark)", () => {
    for (const th of [LIGHT, DARK]) {
      expect(diverging(0, th).map(Math.round)).toEqual(th.bg);
      const [r1, , b1] = diverging(1, th);
      const [r0, , b0] = diverging(-1, th);
      expect(r1).toBeGreaterThan(b1);
      expect(b0).toBeGreaterThan(r0);
    }
  });
  it("clamps and treats non-finite as 0", () => {
    expect(diverging(5, LIGHT)).toEqual(diverging(1, LIGHT));
    expect(diverging(NaN, LIGHT).map(Math.round)).toEqual(LIGHT.bg);
    expect(sequential(0, LIGHT).map(Math.round)).toEqual(LIGHT.bg);
  });
  it("LUT centre is the background, ends saturated", () => {
    const lut = makeLUT("diverging", LIGHT);
    expect(lut.length).toBe(256);
    const rgba = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24];
    expect(rgba(lut[128]).slice(0, 3).every((c) => c > 240)).toBe(true);
    expect(rgba(lut[255])[3]).toBe(255);
    expect(rgba(lut[255])[0]).toBeGreaterThan(rgba(lut[255])[2]);
  });
});

describe("domains and ticks", () => {
  it("signed scale is symmetric around 0, ignores NaN", () => {
    expect(signedScale([0.2, -0.5, NaN, 0.1])).toEqual({ kind: "diverging", lo: -0.5, hi: 0.5 });
    expect(signedScale([0, 0])).toEqual({ kind: "diverging", lo: -1, hi: 1 });
    expect(positiveScale([0.1, 0.7])).toEqual({ kind: "sequential", lo: 0, hi: 0.7 });
  });
  it("lutIndex maps lo/0/hi to 0/128/255", () => {
    const s = signedScale([-2, 2]);
    expect(lutIndex(-2, s)).toBe(0);
    expect(lutIndex(0, s)).toBe(128);
    expect(lutIndex(2, s)).toBe(255);
    expect(lutIndex(99, s)).toBe(255);
  });
  it("ticks are nice and include 0 for signed domains", () => {
    expect(niceTicks(-1, 1, 5)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(niceTicks(-0.037, 0.037, 5)).toContain(0);
    expect(niceTicks(0, 0.73, 5)).toEqual([0, 0.2, 0.4, 0.6]);
    const t = legendTicks({ kind: "diverging", lo: -3.2, hi: 3.2 });
    expect(t.every((v) => v >= -3.2 && v <= 3.2)).toBe(true);
    expect(t).toContain(0);
  });
  it("colorOf agrees with the scale ends", () => {
    const s = signedScale([-1, 1]);
    expect(colorOf(1, s, LIGHT)).toEqual(diverging(1, LIGHT));
    expect(colorOf(0, s, LIGHT).map(Math.round)).toEqual(LIGHT.bg);
  });
});

describe("theme + formatting", () => {
  it("parses CSS colours and detects dark backgrounds", () => {
    expect(parseColor("#fff")).toEqual([255, 255, 255]);
    expect(parseColor("rgb(30, 30, 30)")).toEqual([30, 30, 30]);
    expect(parseColor("rgba(0, 0, 0, 0)")).toBeNull();
    expect(makeTheme([17, 17, 17], null).dark).toBe(true);
    expect(makeTheme(null, null).dark).toBe(false);
  });
  it("formats values compactly with a real minus sign", () => {
    expect(formatValue(0.123456)).toBe("0.123");
    expect(formatValue(-0.5)).toBe("−0.5");
    expect(formatValue(0.00001234)).toBe("1.23e-5");
    expect(formatValue(NaN)).toBe("–");
    expect(formatValue(0)).toBe("0");
  });
});

describe("√ contrast", () => {
  it("is a signed power transform; g = 1 is the identity", async () => {
    const { gammaArray, gammaScale, gammaValue } = await import("./color");
    expect(gammaValue(-4, 0.5)).toBe(-2);
    expect(gammaValue(3, 1)).toBe(3);
    const a = Float32Array.from([1, -0.25]);
    expect(gammaArray(a, 1)).toBe(a);
    expect(Array.from(gammaArray(a, 0.5))).toEqual([1, -0.5]);
    expect(gammaScale({ kind: "diverging", lo: -9, hi: 9 }, 0.5)).toEqual({ kind: "diverging", lo: -3, hi: 3 });
  });
});
