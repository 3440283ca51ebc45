import { describe, expect, it } from "vitest";
import { applyCompletion, filterToken, joinQuery, splitChips, tokenAt, tokenize } from "../src/lib/query";

describe("search chips", () => {
  it("cuts filters into chips and keeps free text", () => {
    const { chips, text } = splitChips('beach label:cat country:it "new york"');
    expect(chips.map((c) => [c.key, c.value])).toEqual([["label", "cat"], ["country", "it"]]);
    expect(text).toBe('beach "new york"');
  });

  it("keeps quoted values with spaces in one chip, unquoted", () => {
    const [chip] = splitChips('city:"new york" sunset').chips;
    expect(chip.key).toBe("city");
    expect(chip.value).toBe("new york");
    expect(chip.raw).toBe('city:"new york"');
  });

  it("reads negation, alternatives and ranges", () => {
    const toks = tokenize("-label:cat label:cat|dog iso:100-400 -beach");
    expect(toks[0]).toMatchObject({ kind: "filter", key: "label", value: "cat", negated: true });
    expect(toks[1]).toMatchObject({ kind: "filter", value: "cat|dog", negated: false });
    expect(toks[2]).toMatchObject({ key: "iso", value: "100-400" });
    expect(toks[3]).toMatchObject({ kind: "text", negated: true, raw: "-beach" });
  });

  it("leaves a filter without a value in the text (it is still being typed)", () => {
    const { chips, text } = splitChips("label: beach");
    expect(chips).toHaveLength(0);
    expect(text).toBe("label: beach");
  });

  it("round-trips chips and text into the same query", () => {
    const q = 'label:cat city:"new york" beach -dog';
    const { chips, text } = splitChips(q);
    expect(joinQuery(chips, text)).toBe('label:cat city:"new york" beach -dog');
  });

  it("quotes values with spaces when making a filter", () => {
    expect(filterToken("label", "beach")).toBe("label:beach");
    expect(filterToken("city", "new york")).toBe('city:"new york"');
    expect(filterToken("label", "cat", true)).toBe("-label:cat");
  });

  it("finds the word under the caret, quotes included", () => {
    expect(tokenAt("beach lab", 9)).toEqual({ text: "lab", start: 6, end: 9 });
    expect(tokenAt('city:"new yo', 12).text).toBe('city:"new yo');
    expect(tokenAt("a b", 1).text).toBe("a");
  });

  it("replaces the typed word with a completion and keeps a negation", () => {
    expect(applyCompletion("beach lab", 9, "label:")).toEqual({ text: "beach label:", caret: 12 });
    expect(applyCompletion("-be", 3, "label:beach")).toEqual({ text: "-label:beach ", caret: 13 });
    expect(applyCompletion("ca sunset", 2, 'camera:"Canon EOS 40D"').text).toBe('camera:"Canon EOS 40D" sunset');
  });
});
