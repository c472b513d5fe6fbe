import { describe, expect, it } from "vitest";
import { fitImage, imageInfo, overlayAlpha, patchAt, patchCentre, patchName, patchValues, tokenPatch } from "./image";
import { imagePayload, u8 } from "./testing";

describe("image payload", () => {
  it("decodes the uint8 [h, w, 3] buffer to RGBA and keeps the grid", () => {
    const info = imageInfo(imagePayload(4, 2, 2, 2))!;
    expect([info.w, info.h, info.rows, info.cols, info.first]).toEqual([4, 2, 2, 2, 1]);
    expect(Array.from(info.rgba.slice(0, 8))).toEqual([0, 0, 0, 255, 85, 0, 0, 255]);
    expect(Array.from(info.rgba.slice(12, 16))).toEqual([255, 0, 0, 255]);
  });

  it("refuses malformed payloads (wrong dtype, size, grid) instead of drawing garbage", () => {
    expect(imageInfo(null)).toBeNull();
    expect(imageInfo({ ...imagePayload(2, 2, 1, 1), pixels: u8([1, 2, 3], [1, 1, 3]), grid: [0, 1] })).toBeNull();
    expect(imageInfo({ ...imagePayload(2, 2, 1, 1), pixels: u8([1, 2, 3], [2, 2, 3]) })).toBeNull();
    expect(imageInfo({ ...imagePayload(2, 2, 1, 1), pixels: { dtype: "float32", shape: [2, 2, 3], view: new DataView(new ArrayBuffer(48)) } })).toBeNull();
  });

  it("maps tokens to patches row-major from first_patch ([CLS], [DIST] are not patches)", () => {
    const info = imageInfo(imagePayload(8, 8, 2, 3, 2))!; // tokens: [CLS] [DIST] (0,0) (0,1) (0,2) (1,0) (1,1) (1,2)
    expect([0, 1, 2, 4, 5, 7, 8].map((t) => tokenPatch(info, t))).toEqual([-1, -1, 0, 2, 3, 5, -1]);
    expect(patchName(info, 4)).toBe("(1,1)");
    const row = Float32Array.from([9, 9, 0, 1, 2, 3, 4, 5]);
    expect(Array.from(patchValues(row, info)!)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(patchValues(row.subarray(0, 7), info)).toBeNull();
  });

  it("finds the patch under a point and the patch centres in the drawn box", () => {
    const info = imageInfo(imagePayload(4, 2, 2, 4))!;
    const box = fitImage(info, 200, 200, 10); // aspect 2:1 -> 180 x 90 at (10, 10)
    expect(box).toEqual({ x0: 10, y0: 10, width: 180, height: 90 });
    expect(patchAt(box, info, 11, 11)).toBe(0);
    expect(patchAt(box, info, 189, 99)).toBe(7);
    expect(patchAt(box, info, 100, 56)).toBe(6);
    expect(patchAt(box, info, 5, 50)).toBe(-1);
    expect(patchAt(box, info, 190, 50)).toBe(-1);
    expect(patchCentre(box, info, 5)).toEqual([10 + 45 * 1.5, 10 + 45 * 1.5]);
  });

  it("overlay opacity grows with the magnitude, and NaN draws faint", () => {
    expect(overlayAlpha(0)).toBeCloseTo(0.1);
    expect(overlayAlpha(-1)).toBeCloseTo(0.7);
    expect(overlayAlpha(0.5)).toBeCloseTo(overlayAlpha(-0.5));
    expect(overlayAlpha(NaN)).toBeCloseTo(0.1);
  });
});
