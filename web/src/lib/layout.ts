/**
 * Layout maths of the virtual timeline. Every month is a section whose height is known before
 * its photos arrive (estimated from the count), so the scroll height and the scrubber are right
 * for the whole library at once; when the photos arrive the month is laid out exactly (Flickr's
 * justified-layout per day) and the estimate is replaced.
 */
import justifiedLayout from "justified-layout";

export interface Geometry {
  width: number;
  rowHeight: number;
  gap: number;
  monthHeader: number;
  dayHeader: number;
}

export interface Tile {
  index: number;
  top: number;
  left: number;
  width: number;
  height: number;
}

export interface DayBlock {
  key: string;
  top: number;
  height: number;
  tiles: Tile[];
}

export interface SectionLayout {
  height: number;
  days: DayBlock[];
}

/** Target row height: ~110 px on a phone, ~220 px on a desktop (WEB.md), smooth in between. */
export function geometryFor(width: number): Geometry {
  const rowHeight = width < 500 ? 110 : width < 900 ? 160 : width < 2400 ? 220 : 280;
  return { width, rowHeight, gap: 4, monthHeader: 56, dayHeader: 36 };
}

/** Estimated height of a month of `count` photos before its photos (and aspect ratios) arrive. */
export function estimateHeight(count: number, g: Geometry, aspect = 1.45): number {
  if (count <= 0) return g.monthHeader;
  const perRow = Math.max(1, Math.floor((g.width + g.gap) / (g.rowHeight * aspect + g.gap)));
  const rows = Math.ceil(count / perRow);
  // a month spans a few days on average, each with its own header and a short last row
  const days = Math.min(count, Math.max(1, Math.round(count / 12)));
  return g.monthHeader + rows * (g.rowHeight + g.gap) + days * (g.dayHeader + g.rowHeight * 0.3);
}

/** Aspect ratio of a photo, sane for broken metadata (0, missing, absurd panoramas). */
export function aspectOf(width?: number | null, height?: number | null): number {
  if (!width || !height || width <= 0 || height <= 0) return 1;
  return Math.min(4, Math.max(0.25, width / height));
}

/** Lays out one month's photos, grouped by day key (photos must come in display order). */
export function layoutSection(items: { aspect: number; day: string }[], g: Geometry): SectionLayout {
  const days: DayBlock[] = [];
  let top = g.monthHeader;
  let i = 0;
  while (i < items.length) {
    const day = items[i].day;
    let j = i;
    while (j < items.length && items[j].day === day) j++;
    const aspects = items.slice(i, j).map((p) => p.aspect);
    const res = justifiedLayout(aspects, {
      containerWidth: g.width,
      containerPadding: 0,
      boxSpacing: g.gap,
      targetRowHeight: g.rowHeight,
      targetRowHeightTolerance: 0.25,
      showWidows: true,
      widowLayoutStyle: "left",
    });
    const tiles = res.boxes.map((b, k) => ({
      index: i + k,
      top: b.top,
      left: b.left,
      width: b.width,
      height: b.height,
    }));
    const height = g.dayHeader + res.containerHeight;
    days.push({ key: day, top, height, tiles });
    top += height + g.gap;
    i = j;
  }
  return { height: top, days };
}

/** Offsets (prefix sums) of sections of the given heights; the last entry is the total height. */
export function offsets(heights: number[]): number[] {
  const out = new Array<number>(heights.length + 1);
  out[0] = 0;
  for (let i = 0; i < heights.length; i++) out[i + 1] = out[i] + heights[i];
  return out;
}

/** Index of the section containing the y coordinate (binary search over the offsets). */
export function sectionAt(offs: number[], y: number): number {
  let lo = 0;
  let hi = offs.length - 2;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offs[mid] <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Sections intersecting [top, bottom] (inclusive range of indices). */
export function visibleRange(offs: number[], top: number, bottom: number): [number, number] {
  if (offs.length < 2) return [0, -1];
  return [Math.max(0, sectionAt(offs, top)), Math.max(0, sectionAt(offs, bottom))];
}

export type ThumbSize = "tile_224" | "tile_500" | "fit_480" | "fit_720" | "fit_1280" | "fit_1920";

/**
 * The smallest thumbnail that is sharp for a box of cssW × cssH at the device pixel ratio.
 * Tiles are square crops, so they only serve boxes that are nearly square.
 */
export function thumbSize(cssW: number, cssH: number, dpr: number): ThumbSize {
  const need = Math.max(cssW, cssH) * Math.max(1, dpr);
  const ratio = cssW / Math.max(1, cssH);
  if (ratio > 0.8 && ratio < 1.25) {
    if (need <= 224) return "tile_224";
    if (need <= 500) return "tile_500";
  }
  if (need <= 480) return "fit_480"; // a grid row on a phone or a 1x screen: half fit_720's bytes
  if (need <= 720) return "fit_720";
  if (need <= 1280) return "fit_1280";
  return "fit_1920";
}
