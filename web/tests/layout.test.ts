import { describe, expect, it } from "vitest";
import { aspectOf, estimateHeight, geometryFor, layoutSection, offsets, sectionAt, thumbSize, visibleRange } from "../src/lib/layout";

describe("timeline layout", () => {
  const g = geometryFor(1200);

  it("targets ~110 px rows on a phone and ~220 px on a desktop", () => {
    expect(geometryFor(375).rowHeight).toBe(110);
    expect(geometryFor(1400).rowHeight).toBe(220);
  });

  it("lays a month out by day, rows within the width, days stacked without overlap", () => {
    const items = [
      ...Array.from({ length: 7 }, () => ({ aspect: 1.5, day: "2019-07-02" })),
      ...Array.from({ length: 3 }, () => ({ aspect: 0.75, day: "2019-07-01" })),
    ];
    const l = layoutSection(items, g);
    expect(l.days.map((d) => d.key)).toEqual(["2019-07-02", "2019-07-01"]);
    expect(l.days[0].tiles).toHaveLength(7);
    expect(l.days[1].tiles.map((t) => t.index)).toEqual([7, 8, 9]);
    for (const d of l.days) for (const t of d.tiles) expect(t.left + t.width).toBeLessThanOrEqual(g.width + 0.5);
    expect(l.days[1].top).toBeGreaterThanOrEqual(l.days[0].top + l.days[0].height);
    expect(l.height).toBeGreaterThan(l.days[1].top + l.days[1].height - 1);
    // rows keep the aspect ratio of each photo
    const t0 = l.days[0].tiles[0];
    expect(t0.width / t0.height).toBeCloseTo(1.5, 1);
  });

  it("estimates a month's height from its count, growing with it", () => {
    const small = estimateHeight(10, g);
    const big = estimateHeight(1000, g);
    expect(small).toBeGreaterThan(g.monthHeader);
    expect(big).toBeGreaterThan(small * 20);
    // within a factor of two of the real layout for typical photos
    const items = Array.from({ length: 300 }, (_, i) => ({ aspect: i % 3 ? 1.33 : 0.75, day: `2019-07-${String(1 + Math.floor(i / 12)).padStart(2, "0")}` }));
    const real = layoutSection(items, g).height;
    const est = estimateHeight(300, g);
    expect(est / real).toBeGreaterThan(0.5);
    expect(est / real).toBeLessThan(2);
  });

  it("finds sections by offset with a binary search", () => {
    const offs = offsets([100, 200, 50]);
    expect(offs).toEqual([0, 100, 300, 350]);
    expect(sectionAt(offs, 0)).toBe(0);
    expect(sectionAt(offs, 99)).toBe(0);
    expect(sectionAt(offs, 100)).toBe(1);
    expect(sectionAt(offs, 349)).toBe(2);
    expect(sectionAt(offs, 10_000)).toBe(2);
    expect(visibleRange(offs, 150, 320)).toEqual([1, 2]);
  });

  it("handles a million-photo timeline of months quickly", () => {
    const heights = Array.from({ length: 12 * 40 }, (_, i) => estimateHeight(2000 + (i % 7) * 10, g));
    const offs = offsets(heights);
    const t0 = performance.now();
    for (let y = 0; y < offs[offs.length - 1]; y += 997) sectionAt(offs, y);
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it("sanitises aspect ratios from bad metadata", () => {
    expect(aspectOf(0, 100)).toBe(1);
    expect(aspectOf(null, null)).toBe(1);
    expect(aspectOf(100000, 10)).toBe(4);
    expect(aspectOf(4000, 3000)).toBeCloseTo(1.333, 2);
  });

  it("picks the smallest thumbnail sharp at the pixel ratio", () => {
    expect(thumbSize(120, 120, 2)).toBe("tile_500");
    expect(thumbSize(110, 110, 1)).toBe("tile_224");
    expect(thumbSize(220, 220, 3)).toBe("fit_720");
    expect(thumbSize(293, 220, 1)).toBe("fit_480"); // not square: tiles are square crops
    expect(thumbSize(165, 110, 1.75)).toBe("fit_480"); // a phone's grid row
    expect(thumbSize(165, 110, 3)).toBe("fit_720");
    expect(thumbSize(293, 220, 3)).toBe("fit_1280");
    expect(thumbSize(700, 500, 3)).toBe("fit_1920");
  });
});
