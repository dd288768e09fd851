import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { Meshagent, MeshagentError, type ServiceSpec } from "@meshagent-oss/sdk";
import { startServer, type TestServer } from "../../../test/helpers/server.js";
import { Receiver, until } from "../../../test/helpers/receiver.js";
import { joinRoom } from "../../../test/helpers/room-client.js";
import { browser } from "../../../test/helpers/oauth.js";

/**
 * Our SDK against a real server, every method (the last test fails when a public method of Meshagent was never
 * called here, or when a method of the seed reference has no SDK method).
 */
const called = new Set<string>();
function recording(c: Meshagent): Meshagent {
  return new Proxy(c, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof v !== "function" || typeof key !== "string") return v;
      called.add(key);
      return v.bind(target);
    },
  });
}

const spec = (name: string, extra: Partial<ServiceSpec> = {}): ServiceSpec =>
  ({
    version: "v1",
    kind: "Service",
    metadata: { name, annotations: { "meshagent.service.id": name } },
    ports: [{ num: 8080, type: "http", endpoints: [{ path: "/agent", meshagent: { identity: "bot" } }] }],
    container: { image: "img", environment: [{ name: "A", value: "b" }], private: true },
    ...extra,
  }) as ServiceSpec;

const template = [
  "version: v1",
  "kind: ServiceTemplate",
  "metadata:",
  "  name: {{ name }}",
  "variables:",
  "  - name: name",
  "container:",
  "  image: img:1",
  "",
].join("\n");

