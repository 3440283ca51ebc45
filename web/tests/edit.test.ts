import { describe, expect, it } from "vitest";
import { fieldErrors, formatOffset, fromInputDate, parseKeywords, parseOffset, sourceOf, toInputDate } from "../src/lib/edit";

describe("UTC offsets typed by people", () => {
  it("reads the usual spellings as minutes east of UTC", () => {
    expect(parseOffset("+02:00")).toBe(120);
    expect(parseOffset("-5")).toBe(-300);
    expect(parseOffset("+0530")).toBe(330);
    expect(parseOffset("5:45")).toBe(345);
    expect(parseOffset("UTC+1")).toBe(60);
    expect(parseOffset("gmt-03:30")).toBe(-210);
    expect(parseOffset("\u221203:00")).toBe(-180); // the typographic minus the panel displays
    expect(parseOffset("Z")).toBe(0);
    expect(parseOffset("UTC")).toBe(0);
    expect(Object.is(parseOffset("-0"), 0)).toBe(true);
  });

  it("treats empty as unknown and refuses what is not an offset", () => {
    expect(parseOffset("  ")).toBeNull();
    for (const bad of ["+15:00", "-14:01", "+02:60", "abc", "2.5", "+1:5", "++2"]) expect(parseOffset(bad)).toBeUndefined();
    expect(parseOffset("+14:00")).toBe(840);
    expect(parseOffset("-12:00")).toBe(-720);
  });

  it("formats minutes back into what it parses", () => {
    expect(formatOffset(120)).toBe("+02:00");
    expect(formatOffset(-210)).toBe("-03:30");
    expect(formatOffset(0)).toBe("+00:00");
    expect(formatOffset(null)).toBe("");
    for (const m of [-720, -210, 0, 345, 840]) expect(parseOffset(formatOffset(m))).toBe(m);
  });
});

describe("dates for datetime-local", () => {
  it("keeps seconds both ways", () => {
    expect(toInputDate("2008-10-22T16:29:49")).toBe("2008-10-22T16:29:49");
    expect(toInputDate("2008-10-22T16:29")).toBe("2008-10-22T16:29:00");
    expect(toInputDate(null)).toBe("");
    expect(fromInputDate("2024-07-05T15:30")).toBe("2024-07-05T15:30:00");
    expect(fromInputDate("2024-07-05T15:30:12")).toBe("2024-07-05T15:30:12");
    expect(fromInputDate("")).toBeNull();
    expect(fromInputDate("5 July")).toBeNull();
  });
});

describe("keywords and sources", () => {
  it("splits on commas, drops empties and repeats in any case", () => {
    expect(parseKeywords(" sea, Beach ,, sea, beach,dog ")).toEqual(["sea", "Beach", "dog"]);
    expect(parseKeywords("")).toEqual([]);
  });

  it("finds the source of a field under the API's key", () => {
    const sources = { taken_at: "exif", lat: "manual", title: "sidecar" };
    expect(sourceOf(sources, "date")).toBe("exif");
    expect(sourceOf(sources, "location")).toBe("manual");
    expect(sourceOf(sources, "title")).toBe("sidecar");
    expect(sourceOf(sources, "rating")).toBeNull();
    expect(sourceOf(null, "title")).toBeNull();
  });
});

describe("API errors per field", () => {
  it("puts a 422's problems under the fields they name", () => {
    const err = { message: "x", details: [
      { field: "body.taken_offset", message: "Input should be less than or equal to 840" },
      { field: "body.title", message: "too long" },
    ] };
    expect(fieldErrors(err, "date")).toEqual({ date: "Input should be less than or equal to 840", title: "too long" });
  });

  it("uses details.field of a 400 and falls back to the field being saved", () => {
    expect(fieldErrors({ message: "bad path", details: { field: "lat" } }, "title")).toEqual({ location: "bad path" });
    expect(fieldErrors({ message: "only users may edit", details: null }, "title")).toEqual({ title: "only users may edit" });
    expect(fieldErrors({ message: "lat and lng together", details: [{ field: "body", message: "lat and lng together" }] }, "location"))
      .toEqual({ location: "lat and lng together" });
  });
});
