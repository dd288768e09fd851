import { describe, expect, it } from "vitest";
import { MEMBER_READ_ONLY_SCOPE, permissionsFromScope } from "./policy.js";
import { contentDisposition, ifRangeMatches, notModified, parseRange } from "./conditional.js";
import { normalizeStoragePath, parentsOf, rawQueryParam } from "./paths.js";

describe("storage scope rules (ApiScope.storage)", () => {
  it("no scope: nothing; paths absent or null: everything", () => {
    expect(permissionsFromScope(null).canRead("a")).toBe(false);
    for (const scope of [{}, { paths: null }]) {
      const p = permissionsFromScope(scope);
      expect([p.canRead("x/y"), p.canWrite("x/y"), p.canSee("x", true)]).toEqual([true, true, true]);
    }
  });

  it("reads by prefix, writes by the first matching grant, shows folders that lead to a grant", () => {
    const p = permissionsFromScope({
      paths: [{ path: "shared/readonly", read_only: true }, { path: "shared/", read_only: false }, { path: "inbox/" }],
    });
    expect(p.canRead("shared/readonly/a.txt")).toBe(true);
    expect(p.canWrite("shared/readonly/a.txt")).toBe(false); // the first grant that matches is read-only
    expect(p.canWrite("shared/other.txt")).toBe(true);
    expect(p.canWrite("inbox/m.eml")).toBe(true); // read_only absent = false
    expect(p.canRead("private/x")).toBe(false);
    expect(p.canSee("shared", true)).toBe(true); // a folder on the way to a grant
    expect(p.canSee("private", true)).toBe(false);
    expect(p.canSee("shared", false)).toBe(false); // a file named "shared" is not granted
  });

  it("the members' interim scope reads everything and writes nothing", () => {
    const p = permissionsFromScope(MEMBER_READ_ONLY_SCOPE);
    expect([p.canRead("any/path"), p.canWrite("any/path"), p.canSee("", true)]).toEqual([true, false, true]);
  });
});

describe("conditional requests and ranges", () => {
  const lm = Date.parse("2026-06-01T12:00:00.500Z");
  it("If-Range with a date matches Last-Modified to the second; weak tags never match", () => {
    expect(ifRangeMatches("Mon, 01 Jun 2026 12:00:00 GMT", "e", lm)).toBe(true);
    expect(ifRangeMatches("Mon, 01 Jun 2026 11:59:59 GMT", "e", lm)).toBe(false);
    expect(ifRangeMatches('W/"e"', "e", lm)).toBe(false);
    expect(ifRangeMatches('"e"', "e", lm)).toBe(true);
    expect(ifRangeMatches(undefined, "e", lm)).toBe(true);
  });

  it("If-None-Match lists, weak comparison", () => {
    expect(notModified('"a", W/"b"', "b")).toBe(true);
    expect(notModified('"a"', "b")).toBe(false);
    expect(notModified(undefined, "b")).toBe(false);
  });

  it("parses one byte range", () => {
    expect(parseRange("bytes=0-", 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange("bytes = 2 - 3", 10)).toEqual({ start: 2, end: 3 });
    expect(parseRange("bytes=-3", 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange("bytes=10-", 10)).toBe("unsatisfiable");
    expect(parseRange("bytes=99999999999999999999-", 10)).toBeNull();
    expect(parseRange("bytes=-", 10)).toBeNull();
  });

  it("Content-Disposition carries the UTF-8 name and a safe ASCII fallback", () => {
    expect(contentDisposition('rép "1".txt')).toBe(`attachment; filename="r_p _1_.txt"; filename*=UTF-8''r%C3%A9p%20%221%22.txt`);
  });
});

describe("paths", () => {
  it("normalizes to NFC and keeps folders optional", () => {
    expect(normalizeStoragePath("cafe\u0301/x")).toBe("caf\u00e9/x");
    expect(normalizeStoragePath(undefined, { folder: true })).toBe("");
    expect(normalizeStoragePath("a/b/", { folder: true })).toBe("a/b");
    expect(() => normalizeStoragePath("a/b/")).toThrow(/empty segments/);
    expect(() => normalizeStoragePath("a\ud800b")).toThrow(/UTF-8/);
    expect(parentsOf("a/b/c")).toEqual(["a", "a/b"]);
  });

  it("decodes one query parameter strictly", () => {
    expect(rawQueryParam("/x?path=a%20b+c&other=1", "path")).toBe("a b c");
    expect(rawQueryParam("/x?other=1", "path")).toBeUndefined();
    expect(() => rawQueryParam("/x?path=%FF", "path")).toThrow(/UTF-8/);
    expect(() => rawQueryParam("/x?path=a&path=b", "path")).toThrow(/once/);
  });
});
