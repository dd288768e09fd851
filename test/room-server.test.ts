import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, connectAndJoin, joinRoom, mintToken, official, roomWsUrl, until, within, type OfficialRoom } from "./helpers/room-client.js";

const { QueuesGrant, MessagingGrant, StorageGrant, StoragePathGrant, RoomServerException } = official as any;

describe("room server with the official RoomClient 0.39.9", () => {
  let s: TestServer;
  const rooms: OfficialRoom[] = [];
  const track = (r: OfficialRoom) => (rooms.push(r), r);

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3" } });
    for (const name of ["alpha", "beta", "gamma"]) await s.client().createRoom({ projectId: s.admin.projectId, name } as any);
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
  });

  it("starts with a token from connect_room: room_ready and connected/init arrive", async () => {
    const { room, info } = await connectAndJoin(s, "alpha");
    track(room);
    expect(info.roomUrl).toBe(roomWsUrl(s, "alpha"));
    expect(room.roomName).toBe("alpha");
    expect(room.roomUrl).toBe(info.roomUrl);
    expect(room.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(room.localParticipant?.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("queues: send, receive, list, with a long poll that does not block the socket", async () => {
    const room = track(await joinRoom(roomWsUrl(s, "alpha"), await mintToken(s.admin.apiKey, "alpha")));
    await room.queues.send("jobs", { a: 1 }, { create: true });
    await room.queues.send("jobs", { a: 2 }, { create: true });
    expect(await room.queues.list()).toEqual([expect.objectContaining({ name: "jobs", size: 2 })]);
    expect(await room.queues.receive("jobs", { create: true, wait: false })).toEqual({ a: 1 });
    expect(await room.queues.receive("jobs", { create: true, wait: false })).toEqual({ a: 2 });
    expect(await room.queues.receive("jobs", { create: true, wait: false })).toBeNull();
    const waiting = room.queues.receive("later", { create: true, wait: true });
    // other requests on the same socket go through while the receive waits
    expect((await within(room.queues.list())).map((q: any) => q.name).sort()).toEqual(["jobs", "later"]);
    await new Promise((r) => setTimeout(r, 200));
    await room.queues.send("later", { late: true }, { create: true });
    expect(await within(waiting)).toEqual({ late: true });
  });
});
