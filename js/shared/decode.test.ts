import { describe, expect, it } from "vitest";
import { decodeArray, halfToFloat, toFloat32 } from "./decode";
import { f16, toHalf } from "./testing";

describe("toFloat32", () => {
  const values = [1.5, -2, 0, 3.25, 1e-3, -7];
  const buf = Float32Array.from(values).buffer;

  it("accepts DataView, Uint8Array and ArrayBuffer", () => {
    expect(Array.from(toFloat32(new DataView(buf), "float32"))).toEqual(Array.from(Float32Array.from(values)));
    expect(Array.from(toFloat32(new Uint8Array(buf), "float32"))).toEqual(Array.from(Float32Array.from(values)));
    expect(Array.from(toFloat32(buf, "float32"))).toEqual(Array.from(Float32Array.from(values)));
  });

  it("shares memory when aligned, copies when misaligned", () => {
    const aligned = new DataView(buf, 8, 8);
    const a = toFloat32(aligned, "float32");
    expect(a.buffer).toBe(buf);
    expect(Array.from(a)).toEqual([0, 3.25]);
    const big = new Uint8Array(1 + buf.byteLength);
    big.set(new Uint8Array(buf), 1);
    const mis = new DataView(big.buffer, 1, buf.byteLength);
    const b = toFloat32(mis, "float32");
    expect(b.buffer).not.toBe(big.buffer);
    expect(Array.from(b)).toEqual(Array.from(Float32Array.from(values)));
  });

  it("decodes float16 incl. subnormals, infinities and NaN, also misaligned", () => {
    const halves = [0x3c00, 0xc000, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x0000, 0x8000];
    const u = new Uint8Array(1 + halves.length * 2);
    new Uint8Array(Uint16Array.from(halves).buffer).forEach((b, i) => (u[i + 1] = b));
    const out = toFloat32(new DataView(u.buffer, 1, halves.length * 2), "float16");
    expect(out[0]).toBe(1);
    expect(out[1]).toBe(-2);
    expect(out[2]).toBeCloseTo(5.960464477539063e-8, 15);
    expect(out[3]).toBe(Infinity);
    expect(out[4]).toBe(-Infinity);
    expect(Number.isNaN(out[5])).toBe(true);
    expect(out[6]).toBeCloseTo(0.33325, 4);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });

  it("decodes int32 and uint8 and base64 strings", () => {
    expect(Array.from(toFloat32(new Int32Array([-3, 7]).buffer, "int32"))).toEqual([-3, 7]);
    expect(Array.from(toFloat32(new Uint8Array([0, 255]), "uint8"))).toEqual([0, 255]);
    const b64 = btoa(String.fromCharCode(...new Uint8Array(Float32Array.from([2.5]).buffer)));
    expect(Array.from(toFloat32(b64, "float32"))).toEqual([2.5]);
  });

  it("rejects unknown dtypes and ragged buffers", () => {
    expect(() => toFloat32(new ArrayBuffer(8), "float64")).toThrow(/unsupported dtype/);
    expect(() => toFloat32(new ArrayBuffer(6), "float32")).toThrow(/whole number/);
  });
});

describe("decodeArray", () => {
  it("checks the shape against the buffer", () => {
    const enc = f16([0.5, -0.25, 1, 2, 3, 4], [2, 3]);
    const d = decodeArray(enc)!;
    expect(d.shape).toEqual([2, 3]);
    expect(Array.from(d.data)).toEqual([0.5, -0.25, 1, 2, 3, 4]);
    expect(() => decodeArray({ ...enc, shape: [4, 4] })).toThrow(/needs 16 values/);
  });

  it("takes a custom-message header plus a separate buffer", () => {
    const d = decodeArray({ dtype: "float32", shape: [2] }, new Uint8Array(Float32Array.from([1, 2]).buffer))!;
    expect(Array.from(d.data)).toEqual([1, 2]);
  });

  it("returns null for missing values", () => {
    expect(decodeArray(null)).toBeNull();
    expect(decodeArray({ dtype: "float32", shape: [1] })).toBeNull();
  });

  it("round-trips the test encoder", () => {
    for (const v of [0, 1, -1, 0.1, 65504, 6e-5]) expect(halfToFloat(toHalf(v))).toBeCloseTo(v, 2);
  });
});