async function mcpServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(async (req, res) => {
    const mcp = new McpServer({ name: "Notes", version: "1.0.0" });
    mcp.registerTool("read_note", { description: "read a note", annotations: { readOnlyHint: true } }, async () => ({
      content: [{ type: "text", text: "hi" }],
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => void transport.close());
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe("SDK: every method against a real server", () => {
  let s: TestServer;
  let c: Meshagent; // the admin's API key
  let u: Meshagent; // the admin's user token
  let pid: string;
  let receiver: Receiver;
  let mcp: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true", MESHAGENT_MCP_ALLOW_PRIVATE: "true" } });
    pid = s.admin.projectId;
    c = recording(new Meshagent({ baseUrl: s.url, token: s.admin.apiKey }));
    u = recording(new Meshagent({ baseUrl: s.url, token: s.admin.userToken }));
    receiver = await Receiver.start();
    mcp = await mcpServer();
  });
  afterAll(async () => {
    await receiver?.close?.();
    await mcp?.close();
    await s?.close();
  });

  it("defaults to MESHAGENT_API_URL and MESHAGENT_API_KEY", async () => {
    const before = { url: process.env.MESHAGENT_API_URL, key: process.env.MESHAGENT_API_KEY };
    process.env.MESHAGENT_API_URL = s.url + "/";
    process.env.MESHAGENT_API_KEY = s.admin.apiKey;
    try {
      const d = new Meshagent();
      expect(d.baseUrl).toBe(s.url);
      expect((await d.getProject(pid)).id).toBe(pid);
    } finally {
      for (const [k, v] of [
        ["MESHAGENT_API_URL", before.url],
        ["MESHAGENT_API_KEY", before.key],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("projects, users, profiles and user tokens", async () => {
    const p = await u.createProject("sdk-second", { theme: "dark" });
    expect(p).toMatchObject({ name: "sdk-second", settings: { theme: "dark" } });
    expect((await u.listProjects()).map((x) => x.id)).toEqual(expect.arrayContaining([pid, p.id]));
    expect((await c.getProject(pid)).id).toBe(pid);
    await c.updateProjectSettings(pid, { a: 1 });
    expect((await c.getProject(pid)).settings).toEqual({ a: 1 });
    expect(await c.getStatus(pid)).toBe(true);
    expect((await u.getProjectRole(pid)).role).toBe("admin");

    const other = await s.user(null);
    expect(await c.addUserToProject(pid, other.userId, { is_developer: true })).toMatchObject({ user_id: other.userId });
    await c.updateProjectUser(pid, other.userId, { is_admin: true });
    const users = await c.getUsersInProject(pid, { count: 1 });
    expect(users).toHaveLength(1);
    const everyone = await c.getUsersInProject(pid, { count: 1 }).all();
    expect(everyone.find((x) => x.user_id === other.userId)).toMatchObject({ is_admin: true });
    await c.removeUserFromProject(pid, other.userId);
    expect((await c.getUsersInProject(pid).all()).some((x) => x.user_id === other.userId)).toBe(false);

    await u.updateUserProfile("me", "Ada", "Lovelace");
    expect(await u.getUserProfile("me")).toMatchObject({ id: s.admin.userId, first_name: "Ada", last_name: "Lovelace" });
    const t = await u.createUserToken("ci", { expires_in: 3600 });
    expect(t.token).toBeTruthy();
    expect((await u.listUserTokens()).some((x) => x.id === t.id)).toBe(true);
    await u.revokeUserToken(t.id);
    expect((await u.listUserTokens()).some((x) => x.id === t.id)).toBe(false);
  });

  it("API keys", async () => {
    const k = await c.createApiKey(pid, "sdk", "made by the SDK test");
    expect(k.value).toMatch(/^ma-/);
    expect((await c.listApiKeys(pid)).some((x) => x.id === k.id)).toBe(true);
    await new Meshagent({ baseUrl: s.url, token: k.value }).getProject(pid);
    await c.deleteApiKey(pid, k.id);
    await expect(new Meshagent({ baseUrl: s.url, token: k.value, maxRetries: 0 }).getProject(pid)).rejects.toMatchObject({ status: 401 });
  });

  it("rooms, paged lists, connect", async () => {
    for (let i = 0; i < 7; i++) await c.createRoom(pid, `page-${i}`, { metadata: { i } });
    const again = await c.createRoom(pid, "page-0", { if_not_exists: true });
    expect(again.name).toBe("page-0");
    const first = await c.listRooms(pid, { limit: 3, filter: "page-" });
    expect(first.map((r) => r.name)).toEqual(["page-0", "page-1", "page-2"]);
    expect((await c.listRooms(pid, { limit: 3, filter: "page-" }).page()).total).toBe(7);
    const names: string[] = [];
    for await (const r of c.listRooms(pid, { limit: 3, filter: "page-" })) names.push(r.name);
    expect(names).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `page-${i}`));
    const r = await c.getRoom(pid, "page-1");
    const renamed = await c.updateRoom(pid, r.id, "page-1b", { metadata: { renamed: true } });
    expect(renamed).toMatchObject({ id: r.id, name: "page-1b", metadata: { renamed: true } });
    const info = await c.connectRoom(pid, "page-1b");
    expect(info).toMatchObject({ room_name: "page-1b", project_id: pid });
    expect(info.room_url).toMatch(/^ws:\/\//);
    expect((await c.validateParticipantToken(info.jwt)) as Record<string, unknown>).toBeTruthy();
    await c.deleteRoom(pid, r.id);
    const err = await c.getRoom(pid, "page-1b").catch((e) => e);
    expect(err).toBeInstanceOf(MeshagentError);
    expect(err).toMatchObject({ status: 404, code: "not_found" });
    expect(err.requestId).toMatch(/[0-9a-f-]{36}/);
  });

  it("room grants", async () => {
    const room = await c.createRoom(pid, "granted");
    const a = await s.user({ can_create_rooms: false });
    const perms = { livekit: { can_publish: true } } as never;
    expect((await c.createRoomGrant(pid, room.id, a.userId, perms)).user_id).toBe(a.userId);
    const b = await s.user({});
    const byEmail = await c.createRoomGrantByEmail(pid, room.id, b.email, perms);
    expect(byEmail.user_id).toBe(b.userId);
    await c.updateRoomGrant(pid, room.id, a.userId, { storage: {} } as never);
    expect((await c.getRoomGrant(pid, room.id, a.userId)).permissions).toMatchObject({ storage: {} });
    expect(await c.listRoomGrants(pid).all()).toHaveLength(2);
    expect((await c.listRoomGrantsByUser(pid, a.userId)).map((g) => g.room.id)).toEqual([room.id]);
    expect(await c.listRoomGrantsByRoom(pid, room.name)).toHaveLength(2);
    expect(await c.listUniqueRoomsWithGrants(pid)).toEqual([expect.objectContaining({ count: 2 })]);
    expect((await c.listUniqueUsersWithGrants(pid)).map((x) => x.user_id).sort()).toEqual([a.userId, b.userId].sort());
    await c.deleteRoomGrant(pid, room.id, b.userId);
    expect(await c.listRoomGrantsByRoom(pid, room.name)).toHaveLength(1);
  });

  it("project storage: bytes, streams with progress, list, stat, delete, usage", async () => {
    await c.upload(pid, "docs/a.txt", "hello");
    expect(new TextDecoder().decode(await c.download(pid, "docs/a.txt"))).toBe("hello");
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
    const sent: number[] = [];
    async function* chunks() {
      for (let i = 0; i < big.length; i += 100_000) yield big.subarray(i, i + 100_000);
    }
    const up = await c.upload(pid, "docs/big.bin", chunks(), { size: big.length, onProgress: (n) => sent.push(n) });
    expect(up.size).toBe(big.length);
    expect(sent.at(-1)).toBe(big.length);
    const got: number[] = [];
    const { stream, size } = await c.downloadStream(pid, "docs/big.bin", { onProgress: (n) => got.push(n) });
    expect(size).toBe(big.length);
    const back = new Uint8Array(await new Response(stream).arrayBuffer());
    expect(Buffer.compare(back, big)).toBe(0);
    expect(got.at(-1)).toBe(big.length);
    expect((await c.listStorage(pid, "docs")).map((e) => e.name).sort()).toEqual(["a.txt", "big.bin"]);
    const walked: string[] = [];
    for await (const e of c.listStorage(pid, "docs", { limit: 1 })) walked.push(e.name);
    expect(walked.sort()).toEqual(["a.txt", "big.bin"]);
    expect(await c.statStorage(pid, "docs/a.txt")).toMatchObject({ size: 5, is_folder: false });
    expect((await c.getStorageUsage(pid)).bytes).toBeGreaterThanOrEqual(big.length);
    await c.deleteStorage(pid, "docs", { recursive: true });
    await expect(c.download(pid, "docs/a.txt")).rejects.toMatchObject({ status: 404 });
  });

  it("services, room services, templates, MCP discovery", async () => {
    const svc = await c.createService(pid, spec("svc-a"));
    expect(svc.id).toBeTruthy();
    expect((await c.listServices(pid)).map((x) => x.id)).toContain(svc.id);
    expect((await c.getService(pid, svc.id!)).metadata.name).toBe("svc-a");
    const upd = await c.updateService(pid, svc.id!, spec("svc-a", { container: { image: "img:2" } } as never));
    expect(upd.container?.image).toBe("img:2");
    expect((await c.getServiceStatus(pid, svc.id!)).service_id).toBe(svc.id);
    const fromTpl = await c.createServiceFromTemplate(pid, template, { name: "svc-tpl" });
    expect(fromTpl.metadata.name).toBe("svc-tpl");
    expect((await c.updateServiceFromTemplate(pid, fromTpl.id!, template, { name: "svc-tpl2" })).metadata.name).toBe("svc-tpl2");
    await c.deleteService(pid, svc.id!);
    await c.deleteService(pid, fromTpl.id!);
    expect(await c.listServices(pid)).toEqual([]);

    await c.createRoom(pid, "svc-room");
    const rs = await c.createRoomService(pid, "svc-room", spec("room-svc"));
    expect((await c.listRoomServices(pid, "svc-room")).map((x) => x.id)).toEqual([rs.id]);
    expect((await c.getRoomService(pid, "svc-room", rs.id!)).metadata.name).toBe("room-svc");
    await c.updateRoomService(pid, "svc-room", rs.id!, spec("room-svc", { container: { image: "img:3" } } as never));
    expect((await c.getRoomService(pid, "svc-room", rs.id!)).container?.image).toBe("img:3");
    expect((await c.getRoomServiceStatus(pid, "svc-room", rs.id!)).service_id).toBe(rs.id);
    const rt = await c.createRoomServiceFromTemplate(pid, "svc-room", template, { name: "room-tpl" });
    expect((await c.updateRoomServiceFromTemplate(pid, "svc-room", rt.id!, template, { name: "room-tpl2" })).metadata.name).toBe("room-tpl2");
    await c.deleteRoomService(pid, "svc-room", rs.id!);
    await c.deleteRoomService(pid, "svc-room", rt.id!);

    const rendered = await c.renderTemplate(template, { name: "r" });
    expect(rendered).toMatchObject({ kind: "ServiceTemplate", metadata: { name: "r" } });
    const discovered = await c.discoverMcpSpec(mcp.url);
    expect(discovered).toMatchObject({ kind: "Service" });
  });

  it("secrets: typed (PullSecret, KeysSecret), managed, and room secrets", async () => {
    const keys = await c.createSecret(pid, { name: "api", type: "keys", data: { TOKEN: "t0p" } });
    const pull = await c.createSecret(pid, { name: "reg", type: "docker", server: "r.example.com", username: "me", password: "pw" });
    const all = await c.listSecrets(pid);
    expect(all).toContainEqual({ id: keys, name: "api", type: "keys", data: { TOKEN: "t0p" } });
    expect(all).toContainEqual({ id: pull, name: "reg", type: "docker", server: "r.example.com", username: "me", password: "pw", email: "none@example.com" });
    await c.updateSecret(pid, { id: keys, name: "api", type: "keys", data: { TOKEN: "new" } });
    expect((await c.listSecrets(pid)).find((x) => x.id === keys)).toMatchObject({ data: { TOKEN: "new" } });
    await c.deleteSecret(pid, pull);

    const raw = await c.createProjectSecret(pid, "raw", "opaque", new Uint8Array([0, 1, 2, 255]));
    expect((await c.listProjectSecrets(pid)).map((x) => x.name).sort()).toEqual(["api", "raw"]);
    expect((await c.getProjectSecret(pid, raw.id)).data_base64).toBe("AAEC/w==");
    await c.updateProjectSecret(pid, raw.id, "raw", "opaque", new Uint8Array([9]));
    expect((await c.getProjectSecret(pid, raw.id)).data_base64).toBe("CQ==");
    await c.deleteProjectSecret(pid, raw.id);

    await c.createRoom(pid, "secret-room");
    const rsec = await c.createRoomSecret(pid, "secret-room", new TextEncoder().encode("v1"), { name: "room-key", type: "opaque" });
    expect((await c.listRoomSecrets(pid, "secret-room")).map((x) => x.id)).toEqual([rsec.id]);
    await c.updateRoomSecret(pid, "secret-room", rsec.id, new TextEncoder().encode("v2"), { name: "room-key" });
    expect(atob((await c.getRoomSecret(pid, "secret-room", rsec.id)).data_base64)).toBe("v2");
    await c.deleteRoomSecret(pid, "secret-room", rsec.id);
    expect(await c.listRoomSecrets(pid, "secret-room")).toEqual([]);
  });

  it("webhooks, deliveries, replay, test", async () => {
    expect((await c.listWebhookEvents()).map((e) => e.event)).toContain("room.started");
    const w = await c.createWebhook(pid, { name: "hook", url: `http://127.0.0.1:${receiver.port}/hook`, events: ["*"] });
    expect((await c.listWebhooks(pid)).map((x) => x.id)).toContain(w.id);
    expect((await c.getWebhook(pid, w.id)).name).toBe("hook");
    expect((await c.updateWebhook(pid, w.id, { name: "hook2", url: w.url, events: ["room.started"] })).name).toBe("hook2");
    const ping = await c.testWebhook(pid, w.id);
    await until(async () => (await c.getWebhookDelivery(pid, w.id, ping.id)).status === "delivered");
    const replayed = await c.replayWebhookDelivery(pid, w.id, ping.id);
    expect(replayed.id).toBe(ping.id);
    expect((await c.listWebhookDeliveries(pid, w.id)).map((d) => d.id)).toContain(ping.id);
    await c.deleteWebhook(pid, w.id);
  });

  it("OAuth clients", async () => {
    const oc = await c.createOAuthClient(pid, {
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: ["https://app.example.com/cb"],
      scope: "profile",
    });
    expect(oc.client_secret).toBeTruthy();
    expect((await c.listOAuthClients(pid)).map((x) => x.client_id)).toContain(oc.client_id);
    expect((await c.getOAuthClient(pid, oc.client_id)).client_secret).toBe("");
    await c.updateOAuthClient(pid, oc.client_id, {
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: ["https://app.example.com/cb2"],
      scope: "profile",
    });
    expect((await c.getOAuthClient(pid, oc.client_id)).redirect_uris).toEqual(["https://app.example.com/cb2"]);
    await c.deleteOAuthClient(pid, oc.client_id);
  });

  it("shares and connect_share", async () => {
    await c.createRoom(pid, "shared");
    const sh = await c.createShare(pid, { room: "shared" });
    expect((await c.listShares(pid)).map((x) => x.id)).toContain(sh.id);
    expect((await c.updateShare(pid, sh.id, { room: "shared", note: "n" })).settings).toMatchObject({ note: "n" });
    const anon = recording(new Meshagent({ baseUrl: s.url, token: null }));
    expect(await anon.connectShare(sh.id)).toMatchObject({ room_name: "shared", project_id: pid });
    await c.deleteShare(pid, sh.id);
  });

  it("mailboxes", async () => {
    await c.createRoom(pid, "mail-room");
    const m = await c.createMailbox(pid, "inbox@mail.example.com", "mail-room", "email");
    expect(m).toMatchObject({ address: "inbox@mail.example.com", room: "mail-room", queue: "email" });
    expect((await c.getMailbox(pid, m.address)).queue).toBe("email");
    expect((await c.updateMailbox(pid, m.address, "mail-room", "other", { public: true })).queue).toBe("other");
    expect((await c.listMailboxes(pid)).map((x) => x.address)).toEqual([m.address]);
    expect((await c.listRoomMailboxes(pid, "mail-room")).map((x) => x.address)).toEqual([m.address]);
    await c.deleteMailbox(pid, m.address);
    expect(await c.listMailboxes(pid)).toEqual([]);
  });

  it("sessions: a live session's details, then terminate", async () => {
    await c.createRoom(pid, "live");
    const info = await c.connectRoom(pid, "live");
    const room = await joinRoom(info.room_url, info.jwt);
    try {
      await until(async () => (await c.listActiveSessions(pid)).length > 0);
      const [active] = await c.listActiveSessions(pid);
      expect(active.room_name).toBe("live");
      expect((await c.getSession(pid, active.id)) as Record<string, unknown>).toMatchObject({ id: active.id });
      expect(Array.isArray(await c.listSessionEvents(pid, active.id))).toBe(true);
      expect(Array.isArray(await c.listSessionSpans(pid, active.id))).toBe(true);
      expect(Array.isArray(await c.listSessionMetrics(pid, active.id))).toBe(true);
      await c.terminate(pid, active.id);
      await until(async () => (await c.listActiveSessions(pid)).length === 0);
      expect((await c.listRecentSessions(pid, { limit: 5 })).map((x) => x.id)).toContain(active.id);
    } finally {
      room.dispose();
    }
  });

  it("scheduled tasks and their runs", async () => {
    await c.createRoom(pid, "cron-room");
    const taskSpec = {
      version: "v1",
      kind: "ScheduledTask",
      metadata: { annotations: {} },
      schedule: "0 * * * *",
      active: true,
      once: false,
      queue: { name: "jobs", payload: { x: 1 } },
    } as never;
    const { task_id } = await c.createScheduledTask(pid, "cron-room", taskSpec);
    expect((await c.getScheduledTask(pid, task_id)).schedule).toBe("0 * * * *");
    const updated = await c.updateScheduledTask(pid, task_id, { ...(taskSpec as object), schedule: "30 * * * *" } as never);
    expect(updated.schedule).toBe("30 * * * *");
    expect((await c.listScheduledTasks(pid, { room_name: "cron-room" })).map((t) => t.id)).toEqual([task_id]);
    expect((await c.previewScheduledTask(pid, task_id, 3)).next_runs).toHaveLength(3);
    expect(await c.listScheduledTaskRuns(pid, task_id)).toEqual([]);
    await c.deleteScheduledTask(pid, task_id);
    await expect(c.getScheduledTask(pid, task_id)).rejects.toMatchObject({ status: 404 });
  });

  it("audit log, billing and usage", async () => {
    expect((await c.listAuditLog(pid, { limit: 5 })).length).toBeGreaterThan(0);
    expect((await c.getPricing()).currency).toBeTruthy();
    const b = await c.setAutoRecharge(pid, true, 20, 5);
    expect(b).toMatchObject({ auto_recharge_enabled: true });
    expect((await c.getBalance(pid)).currency).toBe(b.currency);
    expect(Array.isArray(await c.getRecentTransactions(pid))).toBe(true);
    const url = await c.getCheckoutUrl(pid, "https://app.example.com/ok", "https://app.example.com/cancel");
    expect(url).toMatch(/^http/);
    expect(await c.getCreditsCheckoutUrl(pid, "https://app.example.com/ok", "https://app.example.com/cancel", 10)).toMatch(/^http/);
    expect((await c.getSubscription(pid)).plan).toBe("free");
    await expect(c.cancelSubscription(pid)).rejects.toMatchObject({ status: 409, code: "no_subscription" });
    // The local provider's checkout page, confirmed by the signed-in admin, starts the subscription.
    const pw = "a fine passphrase";
    await s.ctx.users.setPassword(s.admin.userId, pw);
    const web = browser(s.url);
    await web.go("POST", "/accounts/sign-in", { email: s.admin.email, password: pw, next: "/accounts" });
    const page = await web.go("GET", new URL(url).pathname);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1];
    expect((await web.go("POST", new URL(url).pathname, { action: "confirm", csrf })).status).toBe(303);
    expect(await c.getSubscription(pid)).toMatchObject({ plan: "pro", status: "active" });
    expect(await c.cancelSubscription(pid, { at_period_end: true })).toMatchObject({ plan: "pro", cancel_at_period_end: true });
    expect(Array.isArray(await c.getUsage(pid, { users: [s.admin.userId], interval: "day" }))).toBe(true);
  });

  it("project isolation: another project's key sees a 404, never the data", async () => {
    const o = await s.otherProject();
    const other = recording(new Meshagent({ baseUrl: s.url, token: o.apiKey }));
    await expect(other.listRooms(pid)).rejects.toMatchObject({ status: 404 });
  });

  it("covers every public method, and every method of the seed reference", () => {
    const proto = Meshagent.prototype as unknown as Record<string, unknown>;
    const methods = Object.getOwnPropertyNames(proto).filter(
      (n) => n !== "constructor" && typeof Object.getOwnPropertyDescriptor(proto, n)!.value === "function",
    );
    expect(methods.filter((m) => !called.has(m))).toEqual([]);
    const seed = readFileSync(new URL("../../../test/fixtures/meshagent-rest-api.txt", import.meta.url), "utf8");
    const names = [...seed.matchAll(/^([a-z_]+)\(/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(80);
    const lower = new Set(methods.map((m) => m.toLowerCase()));
    expect(names.filter((n) => !lower.has(n.replace(/_/g, "")))).toEqual([]);
  });
});
