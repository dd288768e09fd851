import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, ParticipantToken } from "./helpers/official.js";
import { until } from "./helpers/room-client.js";
import { verifyPassword } from "../src/core/crypto.js";
import { invitationLink as linkOf, smtpRelay as relay } from "./helpers/smtp-relay.js";

const tokenOf = (link: string) => decodeURIComponent(new URL(link).searchParams.get("token")!);
/** What a browser sends: a form post that accepts HTML. */
const form = (fields: Record<string, string>) => ({
  body: new URLSearchParams(fields).toString(),
  headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html,application/xhtml+xml" },
  token: null,
});
const browser = { token: null, headers: { accept: "text/html" } };

describe("invitations by mail", () => {
  let s: TestServer;
  let r: Awaited<ReturnType<typeof relay>>;
  const logs: string[] = [];
  let pid: string;
  let P: string;
  beforeAll(async () => {
    r = await relay();
    s = await startServer({
      env: { MESHAGENT_SMTP_RELAY_URL: `smtp://127.0.0.1:${r.port}`, MESHAGENT_LOG_LEVEL: "info" },
      logStream: { write: (l) => void logs.push(l) },
    });
    pid = s.admin.projectId;
    P = `/accounts/projects/${pid}`;
  });
  afterAll(async () => {
    await s.close();
    await r.close();
  });

  it("a grant by email sends an invitation; the link's page creates the account; the grant is intact; the link works once", async () => {
    const room = await s.client().createRoom({ projectId: pid, name: "inv-room" });
    const email = `newcomer-${Date.now()}@example.com`;
    await s.client().createRoomGrantByEmail({ projectId: pid, roomId: room.id, email, permissions: ApiScope.fromJSON({ messaging: {} }) });
    await until(() => r.mails.some((m) => m.to === email), 10_000, "the invitation mail");
    const mail = r.mails.find((m) => m.to === email)!;
    expect(mail.subject).toMatch(/invited to default/);
    const link = linkOf(mail.text);
    expect(link.startsWith(s.url)).toBe(true);

    const page = await s.http("GET", new URL(link).pathname + new URL(link).search, browser);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    expect(page.text).toContain(email);
    expect(page.text).toMatch(/<label for="password">/);
    expect(page.text).toMatch(/<html lang="en">/);

    const token = tokenOf(link);
    const weak = await s.http("POST", "/accounts/invitation", form({ token, password: "short", password_confirm: "short" }));
    expect(weak.status).toBe(400);
    expect(weak.text).toMatch(/role="alert"[^>]*>the password must have at least 10 characters/);
    const differ = await s.http("POST", "/accounts/invitation", form({ token, password: "correct horse battery", password_confirm: "correct horse batterY" }));
    expect(differ.text).toMatch(/the two passwords differ/);

    const ok = await s.http(
      "POST",
      "/accounts/invitation",
      form({ token, password: "correct horse battery", password_confirm: "correct horse battery", first_name: "New", last_name: "Comer <b>" }),
    );
    expect(ok.status).toBe(200);
    expect(ok.text).toMatch(/Your account is ready/);
    const u = (await s.ctx.users.byEmail(email))!;
    expect(u).toMatchObject({ invited: 0, first_name: "New", last_name: "Comer <b>" });
    expect(await verifyPassword("correct horse battery", u.password_hash!)).toBe(true);
    // the grant made before the account exists is theirs
    const pat = await s.ctx.users.issueToken(u.id, { kind: "pat", name: "t" });
    const info = await s.client(pat).connectRoom(pid, "inv-room");
    const pt = ParticipantToken.fromJson(JSON.parse(Buffer.from(info.jwt.split(".")[1], "base64url").toString()));
    expect(pt.getApiGrant()!.toJSON()).toEqual({ messaging: {} });
    // single use
    const again = await s.http("GET", `/accounts/invitation?token=${encodeURIComponent(token)}`, browser);
    expect(again.status).toBe(410);
    expect(again.text).toMatch(/<h1>This link cannot be used any more<\/h1>[\s\S]*already used/);
    // an API client gets the JSON error
    const json = await s.http("GET", `/accounts/invitation?token=${encodeURIComponent(token)}`, { token: null });
    expect([json.status, json.json.error.code]).toEqual([410, "gone"]);
    const replay = await s.http("POST", "/accounts/invitation", form({ token, password: "another good one", password_confirm: "another good one" }));
    expect(replay.status).toBe(410);
    expect(await verifyPassword("correct horse battery", (await s.ctx.users.byEmail(email))!.password_hash!)).toBe(true);
    // the token and the password are in no log line
    expect(logs.join("")).not.toContain(token);
    expect(logs.join("")).not.toContain("correct horse battery");
  });

  it("add_user_to_project by email invites too; a refusing relay is retried", async () => {
    r.refuseNext(1);
    const email = `retry-${Date.now()}@example.com`;
    const add = await s.http("POST", `${P}/users`, { json: { email, is_admin: false, is_developer: false, can_create_rooms: false } });
    expect(add.status).toBeLessThan(300);
    const row = async () =>
      s.ctx.store.db
        .selectFrom("invitations")
        .selectAll()
        .innerJoin("users", "users.id", "invitations.user_id")
        .where("users.email", "=", email)
        .executeTakeFirstOrThrow();
    await until(async () => (await row()).attempts === 1, 10_000, "the first attempt");
    expect(await row()).toMatchObject({ sent_at: null, last_error: expect.stringMatching(/try later/) });
    expect(r.mails.some((m) => m.to === email)).toBe(false);
    // the sweep sends it once its retry is due (made due now rather than waiting 30 s)
    await s.ctx.store.db
      .updateTable("invitations")
      .set({ next_attempt_at: Date.now() - 1 })
      .where("user_id", "=", (await row()).user_id)
      .execute();
    await s.ctx.invitations.flush();
    expect(r.mails.filter((m) => m.to === email)).toHaveLength(1);
    expect(await row()).toMatchObject({ sent_at: expect.anything(), token_sealed: null, attempts: 2 });
  });

  it("unknown and malformed links are 404 pages, never 5xx; known users get no invitation", async () => {
    expect((await s.http("GET", "/accounts/invitation?token=nope", browser)).status).toBe(404);
    expect((await s.http("GET", "/accounts/invitation?token=nope", { token: null })).json.error.code).toBe("not_found");
    expect((await s.http("GET", "/accounts/invitation", { token: null })).status).toBe(400);
    expect((await s.http("POST", "/accounts/invitation", form({ token: "nope", password: "x", password_confirm: "x" }))).status).toBe(404);
    expect((await s.http("POST", "/accounts/invitation", { ...form({}), body: "%%%" })).status).toBeLessThan(500);
    const before = r.mails.length;
    const known = await s.user(null as never);
    await s.http("POST", `${P}/users`, { json: { user_id: known.userId, is_admin: false, is_developer: false, can_create_rooms: false } });
    await new Promise((res) => setTimeout(res, 300));
    expect(r.mails.length).toBe(before);
  });
});
