import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { startServer, type TestServer } from "./helpers/server.js";
import { inTx } from "../src/store/db.js";
import { roomsRepo, type RoomRow } from "../src/rooms/repo.js";

const N = 10_000;

describe("list_rooms paging over 10k rooms", () => {
  let s: TestServer;
  let pid: string;
  let byName: string[];
  let byCreated: string[];

  beforeAll(async () => {
    s = await startServer();
    pid = s.admin.projectId;
    const base = Date.UTC(2026, 0, 1);
    const rows: RoomRow[] = [];
    for (let i = 0; i < N; i++) {
      // names in an order unrelated to creation; created_at ties in groups of three (broken by id)
      const name = `r${String((i * 7919) % N).padStart(5, "0")}-${i % 3 === 0 ? "a" : "b"}`;
      rows.push({
        id: randomUUID(),
        project_id: pid,
        name,
        metadata: JSON.stringify({ i }),
        annotations: "{}",
        created_at: base + Math.floor(i / 3),
        updated_at: base,
      });
    }
    await inTx(s.ctx.store.db, (tx) => roomsRepo.insertMany(tx, pid, rows));
    byName = rows.map((r) => r.name).sort();
    byCreated = [...rows].sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((r) => r.name);
  });
  afterAll(() => s.close());

  const page = async (q: string) => (await s.http("GET", `/accounts/projects/${pid}/rooms?${q}`)).json;

  it("walking every page in both orders gives each room once, in order, with total = 10000", async () => {
    for (const [order, expected] of [
      ["room_name", byName],
      ["created_at", byCreated],
    ] as const) {
      const seen: string[] = [];
      for (let off = 0; off < N; off += 1000) {
        const p = await page(`limit=1000&offset=${off}&order_by=${order}`);
        expect(p.total).toBe(N);
        seen.push(...p.rooms.map((r: any) => r.name));
      }
      expect(seen).toEqual(expected);
    }
  });

  it("the official client pages the same way", async () => {
    const c = s.client();
    const names: string[] = [];
    for (let off = 0; off < N; off += 1000)
      names.push(...(await c.listRooms(pid, { limit: 1000, offset: off, orderBy: "created_at" })).map((r: any) => r.name));
    expect(names).toEqual(byCreated);
    expect((await c.listRooms(pid, { limit: 3, offset: 4998 })).map((r: any) => r.name)).toEqual(byName.slice(4998, 5001));
  });

  it("arbitrary offset/limit windows match the expected slices; past the end is empty; limit is capped at 1000", async () => {
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let k = 0; k < 25; k++) {
      const offset = rnd(N + 50);
      const limit = 1 + rnd(300);
      const order = k % 2 ? "room_name" : "created_at";
      const p = await page(`limit=${limit}&offset=${offset}&order_by=${order}`);
      expect(p.total).toBe(N);
      expect(
        p.rooms.map((r: any) => r.name),
        `${order} ${offset}+${limit}`,
      ).toEqual((order === "room_name" ? byName : byCreated).slice(offset, offset + limit));
    }
    expect(await page(`offset=${N}`)).toEqual({ rooms: [], total: N });
    expect((await page("limit=5000")).rooms).toHaveLength(1000);
    expect((await page("")).rooms).toHaveLength(100);
    const first = (await page("limit=1")).rooms[0];
    expect(first).toEqual({ id: expect.any(String), name: byName[0], metadata: { i: expect.any(Number) }, annotations: {}, created_at: expect.any(String) });
  });

  it("filtered totals count the matches", async () => {
    const matches = byName.filter((n) => n.includes("99"));
    const p = await page("filter=99&limit=1000");
    expect(p.total).toBe(matches.length);
    expect(p.rooms.map((r: any) => r.name)).toEqual(matches.slice(0, 1000));
    const a = await page("filter=-A&limit=10&offset=20&order_by=created_at");
    expect(a.total).toBe(Math.ceil(N / 3));
    expect(a.rooms.map((r: any) => r.name)).toEqual(byCreated.filter((n) => n.endsWith("-a")).slice(20, 30));
  });

  it("the counter stays exact when rooms are created and deleted through the API", async () => {
    const c = s.client();
    const r = await c.createRoom({ projectId: pid, name: "zzz-extra" });
    expect((await page("limit=1")).total).toBe(N + 1);
    await c.deleteRoom(pid, r.id);
    const victim = (await page("limit=1")).rooms[0];
    await c.deleteRoom(pid, victim.id);
    expect((await page("limit=1")).total).toBe(N - 1);
  });
});
