/// <reference types="node" />
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { rankExamples, rankingMethod } from "./heads-view";

// The same cases as tests/widgets/test_widgets_heads.py::test_example_ranking_matches_the_shared_cases.
const cases = JSON.parse(readFileSync(new URL("../../tests/data/top_examples_cases.json", import.meta.url), "utf8")).cases;

describe("example ranking shared with heads.py", () => {
  it("gives the expected indices and method for every shared case", () => {
    expect(cases.length).toBeGreaterThan(4);
    for (const c of cases) {
      const s = Float32Array.from(c.scores.map((x: number | null) => (x === null ? NaN : x))); // float32, as the view gets them
      expect(rankExamples(s, c.k)).toEqual(c.expected);
      expect(rankingMethod(c.method, c.have)).toEqual(c.expected_method);
    }
  });
});
