import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCESS_ERRORS, ACCESS_LEVELS, type Access } from "../src/auth/plugin.js";
import { createRoom } from "./helpers/rooms.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { AUTHZ_EXCEPTIONS } from "./authz-exceptions.js";
import { operations, sample, type Operation as OpenApiOperation, type Schema } from "./helpers/openapi.js";

/**
 * The authorization matrix, generated from /openapi.json: every operation is called as every kind of caller, and
 * each status is compared with what the operation's declared access (`x-access`) implies. A denied caller must get
 * exactly the status its access implies (401, 403 or 404); an admitted caller must get past the gate (no 401, no
 * gate 403/404, never a 5xx); public operations must answer the same whatever bearer is sent (their handler may
 * refuse the generated input itself, e.g. an invalid token to validate). Departures from the
 * rule are listed, with the reason, in authz-exceptions.ts.
 */
const WHO = ["none", "garbage", "deletedKey", "otherKey", "otherUser", "member", "developer", "admin", "apiKey", "participant"] as const;
type Who = (typeof WHO)[number];
/** `pass`: the caller is admitted (whatever the handler then answers for the generated input). */
type Outcome = number | "pass";

const UNAUTH = { none: 401, garbage: 401, deletedKey: 401 } as const;
const OUTSIDER = { ...UNAUTH, otherKey: 404, otherUser: 404 } as const;
const all = (o: Outcome) => Object.fromEntries(WHO.map((w) => [w, o])) as Record<Who, Outcome>;

export const EXPECTED: Record<Access, Record<Who, Outcome>> = {
  public: all("pass"),
  principal: { ...all("pass"), ...UNAUTH },
  user: { ...all("pass"), ...UNAUTH, otherKey: 403, apiKey: 403, participant: 403 },
  member: { ...all("pass"), ...OUTSIDER },
  developer: { ...all("pass"), ...OUTSIDER, member: 403, participant: 403 },
  admin: { ...all("pass"), ...OUTSIDER, member: 403, developer: 403, participant: 403 },
  participant: { ...all(401), participant: "pass" },
  // otherUser is a bootstrapped user, and bootstrap makes its user a server administrator.
  server_admin: { ...all(403), ...UNAUTH, otherUser: "pass" },
};

/** What the gate itself answers when it refuses; an admitted caller must never see one of these. */
const GATE_REFUSAL = /^(this call needs the \w+ role in the project|this call needs a user token|project not found$|a participant token is required$)/;

type Operation = OpenApiOperation<Access>;

