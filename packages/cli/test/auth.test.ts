import { spawn } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../../../test/helpers/server.js";
import { browser } from "../../../test/helpers/oauth.js";
import { approveInBrowser, BIN, cli, cliEnv, collect, settingsOf, tempHome, waitFor } from "./cli.js";

describe("meshagent auth and setup", () => {
  let s: TestServer;
  let who: { userId: string; email: string; password: string };
  beforeAll(async () => {
    s = await startServer();
    const u = await s.user(null);
    await s.ctx.users.setPassword(u.userId, "a fine passphrase");
    who = { userId: u.userId, email: u.email, password: "a fine passphrase" };
  });
  afterAll(() => s.close());

  /** `auth login` through the browser flow, on any free loopback port. */
  async function browserLogin(home: string) {
    const child = spawn(process.execPath, [BIN, "auth", "login", "--no-browser", "--port", "0", "--api-url", s.url], {
      env: cliEnv(home),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const done = collect(child);
    const [url] = await waitFor(child, "stderr", /http:\/\/\S+\/oauth\/authorize\?\S+/);
    const q = new URL(url).searchParams;
    expect(q.get("client_id")).toBe("p8xy1ZUi73jJUJbNfTg92HUSDpCSZJcc");
    expect(q.get("code_challenge_method")).toBe("S256");
    expect(q.get("redirect_uri")).toMatch(/^http:\/\/localhost:\d+\/callback$/);
    expect(q.get("redirect_uri")).not.toBe("http://localhost:8765/callback"); // --port 0: the server accepts another loopback port
    expect(await approveInBrowser(s.url, url, who)).toBe(200);
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    return r;
  }

  it("logs in through the browser flow and saves the profile (0600, the official layout); whoami shows the user", async () => {
    const home = tempHome();
    const r = await browserLogin(home);
    expect(r.stderr).toContain(`Signed in to ${s.url} as ${who.email}`);
    const file = join(home, ".meshagent", "settings.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, ".meshagent")).mode & 0o777).toBe(0o700);
    const set = settingsOf(home);
    expect(set.active_user_id).toBe(who.userId);
    const u = set.users[who.userId];
    expect(u.api_url).toBe(s.url);
    expect(u.profile).toMatchObject({ id: who.userId, email: who.email });
    expect(u.session).toMatchObject({ access_token: expect.any(String), refresh_token: expect.any(String), expires_at: expect.any(Number) });
    expect(u.session.expires_at).toBeGreaterThan(Date.now() / 1000 + 3000);
    expect(u.project).toEqual({ active_project: null, active_api_keys: {} });

    const w = await cli(home, ["auth", "whoami", "-o", "json"]);
    expect(w.code, w.stderr).toBe(0);
    expect(JSON.parse(w.stdout)).toMatchObject({
      email: who.email,
      user_id: who.userId,
      api_url: s.url,
      api_url_source: "profile",
      credentials: "session",
      credentials_source: "profile",
    });
    // A flag wins over the profile: the admin's API key, and whoami says where it came from.
    const k = await cli(home, ["auth", "whoami", "-o", "json", "--api-key", s.admin.apiKey]);
    expect(JSON.parse(k.stdout)).toMatchObject({ credentials: "api key", credentials_source: "flag", project: s.admin.projectId, project_source: "api key" });
    const e = await cli(home, ["auth", "whoami", "-o", "json"], { env: { MESHAGENT_TOKEN: s.admin.userToken } });
    expect(JSON.parse(e.stdout)).toMatchObject({ email: s.admin.email, credentials_source: "env" });

    // Near expiry, the session is refreshed (§11 step 4) and saved.
    u.session.expires_at = Math.floor(Date.now() / 1000) + 60;
    writeFileSync(file, JSON.stringify(set));
    const t = await cli(home, ["auth", "token"]);
    expect(t.code, t.stderr).toBe(0);
    const after = settingsOf(home).users[who.userId].session;
    expect(t.stdout.trim()).toBe(after.access_token);
    expect(after.access_token).not.toBe(u.session.access_token);
    expect(after.expires_at).toBeGreaterThan(Date.now() / 1000 + 3000);
    expect((await s.http("GET", "/accounts/profiles/me", { token: after.access_token })).json.id).toBe(who.userId);

    const out = await cli(home, ["auth", "logout"]);
    expect(out.code).toBe(0);
    const gone = await cli(home, ["auth", "whoami"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error: not signed in \(not_logged_in\)\nhint: run meshagent auth login/);
  });

  it("logs in with the device flow (--device): the code approved in a browser", async () => {
    const home = tempHome();
    const child = spawn(process.execPath, [BIN, "auth", "login", "--device", "--api-url", s.url], { env: cliEnv(home), stdio: ["ignore", "pipe", "pipe"] });
    const done = collect(child);
    const m = await waitFor(child, "stderr", /Open (\S+) and enter the code: ([A-Z]{4}-[A-Z]{4})/);
    expect(m[1]).toBe(`${s.url}/oauth/device`);
    const b = browser(s.url);
    let r = await b.go("GET", "/oauth/device");
    r = await b.go("POST", "/oauth/device", { xsrf: /name="xsrf" value="([^"]+)"/.exec(r.text)![1], user_code: m[2] });
    r = await b.go("POST", "/oauth/device", {
      xsrf: /name="xsrf" value="([^"]+)"/.exec(r.text)![1],
      user_code: /name="user_code" value="([^"]+)"/.exec(r.text)![1],
      confirm: "yes",
    });
    for (let i = 0; i < 8 && r.location; i++) {
      r = await b.go("GET", r.location);
      const login = /action="(\/oauth\/interaction\/[^"]+\/login)"/.exec(r.text);
      if (login) r = await b.go("POST", login[1], { email: who.email, password: who.password });
    }
    expect(r.text).toContain("is signed in");
    const res = await done;
    expect(res.code, res.stderr).toBe(0);
    expect(settingsOf(home).users[who.userId].session.access_token).toEqual(expect.any(String));
    const w = await cli(home, ["auth", "whoami", "-o", "json"]);
    expect(JSON.parse(w.stdout).email).toBe(who.email);
  });

  it("setup --project NAME --yes after login creates the project and an API key and activates both", async () => {
    const home = tempHome();
    await browserLogin(home);
    const r = await cli(home, ["setup", "--api-url", s.url, "--project", "cli-setup", "--yes", "-o", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ email: who.email, project_name: "cli-setup", api_key: "created" });
    const u = settingsOf(home).users[who.userId];
    expect(u.project.active_project).toBe(out.project_id);
    expect(u.project.active_api_keys[out.project_id]).toMatch(/^ma-/);
    // The project is the active one for later commands, and the new key works on its own.
    const keys = await cli(home, ["api-key", "list", "-o", "json"]);
    expect(keys.code, keys.stderr).toBe(0);
    expect(JSON.parse(keys.stdout).map((k: any) => k.name)).toContain("meshagent-cli");
    const rooms = await cli(tempHome(), ["rooms", "list", "-o", "json"], {
      env: { MESHAGENT_API_URL: s.url, MESHAGENT_API_KEY: u.project.active_api_keys[out.project_id] },
    });
    expect(rooms.code, rooms.stderr).toBe(0);
    expect(JSON.parse(rooms.stdout)).toEqual([]);
    // Again: the project and key are reused.
    const again = await cli(home, ["setup", "--project", "cli-setup", "--yes", "-o", "json"]);
    expect(JSON.parse(again.stdout)).toMatchObject({ project_id: out.project_id, api_key: "existing" });
    const list = await cli(home, ["project", "list", "-o", "table"]);
    expect(list.stdout).toMatch(new RegExp(`\\*\\s+${out.project_id}\\s+cli-setup`));

    // project create / activate and api-key create --activate / activate / delete keep the profile in step.
    const other = JSON.parse((await cli(home, ["project", "create", "cli-other", "-o", "json"])).stdout);
    expect((await cli(home, ["project", "activate", "nope"])).code).toBe(1);
    expect((await cli(home, ["project", "activate", other.id])).code).toBe(0);
    expect(settingsOf(home).users[who.userId].project.active_project).toBe(other.id);
    const k = JSON.parse((await cli(home, ["api-key", "create", "k2", "--activate", "-o", "json"])).stdout);
    expect(settingsOf(home).users[who.userId].project.active_api_keys[other.id]).toBe(k.value);
    expect((await cli(home, ["api-key", "activate", u.project.active_api_keys[out.project_id]])).code).toBe(0);
    expect(settingsOf(home).users[who.userId].project.active_api_keys[out.project_id]).toBe(u.project.active_api_keys[out.project_id]);
    expect((await cli(home, ["api-key", "activate", "not-a-key"])).code).toBe(2);
    expect((await cli(home, ["api-key", "delete", k.id])).code).toBe(0);
    expect(JSON.parse((await cli(home, ["api-key", "list", "-o", "json"])).stdout)).toEqual([]);
  });
});
