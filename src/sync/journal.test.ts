import { describe, expect, it } from "vitest";
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileJournal } from "./journal.js";

describe("FileJournal", () => {
  it("replays what was appended, stops at a torn tail, and drops segments up to a compaction mark", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sync-journal-"));
    try {
      const j = new FileJournal(dir);
      const h = await j.open("room-1", "a/b.doc");
      expect(h.append(Buffer.from([1, 2, 3]), "AQID")).toBe(null); // durable at once: no promise to wait for
      h.append(Buffer.from([4]), "BA==");
      const mark = h.mark();
      h.append(Buffer.from([5, 6]), "BQY=");
      expect((await h.replay()).map((b) => [...b])).toEqual([[1, 2, 3], [4], [5, 6]]);
      h.close();

      // A crash mid-write leaves a partial record: the replay ends before it, and a reopened handle appends after it.
      const segDir = join(dir, "room-1", readdirSync(join(dir, "room-1"))[0]);
      const last = readdirSync(segDir).sort().at(-1)!;
      appendFileSync(join(segDir, last), Buffer.from([9, 0, 0, 0, 1, 2]));
      const h2 = await j.open("room-1", "a/b.doc");
      expect((await h2.replay()).map((b) => [...b])).toEqual([[1, 2, 3], [4], [5, 6]]);
      h2.append(Buffer.from([7]), "Bw==");
      expect((await h2.replay()).map((b) => [...b])).toEqual([[1, 2, 3], [4], [5, 6], [7]]);

      await h2.drop(mark);
      expect((await h2.replay()).map((b) => [...b])).toEqual([[5, 6], [7]]);
      await h2.forget();
      expect(readdirSync(join(dir, "room-1"))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
