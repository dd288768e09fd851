import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { startServer, type TestServer } from "./helpers/server.js";
import { ROOT, TSX_LOADER } from "./helpers/process.js";
import { until } from "./helpers/room-client.js";
import { smtpRelay } from "./helpers/smtp-relay.js";

const formOf = (fields: Record<string, string>, cookie?: string) => ({
  body: new URLSearchParams(fields).toString(),
  headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html", ...(cookie ? { cookie } : {}) },
});
const sessionCookie = (h: Headers) => /meshagent_session=([^;]+)/.exec(h.get("set-cookie") ?? "")?.[1];
const csrfIn = (html: string) => /name="csrf" value="([0-9a-f]+)"/.exec(html)![1];

describe("sign-in for people (/accounts)", () => {
  let s: TestServer;
  const logs: string[] = [];
  beforeAll(async () => {
    s = await startServer({ logStream: { write: (l) => void logs.push(l) }, env: { MESHAGENT_LOG_LEVEL: "info" } });
  });
  afterAll(() => s.close());
  /** A browser-like request that does not follow redirects (the test reads the 303s). */
  const http = async (method: string, path: string, o: { body?: string; json?: unknown; headers?: Record<string, string> } = {}) => {
    const res = await fetch(s.url + path, {
      method,
      redirect: "manual",
      headers: { ...(o.json !== undefined ? { "content-type": "application/json" } : {}), ...(o.headers ?? {}) },
      body: o.json !== undefined ? JSON.stringify(o.json) : o.body,
    });
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      // HTML
    }
    return { status: res.status, headers: res.headers, text, json };
  };
  const person = async (password = "a fine passphrase") => {
    const u = await s.user({});
    await s.ctx.users.setPassword(u.userId, password);
    return { ...u, password };
  };
  const signIn = (email: string, password: string, next = "/accounts") => http("POST", "/accounts/sign-in", formOf({ email, password, next }));

  it("sign in → a session cookie → the account page; sign out ends it", async () => {
    const p = await person();
    const page = await http("GET", "/accounts/sign-in", { headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<label for="email">/);
    const r = await signIn(p.email.toUpperCase(), p.password);
    expect(r.status).toBe(303);
    expect(r.headers.get("location")).toBe("/accounts");
    const c = sessionCookie(r.headers)!;
    expect(r.headers.get("set-cookie")).toMatch(/HttpOnly/i);
    expect(r.headers.get("set-cookie")).toMatch(/SameSite=Lax/i);
    const home = await http("GET", "/accounts", { headers: { cookie: `meshagent_session=${c}` } });
    expect(home.status).toBe(200);
    expect(home.text).toContain(p.email);
    // signed in already: the sign-in page sends you on
    expect((await http("GET", "/accounts/sign-in?next=/accounts/password", { headers: { cookie: `meshagent_session=${c}` } })).headers.get("location")).toBe(
      "/accounts/password",
    );
    // sign out needs the page's csrf value
    expect((await http("POST", "/accounts/sign-out", formOf({ csrf: "nope" }, `meshagent_session=${c}`))).status).toBe(403);
    const out = await http("POST", "/accounts/sign-out", formOf({ csrf: csrfIn(home.text) }, `meshagent_session=${c}`));
    expect([out.status, out.headers.get("location")]).toEqual([303, "/accounts/sign-in"]);
    const after = await http("GET", "/accounts", { headers: { cookie: `meshagent_session=${c}` } });
    expect([after.status, after.headers.get("location")]).toEqual([303, "/accounts/sign-in?next=%2Faccounts"]);
    expect(logs.join("")).not.toContain(p.password);
    expect(logs.join("")).not.toContain(c);
  });

  it("wrong credentials are one message; an open redirect is refused; API clients get JSON errors", async () => {
    const p = await person();
    const wrong = await signIn(p.email, "not the password");
    expect(wrong.status).toBe(401);
    expect(wrong.text).toMatch(/role="alert"[^>]*>wrong email or password/);
    const unknown = await signIn("nobody@example.com", "whatever it is");
    expect(unknown.text).toMatch(/wrong email or password/);
    const json = await http("POST", "/accounts/sign-in", { json: { email: p.email, password: "nope" } });
    expect([json.status, json.json.error.code]).toEqual([401, "invalid_credentials"]);
    for (const next of ["https://evil.example/", "//evil.example/", "/\\\\evil.example"]) {
      const r = await signIn(p.email, p.password, next);
      expect(r.headers.get("location"), next).toBe("/accounts");
    }
  });

  it("5 failures lock the account for 15 minutes with a clear message; other accounts are unaffected", async () => {
    const p = await person();
    const q = await person();
    for (let i = 0; i < 5; i++) expect((await signIn(p.email, `wrong ${i}`)).status).toBe(401);
    const locked = await signIn(p.email, p.password);
    expect(locked.status).toBe(429);
    expect(locked.text).toMatch(/too many failed sign-ins for this account: try again in 15 minute/);
    expect((await signIn(q.email, q.password)).status).toBe(303);
  });

  it("a disabled account cannot sign in and its session stops", async () => {
    const p = await person();
    const c = sessionCookie((await signIn(p.email, p.password)).headers)!;
    await s.ctx.admin.updateUser(s.admin.userId, p.userId, { disabled: true });
    expect((await http("GET", "/accounts", { headers: { cookie: `meshagent_session=${c}` } })).status).toBe(303);
    const r = await signIn(p.email, p.password);
    expect(r.status).toBe(403);
    expect(r.text).toMatch(/disabled/);
  });

  it("password change: the current one is required, the new one is checked, other browsers are signed out", async () => {
    const p = await person();
    const one = sessionCookie((await signIn(p.email, p.password)).headers)!;
    const two = sessionCookie((await signIn(p.email, p.password)).headers)!;
    const page = await http("GET", "/accounts/password", { headers: { cookie: `meshagent_session=${one}` } });
    const csrf = csrfIn(page.text);
    const post = (f: Record<string, string>) => http("POST", "/accounts/password", formOf({ csrf, ...f }, `meshagent_session=${one}`));
    expect((await post({ current: "wrong", password: "new passphrase!", password_confirm: "new passphrase!" })).text).toMatch(/current password is wrong/);
    expect((await post({ current: p.password, password: "short", password_confirm: "short" })).text).toMatch(/at least 10 characters/);
    const ok = await post({ current: p.password, password: "new passphrase!", password_confirm: "new passphrase!" });
    expect(ok.status).toBe(200);
    expect(ok.text).toMatch(/Password changed/);
    expect((await http("GET", "/accounts", { headers: { cookie: `meshagent_session=${one}` } })).status).toBe(200);
    expect((await http("GET", "/accounts", { headers: { cookie: `meshagent_session=${two}` } })).status).toBe(303);
    expect((await signIn(p.email, p.password)).status).toBe(401);
    expect((await signIn(p.email, "new passphrase!")).status).toBe(303);
  });

  it("the password bootstrap prints signs in", async () => {
    const dir = s.ctx.config.dataDir;
    const out = execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--email", "operator@example.com"], {
      cwd: dir,
      env: { ...process.env, MESHAGENT_DATA_DIR: dir, MESHAGENT_DATABASE_URL: s.ctx.config.databaseUrl, MESHAGENT_LOG_LEVEL: "warn" },
      encoding: "utf8",
    });
    const password = /Password\s+(\S+)\s+<- shown once/.exec(out)![1];
    expect((await signIn("operator@example.com", password)).status).toBe(303);
  });

  it("sign-up follows the server's policy: invite and closed refuse, open creates and signs in; a taken email is a 409", async () => {
    const setPolicy = (p: string) => s.http("PUT", "/admin/settings", { token: s.admin.userToken, json: { signup_policy: p } });
    const email = `signup-${Date.now()}@example.com`;
    const form = { email, password: "a sign-up passphrase", password_confirm: "a sign-up passphrase" };
    await setPolicy("invite");
    const page = await http("GET", "/accounts/sign-up", { headers: { accept: "text/html" } });
    expect([page.status, page.text]).toEqual([403, expect.stringContaining("by invitation")]);
    expect((await http("GET", "/accounts/sign-in", { headers: { accept: "text/html" } })).text).not.toContain("/accounts/sign-up");
    const json = await http("POST", "/accounts/sign-up", {
      body: new URLSearchParams(form).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect([json.status, json.json.error.code]).toEqual([403, "signup_closed"]);
    await setPolicy("open");
    expect((await http("GET", "/accounts/sign-in", { headers: { accept: "text/html" } })).text).toContain('href="/accounts/sign-up"');
    const weak = await http("POST", "/accounts/sign-up", formOf({ ...form, password: "1234567890", password_confirm: "1234567890" }));
    expect([weak.status, weak.text]).toEqual([400, expect.stringContaining("most used")]);
    const ok = await http("POST", "/accounts/sign-up", formOf({ ...form, next: "/accounts/password" }));
    expect([ok.status, ok.headers.get("location")]).toEqual([303, "/accounts/password"]);
    expect(sessionCookie(ok.headers)).toBeTruthy();
    expect(await s.ctx.users.byEmail(email)).toMatchObject({ invited: 0 });
    expect((await http("POST", "/accounts/sign-up", formOf(form))).status).toBe(409);
    await setPolicy("closed");
    expect((await http("GET", "/accounts/sign-up", { headers: { accept: "text/html" } })).text).toContain("takes no new accounts");
    await setPolicy("invite");
  });

  it("two-step verification: the code after the password, once only; wrong codes count toward the lockout", async () => {
    const { generate } = await import("otplib");
    const p = await person();
    const { secret } = s.ctx.signIn.totpSetup(p.email);
    const now = Math.floor(Date.now() / 1000);
    await s.ctx.signIn.enableTotp(p.userId, secret, await generate({ secret, epoch: now }));
    const first = await signIn(p.email, p.password);
    expect([first.status, sessionCookie(first.headers)]).toEqual([200, undefined]);
    expect(first.text).toContain('<label for="code">Authentication code</label>');
    const pending = /name="pending" value="([^"]+)"/.exec(first.text)![1];
    const code = (c: string) => http("POST", "/accounts/sign-in/code", formOf({ pending, code: c, next: "/accounts" }));
    const wrong = await code("123456");
    expect([wrong.status, wrong.text]).toEqual([401, expect.stringContaining("not right")]);
    // the code used to turn it on is spent; the next step's works, once
    expect((await code(await generate({ secret, epoch: now }))).status).toBe(401);
    const next = await generate({ secret, epoch: now + 30 });
    const ok = await code(next);
    expect([ok.status, ok.headers.get("location")]).toEqual([303, "/accounts"]);
    expect((await code(next)).status).toBe(401);
    // a forged or stale pending value gets nowhere
    expect((await http("POST", "/accounts/sign-in/code", formOf({ pending: "v2:nope", code: next }))).status).toBe(400);
    for (let i = 0; i < 4; i++) await code("000000");
    const locked = await code("111111");
    expect([locked.status, locked.text]).toEqual([429, expect.stringContaining("too many failed sign-ins")]);
    expect(logs.join("")).not.toContain(secret);
  });
});

