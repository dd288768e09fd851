import official, { ApiScope, ParticipantToken, RoomClient, WebSocketClientProtocol } from "./official.js";
import type { TestServer } from "./server.js";

export type OfficialRoom = InstanceType<typeof RoomClient>;
export type Scope = InstanceType<typeof ApiScope>;
export { official, ApiScope };

/** Reject after `ms`: the official client has no timeouts of its own, so a server bug would otherwise hang a test. */
export function within<T>(p: Promise<T>, ms = 10_000, what = "operation"): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

/** The official RoomClient on `url` with `token`, started. reconnectTimeout 0: a failure surfaces at once. */
export async function joinRoom(url: string, token: string, opts: { reconnectTimeout?: number | null } = {}): Promise<OfficialRoom> {
  const room = new RoomClient({
    protocolFactory: WebSocketClientProtocol.createFactory({ url, token }),
    reconnectTimeout: opts.reconnectTimeout === undefined ? 0 : opts.reconnectTimeout,
  });
  await within(room.start(), 10_000, "RoomClient.start");
  return room;
}

/** connect_room through the official client (the token the server mints) and join with it. */
export async function connectAndJoin(s: TestServer, roomName: string, bearer = s.admin.apiKey) {
  const info = await s.client(bearer).connectRoom(s.admin.projectId, roomName);
  const room = await joinRoom(info.roomUrl, info.jwt);
  return { room, info };
}

/** A token the client mints itself with ParticipantToken.toJwt({ apiKey }). */
export async function mintToken(apiKey: string, roomName: string, opts: { name?: string; role?: string; api?: Scope | null } = {}) {
  const t = new ParticipantToken({ name: opts.name ?? "agent" });
  t.addRoomGrant(roomName);
  t.addRoleGrant(opts.role ?? "agent");
  if (opts.api !== null) t.addApiGrant(opts.api ?? ApiScope.full());
  const warn = console.warn;
  console.warn = () => {}; // toJwt warns about a token without an api grant; that is what some tests want
  try {
    return await t.toJwt({ apiKey });
  } finally {
    console.warn = warn;
  }
}

export function roomWsUrl(s: TestServer, roomName: string) {
  return `${s.url.replace(/^http/, "ws")}/rooms/${encodeURIComponent(roomName)}`;
}

/** Wait until `cond` holds (polling), or fail after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
