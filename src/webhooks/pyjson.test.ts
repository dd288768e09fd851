import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { pyJsonDumps, pyNumber } from "./pyjson.js";

/** Python's own `json.dumps(json.loads(line))` for each line: the reference the receiver's verifier uses. */
function python(lines: string[]): string[] {
  const script = "import json,sys\nfor l in sys.stdin.read().split('\\n'):\n    print(json.dumps(json.loads(l)))";
  return execFileSync("python3", ["-c", script], { input: lines.join("\n"), encoding: "utf8" })
    .trimEnd()
    .split("\n");
}

describe("pyJsonDumps (Python json.dumps formatting)", () => {
  it("matches hand-checked outputs", () => {
    expect(pyJsonDumps({ event: "room.started", data: { room_name: "x", room_url: "wss://h/rooms/x" } })).toBe(
      '{"event": "room.started", "data": {"room_name": "x", "room_url": "wss://h/rooms/x"}}',
    );
    expect(pyJsonDumps({ a: [1, 2, { b: null }], c: true, d: false, e: {}, f: [] })).toBe(
      '{"a": [1, 2, {"b": null}], "c": true, "d": false, "e": {}, "f": []}',
    );
    expect(pyJsonDumps('é€😀\u0000\u001f\u007f"\\\n\r\t\b\f/')).toBe('"\\u00e9\\u20ac\\ud83d\\ude00\\u0000\\u001f\\u007f\\"\\\\\\n\\r\\t\\b\\f/"');
    expect(pyJsonDumps({ u: undefined, k: 1 })).toBe('{"k": 1}');
    expect(pyJsonDumps([undefined, NaN, Infinity])).toBe("[null, null, null]");
  });

  it("writes numbers as Python does after parsing them", () => {
    const cases: [number, string][] = [
      [0, "0"],
      [-0, "0"],
      [1, "1"],
      [-17, "-17"],
      [1.5, "1.5"],
      [0.1, "0.1"],
      [0.0001, "0.0001"],
      [0.00001, "1e-05"],
      [1.5e-7, "1.5e-07"],
      [-2.5e-10, "-2.5e-10"],
      [123.456, "123.456"],
      [1e15 + 0.5, "1000000000000000.5"],
      [2 ** 53, "9007199254740992"],
      [1e20, "100000000000000000000"],
      [1e21, "1e+21"],
      [1.5e300, "1.5e+300"],
      [5e-324, "5e-324"],
      [Number.MAX_VALUE, "1.7976931348623157e+308"],
    ];
    for (const [n, s] of cases) expect(pyNumber(n), String(n)).toBe(s);
    const json = cases.map(([n]) => JSON.stringify(n));
    expect(python(json)).toEqual(cases.map(([, s]) => s));
  });

  it("agrees with python3 json.dumps on random JSON (strings with any UTF-16 unit, floats, nesting)", () => {
    const values = fc.sample(fc.jsonValue({ maxDepth: 4, stringUnit: "binary" }), { numRuns: 400, seed: 42 });
    const more = fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), { numRuns: 300, seed: 7 });
    const all = [...values, ...more, "\ud800 lone", { "k\u2028": ["\udfff"] }];
    const ours = all.map(pyJsonDumps);
    // 1) our output equals Python's serialization of the same value
    expect(python(all.map((v) => JSON.stringify(v)))).toEqual(ours);
    // 2) what the verifier computes, json.dumps(json.loads(body)), is the body itself: the hash matches
    expect(python(ours)).toEqual(ours);
  });
});
