import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../../../test/helpers/server.js";
import { cli, tempHome } from "./cli.js";

const SPEC = (name: string, image = "img:1", extra = "") => `version: v1
kind: Service
metadata:
  name: ${name}
${extra}ports:
  - num: 8080
    type: http
    endpoints:
      - path: /agent
        meshagent:
          identity: bot
container:
  image: ${image}
`;

describe("meshagent commands against a server", () => {
  let s: TestServer;
  let env: Record<string, string>;
  const home = tempHome();
  const file = (name: string, text: string) => {
    const f = join(home, name);
    writeFileSync(f, text);
    return f;
  };
  const run = (args: string[], extra: Record<string, string> = {}) => cli(home, args, { env: { ...env, ...extra } });
  /** A read command with -o json: exit 0 and JSON on stdout. */
  const json = async (args: string[], extra: Record<string, string> = {}) => {
    const r = await run([...args, "-o", "json"], extra);
    expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true" } });
    env = { MESHAGENT_API_URL: s.url, MESHAGENT_API_KEY: s.admin.apiKey };
  });
  afterAll(() => s.close());

  it("exit codes, empty lists, errors with hints, JSON errors, --curl", async () => {
    // An empty list is no error: [] in JSON, a "no rooms" line in a table.
    expect(await json(["rooms", "list"])).toEqual([]);
    const table = await run(["rooms", "list", "-o", "table"]);
    expect(table).toMatchObject({ code: 0, stdout: "", stderr: "no rooms\n" });

    const missing = await run(["rooms", "get", "nope", "-o", "json"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.split("\n")[0]).toMatch(/^error: .+ \(not_found\)$/);
    expect(JSON.parse(missing.stdout)).toMatchObject({ code: "not_found", message: expect.any(String) });

    const bad = await run(["rooms", "list", "-o", "json", "--project", s.admin.projectId], { MESHAGENT_API_KEY: "ma-nope" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/\nhint: run `meshagent auth login` or set MESHAGENT_API_KEY\n$/);
    expect(JSON.parse(bad.stdout)).toMatchObject({ hint: "run `meshagent auth login` or set MESHAGENT_API_KEY" });

    expect((await run(["rooms", "list", "--bogus"])).code).toBe(2);
    expect((await run(["rooms", "get"])).code).toBe(2);
    expect((await run(["nonsense"])).code).toBe(2);
    expect((await run(["--help"])).stdout).toContain("MESHAGENT_API_KEY > MESHAGENT_TOKEN");

    // --curl prints the request, the key redacted, and sends nothing.
    const curl = await run(["rooms", "create", "--name", "curl-room", "--curl"]);
    expect(curl.code, curl.stderr).toBe(0);
    expect(curl.stdout).toBe(
      `curl -X POST '${s.url}/accounts/projects/${s.admin.projectId}/rooms' -H 'accept: application/json' -H 'authorization: Bearer ma-…REDACTED' -H 'content-type: application/json' --data-raw '{"name":"curl-room"}'\n`,
    );
    expect(curl.stdout).not.toContain(s.admin.apiKey.slice(10));
    expect(await json(["rooms", "list"])).toEqual([]);
    const svc = await run(["service", "create", "-f", file("curl.yaml", SPEC("curl-svc")), "--curl"]);
    expect(svc.stdout).toMatch(/^curl -X POST '.+\/services' .*--data-raw '\{"version":"v1","kind":"Service","metadata":\{"name":"curl-svc"\}/);
    expect(await json(["service", "list"])).toEqual([]);
    const up = await run(["storage", "cp", "./package.json", "storage:x.json", "--curl"]);
    expect(up.stdout).toMatch(/^curl -X POST '.+\/storage\/upload\?path=x\.json' .*--data-binary '@\.\/package\.json'\n$/);
  });

  it("rooms and grants: create, list, get, update, delete", async () => {
    const room = await json(["rooms", "create", "--name", "r1", "--metadata", '{"a":1}']);
    expect(room).toMatchObject({ name: "r1", metadata: { a: 1 } });
    expect((await run(["rooms", "create", "--name", "r1"])).code).toBe(1);
    expect((await json(["rooms", "create", "--name", "r1", "--if-not-exists"])).id).toBe(room.id);
    expect((await json(["rooms", "list"])).map((r: any) => r.name)).toEqual(["r1"]);
    expect((await json(["rooms", "get", "r1"])).id).toBe(room.id);
    expect(await json(["rooms", "update", "r1", "--new-name", "r2"])).toMatchObject({ id: room.id, name: "r2", metadata: { a: 1 } });

    const u = await s.user({});
    const g = await json(["grants", "create", "--room", "r2", "--user", u.userId, "--permissions", '{"messaging":{}}']);
    expect(g).toMatchObject({ user_id: u.userId, room: { id: room.id } });
    expect((await json(["grants", "list"])).map((x: any) => x.user_id)).toEqual([u.userId]);
    expect((await json(["grants", "list", "--room", "r2"])).length).toBe(1);
    expect((await json(["grants", "get", "--room", "r2", "--user", u.userId])).permissions).toHaveProperty("messaging");
    expect((await json(["grants", "update", "--room", "r2", "--user", u.userId, "--permissions", '{"storage":{}}'])).permissions).toHaveProperty("storage");
    expect((await run(["grants", "delete", "--room", "r2", "--user", u.userId])).code).toBe(0);
    expect(await json(["grants", "list"])).toEqual([]);

    expect((await run(["rooms", "delete", "r2"])).code).toBe(0);
    expect(await json(["rooms", "list"])).toEqual([]);
  });

  it("service: create, --dry-run diff, upsert refused without --replace, --replace, validate, list/show/delete, templates, room services", async () => {
    const f = file("svc.yaml", SPEC("web"));
    const created = await json(["service", "create", "-f", f]);
    expect(created).toMatchObject({ id: expect.any(String), metadata: { name: "web" } });

    const same = await run(["service", "create", "-f", f, "--dry-run"]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).toMatch(/^no changes/);
    expect(same.stdout).toBe("");

    const f2 = file("svc2.yaml", SPEC("web", "img:2"));
    const dry = await run(["service", "create", "-f", f2, "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^--- stored ${created.id}\\n\\+\\+\\+ .*svc2\\.yaml\\n@@ `));
    expect(dry.stdout).toContain("\n-  image: img:1\n+  image: img:2\n");
    expect((await json(["service", "show", created.id])).container.image).toBe("img:1"); // dry-run wrote nothing

    const refused = await run(["service", "create", "-f", f2]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: service web exists in the project .*\(already_exists\)\nhint: pass --replace/);
    const replaced = await json(["service", "create", "-f", f2, "--replace"]);
    expect(replaced).toMatchObject({ id: created.id, container: { image: "img:2" } });
    expect((await json(["service", "list"])).map((x: any) => x.id)).toEqual([created.id]);

    // The annotation names the service, whatever its name.
    const ann = `  annotations:\n    meshagent.service.id: web-v2\n`;
    const a = await json(["service", "create", "-f", file("svc3.yaml", SPEC("web-renamed", "img:3", ann))]);
    expect(a.id).not.toBe(created.id);
    const moved = await json(["service", "update", "-f", file("svc4.yaml", SPEC("web-other", "img:4", ann))]);
    expect(moved).toMatchObject({ id: a.id, metadata: { name: "web-other" } });
    const nothing = await run(["service", "update", "-f", file("svc5.yaml", SPEC("not-there"))]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toMatch(/\(not_found\)\nhint: create it with meshagent service create/);

    expect((await run(["service", "validate", "-f", f])).code).toBe(0);
    const invalid = await run(["service", "validate", "-f", file("bad.yaml", "version: v2\nkind: Nope\nmetadata: {}\n")]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/version must be "v1".*kind must be Service or ServiceTemplate.*metadata\.name is required \(invalid_spec\)/);
    expect((await json(["service", "list"])).length).toBe(2); // validate stored nothing

    const tpl = file(
      "tpl.yaml",
      ["version: v1", "kind: ServiceTemplate", "metadata:", "  name: {{ name }}", "variables:", "  - name: name", "container:", "  image: img:tpl", ""].join(
        "\n",
      ),
    );
    expect((await json(["service", "render-template", "-f", tpl, "--value", "name=from-tpl"])).metadata.name).toBe("from-tpl");
    expect((await run(["service", "validate", "-f", tpl, "--value", "name=ok"])).code).toBe(0);
    const t = await json(["service", "create", "-f", tpl, "--value", "name=from-tpl"]);
    expect(t.metadata.name).toBe("from-tpl");
    expect((await run(["service", "create", "-f", tpl, "--value", "name=from-tpl"])).code).toBe(1);
    const tdry = await run(["service", "create", "-f", tpl, "--value", "name=from-tpl", "--dry-run"]);
    expect(tdry.code, tdry.stderr).toBe(0);
    expect(tdry.stdout).not.toMatch(/^[-+](kind|variables)/m); // compared as the Service it renders to

    await json(["rooms", "create", "--name", "svc-room"]);
    const rs = await json(["service", "create", "-f", f, "--room", "svc-room"]);
    expect((await json(["service", "list", "--room", "svc-room"])).map((x: any) => x.id)).toEqual([rs.id]);
    expect((await json(["service", "show", rs.id, "--room", "svc-room"])).metadata.name).toBe("web");
    expect((await run(["service", "delete", rs.id, "--room", "svc-room"])).code).toBe(0);
    for (const id of [created.id, a.id, t.id]) expect((await run(["service", "delete", id])).code).toBe(0);
    expect(await json(["service", "list"])).toEqual([]);
  });

  it("secrets, webhooks, mailboxes: the JSON of every read command parses", async () => {
    const k = await json(["secret", "keys", "create", "--name", "k1", "--data", "A=1", "--data", "B=2"]);
    const d = await json(["secret", "docker", "create", "--name", "d1", "--server", "r.io", "--username", "u", "--password", "p"]);
    const list = await json(["secret", "list"]);
    expect(list.map((x: any) => [x.id, x.name, x.type]).sort()).toEqual(
      [
        [k.id, "k1", "keys"],
        [d.id, "d1", "docker"],
      ].sort(),
    );
    expect(JSON.stringify(list)).not.toContain("data_base64");
    expect((await run(["secret", "keys", "update", k.id, "--data", "A=3"])).code).toBe(0);
    expect((await run(["secret", "update", d.id, "--password", "p2"])).code).toBe(0);
    const stored = await s.client().listSecrets(s.admin.projectId);
    expect(stored.find((x) => x.id === k.id)).toMatchObject({ data: { A: "3" } });
    expect(stored.find((x) => x.id === d.id)).toMatchObject({ server: "r.io", password: "p2" });
    for (const id of [k.id, d.id]) expect((await run(["secret", "delete", id])).code).toBe(0);
    expect(await json(["secret", "list"])).toEqual([]);

    const w = await json(["webhook", "create", "--name", "h", "--url", "http://127.0.0.1:9/hook", "-e", "room.started"]);
    expect(w).toMatchObject({ name: "h", events: ["room.started"] });
    expect((await json(["webhook", "list"])).map((x: any) => x.id)).toEqual([w.id]);
    expect((await json(["webhook", "show", w.id])).url).toBe("http://127.0.0.1:9/hook");
    expect(await json(["webhook", "update", w.id, "--description", "d2"])).toMatchObject({ description: "d2", events: ["room.started"] });
    const ping = await json(["webhook", "test", w.id]);
    expect(ping).toMatchObject({ id: expect.any(String), event: "webhook.test" });
    expect((await json(["webhook", "deliveries", w.id])).map((x: any) => x.id)).toContain(ping.id);
    expect((await json(["webhook", "replay", w.id, ping.id])).id).toBe(ping.id);
    expect((await run(["webhook", "delete", w.id])).code).toBe(0);
    expect((await run(["webhook", "show", w.id])).code).toBe(1);

    await json(["rooms", "create", "--name", "mail-room"]);
    const m = await json(["mailbox", "create", "box@mail.example.com", "--room", "mail-room", "--queue", "email"]);
    expect(m).toMatchObject({ address: "box@mail.example.com", room: "mail-room", queue: "email" });
    expect((await json(["mailbox", "show", "box@mail.example.com"])).queue).toBe("email");
    expect((await json(["mailbox", "list"])).length).toBe(1);
    expect((await json(["mailbox", "list", "--room", "mail-room"])).length).toBe(1);
    expect((await json(["mailbox", "update", "box@mail.example.com", "--room", "mail-room", "--queue", "q2", "--public"])).public).toBe(true);
    expect((await run(["mailbox", "delete", "box@mail.example.com"])).code).toBe(0);
    expect(await json(["mailbox", "list"])).toEqual([]);
  });

  it("sessions, scheduled tasks, billing, api keys, projects, token generate, completion", async () => {
    expect(await json(["session", "list"])).toEqual([]);
    expect((await run(["session", "show", "00000000-0000-0000-0000-000000000000"])).code).toBe(1);

    await json(["rooms", "create", "--name", "task-room"]);
    const spec = file(
      "task.yaml",
      "version: v1\nkind: ScheduledTask\nmetadata:\n  name: hourly\nschedule: 0 * * * *\nactive: true\nonce: false\nqueue:\n  name: jobs\n  payload: {}\n",
    );
    const added = await json(["scheduled-task", "add", "--room", "task-room", "-f", spec]);
    const id = added.task_id ?? added.id;
    expect(id).toEqual(expect.any(String));
    expect((await json(["scheduled-task", "list"])).map((x: any) => x.id)).toEqual([id]);
    expect((await json(["scheduled-task", "list", "--room", "task-room"])).length).toBe(1);
    expect((await json(["scheduled-task", "show", id])).schedule).toBe("0 * * * *");
    writeFileSync(
      spec,
      "version: v1\nkind: ScheduledTask\nmetadata:\n  name: daily\nschedule: 0 3 * * *\nactive: true\nonce: false\nqueue:\n  name: jobs\n  payload: {}\n",
    );
    expect((await json(["scheduled-task", "update", id, "-f", spec])).schedule).toBe("0 3 * * *");
    expect(await json(["scheduled-task", "runs", id])).toEqual([]);
    expect((await run(["scheduled-task", "delete", id])).code).toBe(0);

    expect(await json(["billing", "balance"])).toEqual(expect.any(Object));
    expect(Array.isArray(await json(["billing", "transactions"]))).toBe(true);
    expect(Array.isArray(await json(["billing", "usage"]))).toBe(true);

    const keys = await json(["api-key", "list"]);
    expect(keys.map((x: any) => x.name)).toContain("bootstrap");
    const projects = await json(["project", "list"], { MESHAGENT_API_KEY: "", MESHAGENT_TOKEN: s.admin.userToken });
    expect(projects.map((p: any) => p.id)).toContain(s.admin.projectId);

    // A participant token signed locally verifies on the server.
    const jwt = await run(["token", "generate", "--room", "task-room", "--identity", "bot", "--role", "agent"]);
    expect(jwt.code, jwt.stderr).toBe(0);
    const v = await s.http("POST", "/api/participant-token/validate", { token: null, json: { token: jwt.stdout.trim() } });
    expect(v.status, v.text).toBe(200);
    expect(v.json).toMatchObject({
      name: "bot",
      sub: s.admin.projectId,
      grants: expect.arrayContaining([
        { name: "room", scope: "task-room" },
        { name: "role", scope: "agent" },
      ]),
    });

    const bash = await run(["completion", "bash"]);
    expect(bash.code).toBe(0);
    expect(bash.stdout).toContain("complete -o default -F _meshagent meshagent");
    expect(bash.stdout).toMatch(/"service"\) words="create update list show delete validate render-template/);
    expect((await run(["completion", "fish"])).stdout).toContain("complete -c meshagent -n '__fish_seen_subcommand_from storage' -a cp");
    expect((await run(["completion", "tcsh"])).code).toBe(2);
  });
});
