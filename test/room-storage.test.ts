import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { BACKENDS, backendEnv, type Backend } from "./helpers/storage.js";
import type { TestS3 } from "./helpers/s3.js";
import { joinRoom, mintToken, official, roomWsUrl, until, within, type OfficialRoom } from "./helpers/room-client.js";
import { blobKey, folderPrefix, roomScope } from "../src/blobs/index.js";
import { DetachedAttachmentSink, StorageAttachmentSink } from "../src/mail/attachments.js";
import type { DomainEvent } from "../src/core/events.js";

const { RoomServerException } = official as any;

async function readAll(s: TestServer, key: string): Promise<Buffer | null> {
  const h = await s.ctx.blobs.open(key);
  if (!h) return null;
  const parts: Buffer[] = [];
  for await (const c of await h.read()) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Room storage lives in the BlobStore (rooms/<room id>/…), the key space of mail attachments and scheduler files. */
describe.each(BACKENDS)("room storage on the %s backend", (backend: Backend) => {
  let s: TestServer;
  let s3: TestS3 | undefined;
  let P: string;
  const rooms: OfficialRoom[] = [];
  const events: DomainEvent[] = [];
  const join = async (name: string) => {
    const r = await joinRoom(roomWsUrl(s, name), await mintToken(s.admin.apiKey, name));
    rooms.push(r);
    return r;
  };
  const roomId = async (name: string) => (await s.ctx.rooms.byName(P, name)).id;

  beforeAll(async () => {
    const b = await backendEnv(backend, "room-blobs");
    s3 = b.s3;
    s = await startServer({ env: { ...b.env, MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3" } });
    P = s.admin.projectId;
    s.ctx.bus.on((e) => events.push(e));
    for (const name of ["r1", "r2", "r3"]) await s.client().createRoom({ projectId: P, name } as any);
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s?.close();
    await s3?.close();
  });

  it("a file uploaded through the storage toolkit is a room blob, counted in the project's usage, with one storage.file.updated", async () => {
    const room = await join("r1");
    const id = await roomId("r1");
    const before = await s.ctx.storage.usage(P);
    const data = Buffer.alloc(200 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) % 256;
    await within(room.storage.upload("docs/report.bin", data));
    expect((await readAll(s, blobKey(roomScope(P, id), "docs/report.bin")))?.equals(data)).toBe(true);
    expect((await s.ctx.blobs.stat(blobKey(roomScope(P, id), "docs/report.bin")))?.size).toBe(data.length);
    const after = await s.ctx.storage.usage(P);
    expect([after.bytes - before.bytes, after.files - before.files]).toEqual([data.length, 1]);
    await until(() => events.some((e) => e.type === "storage.file.updated" && e.data.path === "docs/report.bin"), 5000, "event");
    const updated = events.filter((e) => e.type === "storage.file.updated" && e.data.path === "docs/report.bin");
    expect(updated).toHaveLength(1);
    expect(updated[0].data).toMatchObject({ room_id: id, size: data.length, participant_id: room.localParticipant!.id });

    // a ranged read path: the HTTP download URL streams the same bytes
    const res = await fetch(await room.storage.downloadUrl("docs/report.bin"));
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);

    // a move (copy + delete on the blob store) keeps bytes and usage
    await room.storage.move("docs", "moved");
    expect(await s.ctx.blobs.stat(blobKey(roomScope(P, id), "docs/report.bin"))).toBeNull();
    expect(Buffer.from((await within(room.storage.download("moved/report.bin"))).data).equals(data)).toBe(true);
    expect((await s.ctx.storage.usage(P)).bytes - before.bytes).toBe(data.length);
  });

  it("mail attachments and scheduler files written to room storage are listed and downloaded through the toolkit", async () => {
    const id = await roomId("r2");
    const pdf = Buffer.from("%PDF-1.4 attachment bytes");
    await new StorageAttachmentSink(s.ctx.storage).write(P, id, "mail/report.pdf", pdf);
    await new DetachedAttachmentSink(s.ctx.storage).write(P, id, "scheduled/out.json", Buffer.from('{"ok":true}'));
    const room = await join("r2");
    // (one folder level only: s3rver, the loopback S3, leaves out folders whose files are two levels down)
    expect((await room.storage.list("")).map((e: any) => [e.name, e.isFolder])).toEqual([
      ["mail", true],
      ["scheduled", true],
    ]);
    expect((await room.storage.list("mail")).map((e: any) => [e.name, e.size])).toEqual([["report.pdf", pdf.length]]);
    const got = await within(room.storage.download("mail/report.pdf"));
    expect([Buffer.from(got.data), got.name, got.mimeType]).toEqual([pdf, "report.pdf", "application/pdf"]);
    const json = await within(room.storage.download("scheduled/out.json"));
    expect([Buffer.from(json.data).toString(), json.mimeType]).toEqual(['{"ok":true}', "application/json"]);

    // a file is not a folder: uploading below it is refused with the invalid-path code, nothing is stored
    const under = await room.storage.upload("mail/report.pdf/x.txt", Buffer.from("x")).catch((e: unknown) => e);
    expect(under).toBeInstanceOf(RoomServerException);
    expect((under as any).code).toBe(3004);
    expect(await room.storage.exists("mail/report.pdf/x.txt")).toBe(false);
  });

  it("deleting a room removes its blobs and gives back its usage", async () => {
    const id = await roomId("r3");
    const room = await join("r3");
    const before = await s.ctx.storage.usage(P);
    await within(room.storage.upload("a/b/c.txt", Buffer.from("abc")));
    await within(room.storage.upload("d.txt", Buffer.from("defg")));
    expect((await s.ctx.storage.usage(P)).bytes - before.bytes).toBe(7);
    room.dispose();
    await s.ctx.rooms.delete(P, id);
    await until(
      async () => {
        for await (const _ of s.ctx.blobs.walk(folderPrefix(roomScope(P, id), ""))) return false;
        return true;
      },
      10_000,
      "room blobs removed",
    );
    await until(async () => (await s.ctx.storage.usage(P)).bytes === before.bytes, 10_000, "usage given back");
  });
});