describe("password reset by mail", () => {
  let s: TestServer;
  let relay: Awaited<ReturnType<typeof smtpRelay>>;
  beforeAll(async () => {
    relay = await smtpRelay();
    s = await startServer({ env: { MESHAGENT_SMTP_RELAY_URL: `smtp://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    await s.close();
    await relay.close();
  });
  const post = (path: string, fields: Record<string, string>) =>
    fetch(s.url + path, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
      body: new URLSearchParams(fields).toString(),
    }).then(async (r) => ({ status: r.status, text: await r.text(), headers: r.headers }));
  const get = (path: string) => fetch(s.url + path, { headers: { accept: "text/html" } }).then(async (r) => ({ status: r.status, text: await r.text() }));

  it("request → mail → choose → signed in with the new password; the old one and other sessions end; the link works once", async () => {
    const u = await s.user({});
    await s.ctx.users.setPassword(u.userId, "the old passphrase");
    const old = sessionCookie((await post("/accounts/sign-in", { email: u.email, password: "the old passphrase" })).headers)!;
    const asked = await post("/accounts/password-reset", { email: u.email });
    expect(asked.status).toBe(200);
    expect(asked.text).toMatch(/Check your mail/);
    await until(() => relay.mails.some((m) => m.to === u.email), 10_000, "the reset mail");
    const link = /https?:\/\/\S+\/accounts\/password-reset\/choose\?token=[\w%-]+/.exec(relay.mails.find((m) => m.to === u.email)!.text)![0];
    const token = decodeURIComponent(new URL(link).searchParams.get("token")!);
    const page = await get(new URL(link).pathname + new URL(link).search);
    expect(page.status).toBe(200);
    expect(page.text).toContain(u.email);
    expect((await post("/accounts/password-reset/choose", { token, password: "short", password_confirm: "short" })).text).toMatch(/at least 10/);
    const done = await post("/accounts/password-reset/choose", { token, password: "a brand new phrase", password_confirm: "a brand new phrase" });
    expect(done.status).toBe(200);
    expect((await post("/accounts/sign-in", { email: u.email, password: "the old passphrase" })).status).toBe(401);
    expect((await post("/accounts/sign-in", { email: u.email, password: "a brand new phrase" })).status).toBe(303);
    expect((await fetch(`${s.url}/accounts`, { redirect: "manual", headers: { cookie: `meshagent_session=${old}` } })).status).toBe(303);
    expect((await get(new URL(link).pathname + new URL(link).search)).status).toBe(410);
    // a second request within a minute sends nothing more
    await post("/accounts/password-reset", { email: u.email });
    await new Promise((r) => setTimeout(r, 300));
    expect(relay.mails.filter((m) => m.to === u.email)).toHaveLength(1);
  });

  it("an unknown email gets the same answer and no mail; an expired link is a 410", async () => {
    const before = relay.mails.length;
    const r = await post("/accounts/password-reset", { email: "nobody-here@example.com" });
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/Check your mail/);
    await new Promise((res) => setTimeout(res, 300));
    expect(relay.mails.length).toBe(before);
    const u = await s.user({});
    await post("/accounts/password-reset", { email: u.email });
    await until(() => relay.mails.some((m) => m.to === u.email), 10_000, "the reset mail");
    await s.ctx.store.db
      .updateTable("password_resets")
      .set({ expires_at: Date.now() - 1 })
      .where("user_id", "=", u.userId)
      .execute();
    const link = /https?:\/\/\S+\/accounts\/password-reset\/choose\?token=[\w%-]+/.exec(relay.mails.find((m) => m.to === u.email)!.text)![0];
    const page = await get(new URL(link).pathname + new URL(link).search);
    expect(page.status).toBe(410);
    expect(page.text).toMatch(/expired/);
  });
});
