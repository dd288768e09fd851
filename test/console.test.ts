import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type TestServer } from "./helpers/server.js";
import { authorize, pkce, token } from "./helpers/oauth.js";
import { consoleCsp } from "../src/console/service.js";

/**
 * The console as the server serves it (no browser: test/console-browser.test.ts drives it in Chromium): the page and
 * its assets with their caching and CSP, a console that was not built, and its OAuth client (official, PKCE, public).
 */
describe("the web console at /console", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
    await s.ctx.users.setPassword(s.admin.userId, "a fine passphrase");
  });
  afterAll(() => s?.close());

  it("answers its page at /console/ and at every deep link, never cached, under a strict CSP", async () => {
    const bare = await fetch(`${s.url}/console`, { redirect: "manual" });
    expect(bare.status).toBe(302);
    expect(bare.headers.get("location")).toBe("/console/");
    for (const path of ["/console/", "/console/projects/x/rooms", "/console/callback?code=1&state=2"]) {
      const r = await fetch(s.url + path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get("content-type")).toMatch(/^text\/html/);
      expect(r.headers.get("cache-control")).toBe("no-cache");
      const csp = r.headers.get("content-security-policy")!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).not.toContain("unsafe-eval");
      expect(await r.text()).toContain('<div id="root">');
    }
  });

  it("serves the hashed assets immutable, and 404s what is not there (traversal included)", async () => {
    const html = await (await fetch(`${s.url}/console/`)).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.some((a) => a.endsWith(".js"))).toBe(true);
    expect(assets.some((a) => a.endsWith(".css"))).toBe(true);
    for (const a of assets) {
      const r = await fetch(s.url + a);
      expect(r.status, a).toBe(200);
      expect(r.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(r.headers.get("content-type")).toMatch(a.endsWith(".js") ? /javascript/ : /text\/css/);
    }
    // No inline script: everything the page runs comes from its own files.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    for (const bad of ["/console/assets/nope-123.js", "/console/assets/..%2f..%2fpackage.json", "/console/assets/%2e%2e/%2e%2e/package.json"]) {
      const r = await s.http("GET", bad, { token: null });
      expect(r.status, `${bad}: ${r.text}`).toBe(404);
      expect(r.json.error.code).toBe("not_found");
      expect(r.headers.get("cache-control") ?? "").not.toContain("immutable");
    }
  });

  it("signs people in as the official public client meshagent-console: PKCE, no consent page, no secret", async () => {
    const { verifier, challenge } = pkce();
    const redirectUri = `${s.url}/console/callback`;
    const a = await authorize(
      s.url,
      { email: s.admin.email, password: "a fine passphrase" },
      { clientId: "meshagent-console", redirectUri, challenge, scope: "profile project/* room/*" },
    );
    expect(a.error).toBeNull();
    expect(a.pages.some((p) => /consent/i.test(p) && /Allow/.test(p))).toBe(false);
    const t = await token(s.url, {
      grant_type: "authorization_code",
      code: a.code!,
      redirect_uri: redirectUri,
      client_id: "meshagent-console",
      code_verifier: verifier,
    });
    expect(t.status).toBe(200);
    expect(t.json.refresh_token).toBeUndefined();
    const projects = await s.http("GET", "/accounts/projects", { token: t.json.access_token });
    expect(projects.json.projects.map((p: { id: string }) => p.id)).toContain(s.admin.projectId);
    const me = await s.http("GET", "/accounts/profiles/me", { token: t.json.access_token });
    expect(me.json.email).toBe(s.admin.email);
  });

  it("refuses another redirect URI and a code without its verifier", async () => {
    const { challenge } = pkce();
    const q = new URLSearchParams({
      response_type: "code",
      client_id: "meshagent-console",
      redirect_uri: "https://evil.example/console/callback",
      scope: "project/*",
      code_challenge: challenge,
      code_challenge_method: "S256",
    });
    const r = await fetch(`${s.url}/oauth/authorize?${q}`, { redirect: "manual" });
    expect(r.status).toBe(400);
    expect(await r.text()).toMatch(/redirect_uri/);
    const a = await authorize(
      s.url,
      { email: s.admin.email, password: "a fine passphrase" },
      { clientId: "meshagent-console", redirectUri: `${s.url}/console/callback`, challenge },
    );
    const t = await token(s.url, {
      grant_type: "authorization_code",
      code: a.code!,
      redirect_uri: `${s.url}/console/callback`,
      client_id: "meshagent-console",
      code_verifier: pkce().verifier,
    });
    expect(t.status).toBe(400);
    expect(t.json.error).toBe("invalid_grant");
  });

  it("a console that was not built says how to build it", async () => {
    const empty = mkdtempSync(join(tmpdir(), "console-empty-"));
    const t = await startServer({ env: { MESHAGENT_CONSOLE_DIR: empty } });
    try {
      for (const path of ["/console/", "/console/projects", "/console/assets/index.js"]) {
        const r = await t.http("GET", path, { token: null });
        expect(r.status, path).toBe(503);
        expect(r.json.error.code).toBe("console_not_built");
        expect(r.json.error.message).toContain("npm run build -w @meshagent-oss/console");
      }
    } finally {
      await t.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("its CSP allows the room WebSockets of the public URL only", () => {
    expect(consoleCsp("https://mesh.example.com")).toContain("connect-src 'self' wss://mesh.example.com;");
    expect(consoleCsp("http://localhost:8080")).toContain("connect-src 'self' ws://localhost:8080;");
  });
});