describe("authorization matrix (generated from /openapi.json)", () => {
  let s: TestServer;
  let doc: Schema;
  let ops: Operation[];
  let room: { id: string; name: string };
  const tokens: Record<Who, string | null> = {} as never;

  beforeAll(async () => {
    s = await startServer();
    const pid = s.admin.projectId;
    room = await createRoom(s.ctx, pid, "matrix-room");
    const dead: any = await s.client().createApiKey(pid, "dead", "");
    await s.client().deleteApiKey(pid, dead.id);
    const other = await s.otherProject();
    const participant = await s.http("POST", `/accounts/projects/${pid}/rooms/${room.name}/connect`);
    expect(participant.status).toBe(200);
    Object.assign(tokens, {
      none: null,
      garbage: "garbage-token",
      deletedKey: dead.value,
      otherKey: other.apiKey,
      otherUser: other.userToken,
      member: (await s.user({})).token,
      developer: (await s.user({ is_developer: true })).token,
      admin: (await s.user({ is_admin: true })).token,
      apiKey: s.admin.apiKey,
      participant: participant.json.jwt,
    });
    doc = (await s.http("GET", "/openapi.json")).json;
    ops = operations<Access>(doc);
  });
  afterAll(() => s?.close());

  /** A concrete request for an operation: the admin's project, the fixture room, harmless values elsewhere. */
  function request(o: Operation): { url: string; json?: unknown } {
    const value = (name: string, schema: Schema) => {
      if (name === "project_id") return s.admin.projectId;
      if (name === "room_name" || name === "room") return room.name;
      if (name === "*") return "matrix/file.txt";
      if (name === "path") return "matrix/file.txt";
      return String(sample(schema, doc) ?? "x");
    };
    let url = o.path;
    const query = new URLSearchParams();
    for (const p of o.op.parameters ?? []) {
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(value(p.name, p.schema)).replace(/%2F/g, "/"));
      else if (p.in === "query" && p.required) query.set(p.name, value(p.name, p.schema));
    }
    const body = o.op.requestBody?.content?.["application/json"]?.schema;
    return { url: url + (query.size ? `?${query}` : ""), json: body ? sample(body, doc) : undefined };
  }

  it("every operation declares an access level and documents the statuses it implies", () => {
    expect(ops.length).toBeGreaterThan(70);
    for (const o of ops) {
      expect(ACCESS_LEVELS, `${o.method} ${o.path} x-access`).toContain(o.access);
      for (const code of ACCESS_ERRORS[o.access]) expect(Object.keys(o.op.responses), `${o.method} ${o.path}`).toContain(String(code));
      if (o.access === "public") expect(o.op.security, `${o.method} ${o.path} security`).toEqual([]);
    }
  });

  it("every operation answers every caller as its access implies", async () => {
    const failures: string[] = [];
    let calls = 0;
    for (const o of ops) {
      const name = `${o.method} ${o.path}`;
      const exceptions = AUTHZ_EXCEPTIONS[name] ?? {};
      const publicStatuses = new Set<number>();
      for (const who of WHO) {
        const { url, json } = request(o);
        const r = await s.http(o.method, url, { token: tokens[who], json });
        calls++;
        const want: Outcome = exceptions[who]?.status ?? EXPECTED[o.access][who];
        const message: string = r.json?.error?.message ?? "";
        const why = `${name} as ${who}: got ${r.status} ${message}`;
        if (r.status >= 500) failures.push(`${why} (a 5xx)`);
        // The OAuth protocol's endpoints answer as RFC 6749 says ({error, error_description}, or an HTML page): `x-error-shape: oauth`.
        else if (r.status >= 400 && o.op["x-error-shape"] !== "oauth" && !(typeof r.json?.error?.code === "string" && typeof message === "string"))
          failures.push(`${why} (not in the error shape)`);
        else if (want === "pass") {
          if ((o.access !== "public" && r.status === 401) || ((r.status === 403 || r.status === 404) && GATE_REFUSAL.test(message)))
            failures.push(`${why}, expected to be admitted`);
        } else if (r.status !== want) failures.push(`${why}, expected ${want}`);
        if (o.access === "public") publicStatuses.add(r.status);
      }
      if (publicStatuses.size > 1) failures.push(`${name} is public but answered ${[...publicStatuses].join(", ")} depending on the bearer`);
    }
    console.log(`authorization matrix: ${ops.length} operations x ${WHO.length} callers = ${calls} calls`);
    expect(calls).toBe(ops.length * WHO.length);
    expect(failures).toEqual([]);
  });

  it("every documented exception is still needed (names an operation that exists)", () => {
    const names = new Set(ops.map((o) => `${o.method} ${o.path}`));
    for (const name of Object.keys(AUTHZ_EXCEPTIONS)) expect(names, name).toContain(name);
  });

  it("a member may leave a project but not remove the owner", async () => {
    const P = `/accounts/projects/${s.admin.projectId}`;
    const m = await s.user({});
    expect((await s.http("DELETE", `${P}/users/${m.userId}`, { token: m.token })).status).toBe(200);
    expect((await s.http("DELETE", `${P}/users/${s.admin.userId}`)).status).toBe(403);
    const r = await s.http("PUT", `${P}/users/${s.admin.userId}`, {
      json: { is_admin: false, is_developer: false, can_create_rooms: false, can_use_llm_proxy: false },
    });
    expect(r.status).toBe(403);
  });

  it("another project's key sees nothing of this project's members or keys", async () => {
    const other = await s.otherProject();
    const key: any = await s.client().createApiKey(s.admin.projectId, "mine", "");
    expect((await s.http("DELETE", `/accounts/projects/${other.projectId}/api-keys/${key.id}`, { token: other.apiKey })).status).toBe(404);
    expect((await s.http("DELETE", `/accounts/projects/${s.admin.projectId}/api-keys/${key.id}`, { token: other.apiKey })).status).toBe(404);
    expect(await s.client().getStatus(s.admin.projectId)).toBe(true);
  });
});
