import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, ConfigSchema, configEntries, loadConfig } from "../src/config.js";
import { README, renderConfigTable, tableInReadme, withTable } from "../scripts/config-table.js";
import { ROOT, TSX_LOADER } from "./helpers/process.js";

const KEY = "ab".repeat(32);
const tmp = () => mkdtempSync(join(tmpdir(), "meshagent-config-"));
/** A config from exactly these variables (never process.env), in a fresh data directory. */
const load = (vars: Record<string, string> = {}) => loadConfig({ MESHAGENT_DATA_DIR: tmp(), MESHAGENT_MASTER_KEY: KEY, ...vars });
const errorOf = (vars: Record<string, string>): ConfigError => {
  try {
    load(vars);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`no error for ${JSON.stringify(vars)}`);
};

describe("README configuration table", () => {
  it("is the table rendered from ConfigSchema (run `npm run docs:config` after changing the schema)", () => {
    const readme = readFileSync(README, "utf8");
    expect(tableInReadme(readme)).toBe(renderConfigTable());
    expect(withTable(readme)).toBe(readme);
  });

  it("has one row per schema variable, each with a description", () => {
    const rows = renderConfigTable().split("\n").slice(2);
    expect(rows.map((r) => /^\| `([A-Z0-9_]+)` \|/.exec(r)?.[1])).toEqual(Object.keys(ConfigSchema.properties));
    for (const [name, s] of configEntries()) expect(s.description, name).toMatch(/\S/);
  });

  it("declares every MESHAGENT_* (and other) variable that src/ reads from process.env", () => {
    const declared = new Set(Object.keys(ConfigSchema.properties));
    // Set, not read, by src/blobs/s3.ts (it silences the AWS SDK's Node version warning).
    const notConfig = new Set(["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"]);
    const files = (readdirSync(join(ROOT, "src"), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
      .map((f) => join(ROOT, "src", f));
    const read = new Set<string>();
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/process\.env(?:\.([A-Z][A-Z0-9_]*)|\[\s*["'`]([A-Z][A-Z0-9_]*)["'`]\s*\])/g)) read.add(m[1] ?? m[2]!);
    }
    expect(read.size).toBeGreaterThan(0);
    for (const name of read) if (!notConfig.has(name)) expect(declared.has(name), `${name} is read in src/ but not in ConfigSchema`).toBe(true);
  });
});

describe("loadConfig defaults (as before the schema)", () => {
  it("keeps every previous default", () => {
    const dir = tmp();
    const c = loadConfig({ MESHAGENT_DATA_DIR: dir, MESHAGENT_MASTER_KEY: KEY });
    expect(c.port).toBe(8080);
    expect(c.host).toBe("127.0.0.1");
    expect(c.dataDir).toBe(dir);
    expect(c.databaseUrl).toBe(`sqlite://${join(dir, "meshagent.db")}`);
    expect(c.publicUrl).toBe("http://127.0.0.1:8080");
    expect(c.masterKey).toEqual(Buffer.from(KEY, "hex"));
    expect(c.tokenTtlSeconds).toBe(21600);
    expect(c.bodyLimitBytes).toBe(1024 * 1024);
    expect(c.httpIdleTimeoutMs).toBe(120_000);
    expect(c.pricingFile).toBeUndefined();
    expect(c.logLevel).toBe("info");
    expect(c.storageUrl).toBe(join(dir, "storage"));
    expect(c.maxUploadBytes).toBe(5 * 1024 ** 3);
    expect(c.maxConcurrentUploads).toBe(8);
    expect(c.webhooks).toEqual({ allowPrivate: false, timeoutMs: 15_000, leaseMs: 30_000, pollMs: 1000, concurrency: 64, dispatcher: true });
    expect(c.s3).toEqual({ region: "us-east-1", forcePathStyle: false });
    expect(c.smtp).toEqual({ port: null, host: "127.0.0.1", hostname: hostname(), maxBytes: 25 * 1024 * 1024 });
    expect(c.rooms).toEqual({
      emptyTimeoutMs: 30_000,
      leaseMs: 15_000,
      proxy: true,
      maxMessageBytes: 64 * 1024 * 1024,
      maxUploadBytes: 1024 ** 3,
      maxMessagesPerSecond: 1000,
      messageBurst: 2000,
      maxToolCalls: 64,
      maxStreams: 16,
      toolCallTimeoutMs: 300_000,
      secretRequestTimeoutMs: 300_000,
      oauthAllowPrivate: false,
      otlpBodyLimit: 16 * 1024 * 1024,
      otlpMaxRowsPerSession: 100_000,
    });
    expect(c.rooms.serverUrl).toBeUndefined();
    expect(c.scheduler).toEqual({ enabled: true, minIntervalSeconds: 900, misfireGraceSeconds: 60, runRetentionDays: 90 });
  });

  it("an empty variable counts as unset", () => {
    const c = load({ MESHAGENT_PORT: "", MESHAGENT_HOST: "", MESHAGENT_ROOM_PROXY: "", MESHAGENT_SMTP_PORT: "", MESHAGENT_LOG_LEVEL: "" });
    expect([c.port, c.host, c.rooms.proxy, c.smtp.port, c.logLevel]).toEqual([8080, "127.0.0.1", true, null, "info"]);
  });

  it("generates the master key into the data directory (0600) and reads it back next time", () => {
    const dir = tmp();
    const a = loadConfig({ MESHAGENT_DATA_DIR: join(dir, "nested") });
    const file = join(dir, "nested", "master.key");
    expect(readFileSync(file, "utf8")).toBe(a.masterKey.toString("hex") + "\n");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadConfig({ MESHAGENT_DATA_DIR: join(dir, "nested") }).masterKey).toEqual(a.masterKey);
    expect(loadConfig({ MESHAGENT_DATA_DIR: join(dir, "nested"), MESHAGENT_MASTER_KEY: Buffer.alloc(32, 7).toString("base64") }).masterKey).toEqual(
      Buffer.alloc(32, 7),
    );
  });

  it("parses MESHAGENT_TRUST_PROXY", () => {
    expect(load().trustProxy).toBe(false);
    expect(load({ MESHAGENT_TRUST_PROXY: "true" }).trustProxy).toBe(true);
    expect(load({ MESHAGENT_TRUST_PROXY: "2" }).trustProxy).toBe(2);
    expect(load({ MESHAGENT_TRUST_PROXY: "127.0.0.1, 10.0.0.0/8,::1" }).trustProxy).toEqual(["127.0.0.1", "10.0.0.0/8", "::1"]);
    expect(() => load({ MESHAGENT_TRUST_PROXY: "proxy.example.com" })).toThrow(/MESHAGENT_TRUST_PROXY: expected/);
  });

  it("derives the public URL from the host and port when MESHAGENT_PUBLIC_URL is not set", () => {
    expect(load({ MESHAGENT_PORT: "9123" }).publicUrl).toBe("http://127.0.0.1:9123");
    expect(load({ MESHAGENT_PORT: "9123", MESHAGENT_HOST: "10.1.2.3" }).publicUrl).toBe("http://10.1.2.3:9123");
    expect(load({ MESHAGENT_PORT: "9123", MESHAGENT_HOST: "::" }).publicUrl).toBe("http://localhost:9123");
    expect(load({ MESHAGENT_PORT: "9123", MESHAGENT_HOST: "::1" }).publicUrl).toBe("http://[::1]:9123");
    expect(load({ MESHAGENT_PORT: "9123", MESHAGENT_PUBLIC_URL: "https://mesh.example.com/" }).publicUrl).toBe("https://mesh.example.com");
  });

  it("derives values and converts units as before", () => {
    const c = load({
      MESHAGENT_PORT: "9000",
      MESHAGENT_HOST: "0.0.0.0",
      MESHAGENT_ROOM_EMPTY_TIMEOUT: "1.2345",
      MESHAGENT_ROOM_LEASE: "0.3",
      MESHAGENT_HTTP_IDLE_TIMEOUT: "0",
      MESHAGENT_ROOM_SERVER_URL: "http://node-1:9000//",
      MESHAGENT_WEBHOOK_TIMEOUT_MS: "1000",
      MESHAGENT_SMTP_PORT: "0",
      AWS_DEFAULT_REGION: "eu-west-1",
      AWS_ENDPOINT_URL: "http://s3.local",
    });
    expect(c.publicUrl).toBe("http://localhost:9000");
    expect(c.rooms.emptyTimeoutMs).toBe(1235);
    expect(c.rooms.leaseMs).toBe(300);
    expect(c.httpIdleTimeoutMs).toBe(0);
    expect(c.rooms.serverUrl).toBe("http://node-1:9000");
    expect(c.webhooks.leaseMs).toBe(16_000);
    expect(c.smtp).toMatchObject({ port: 0, host: "0.0.0.0" });
    expect(c.s3).toMatchObject({ region: "eu-west-1", endpoint: "http://s3.local" });
    expect(load({ MESHAGENT_PUBLIC_URL: "https://meshagent.example.com/" }).publicUrl).toBe("https://meshagent.example.com");
    expect(load({ AWS_REGION: "us-west-2", AWS_DEFAULT_REGION: "eu-west-1", AWS_ENDPOINT_URL_S3: "http://a", AWS_ENDPOINT_URL: "http://b" }).s3).toMatchObject({
      region: "us-west-2",
      endpoint: "http://a",
    });
  });

  it("accepts true/false/1/0/yes/no/on/off in any case", () => {
    for (const [raw, want] of [
      ["true", true],
      ["FALSE", false],
      ["1", true],
      ["0", false],
      ["Yes", true],
      ["no", false],
      ["ON", true],
      ["off", false],
    ] as const) {
      const c = load({ MESHAGENT_ROOM_PROXY: raw, MESHAGENT_WEBHOOK_ALLOW_PRIVATE: raw, MESHAGENT_WEBHOOK_DISPATCHER: raw, MESHAGENT_S3_PATH_STYLE: raw });
      expect([c.rooms.proxy, c.webhooks.allowPrivate, c.webhooks.dispatcher, c.s3.forcePathStyle], raw).toEqual([want, want, want, want]);
    }
  });
});

describe("loadConfig validation", () => {
  it("a non-integer names the variable, the value and the range", () => {
    expect(errorOf({ MESHAGENT_PORT: "abc" }).message).toBe('MESHAGENT_PORT: expected an integer from 0 to 65535, got "abc"');
    expect(errorOf({ MESHAGENT_BODY_LIMIT: "1.5" }).message).toBe('MESHAGENT_BODY_LIMIT: expected an integer of at least 0 (bytes), got "1.5"');
    expect(errorOf({ MESHAGENT_WEBHOOK_CONCURRENCY: " " }).message).toMatch(/^MESHAGENT_WEBHOOK_CONCURRENCY: expected an integer/);
    expect(errorOf({ MESHAGENT_ROOM_EMPTY_TIMEOUT: "30s" }).message).toBe('MESHAGENT_ROOM_EMPTY_TIMEOUT: expected a number of at least 0 (seconds), got "30s"');
  });

  it("an out-of-range integer or number names the variable and the range", () => {
    expect(errorOf({ MESHAGENT_PORT: "70000" }).message).toBe('MESHAGENT_PORT: expected an integer from 0 to 65535, got "70000"');
    expect(errorOf({ MESHAGENT_SMTP_PORT: "-1" }).message).toMatch(/^MESHAGENT_SMTP_PORT: expected an integer from 0 to 65535/);
    expect(errorOf({ MESHAGENT_SMTP_MAX_BYTES: "100" }).message).toMatch(/^MESHAGENT_SMTP_MAX_BYTES: expected an integer of at least 1024/);
    expect(errorOf({ MESHAGENT_ROOM_MAX_MESSAGE: "1000" }).message).toMatch(/^MESHAGENT_ROOM_MAX_MESSAGE: expected an integer of at least 65536/);
    expect(errorOf({ MESHAGENT_ROOM_LEASE: "0.1" }).message).toMatch(/^MESHAGENT_ROOM_LEASE: expected a number of at least 0.3 \(seconds\)/);
    expect(errorOf({ MESHAGENT_WEBHOOK_POLL_MS: "5" }).message).toMatch(/^MESHAGENT_WEBHOOK_POLL_MS: expected an integer of at least 10/);
    expect(errorOf({ MESHAGENT_SCHEDULE_MIN_INTERVAL: "0" }).message).toMatch(/^MESHAGENT_SCHEDULE_MIN_INTERVAL: /);
    expect(errorOf({ MESHAGENT_TOKEN_TTL: "-5" }).message).toMatch(/^MESHAGENT_TOKEN_TTL: /);
  });

  it("MESHAGENT_DB_POOL must be a positive integer", () => {
    expect(errorOf({ MESHAGENT_DB_POOL: "0" }).message).toBe('MESHAGENT_DB_POOL: expected an integer of at least 1, got "0"');
    expect(errorOf({ MESHAGENT_DB_POOL: "ten" }).message).toMatch(/^MESHAGENT_DB_POOL: /);
    expect(() => load({ MESHAGENT_DB_POOL: "25" })).not.toThrow();
  });

  it("an unknown boolean stops instead of reading as false", () => {
    for (const name of [
      "MESHAGENT_ROOM_PROXY",
      "MESHAGENT_WEBHOOK_DISPATCHER",
      "MESHAGENT_WEBHOOK_ALLOW_PRIVATE",
      "MESHAGENT_SCHEDULER_ENABLED",
      "MESHAGENT_S3_PATH_STYLE",
    ]) {
      expect(errorOf({ [name]: "maybe" }).message).toBe(`${name}: expected a boolean (true/false, 1/0, yes/no, on/off), got "maybe"`);
    }
  });

  it("a bad enum or URL names the variable and what it expected", () => {
    expect(errorOf({ MESHAGENT_LOG_LEVEL: "loud" }).message).toBe(
      'MESHAGENT_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    );
    expect(errorOf({ MESHAGENT_ROOM_SERVER_URL: "node-1:9000" }).message).toBe('MESHAGENT_ROOM_SERVER_URL: expected an http(s) URL, got "node-1:9000"');
    expect(errorOf({ MESHAGENT_PUBLIC_URL: "ftp://x" }).message).toBe('MESHAGENT_PUBLIC_URL: expected an http(s) URL, got "ftp://x"');
  });

  it("shows only a short prefix of a long value, and nothing of a secret", () => {
    const long = "x".repeat(500);
    const m = errorOf({ MESHAGENT_PORT: long }).message;
    expect(m).toContain(`got "${"x".repeat(40)}…"`);
    expect(m.length).toBeLessThan(120);
    const secret = "not-a-key-but-a-secret-all-the-same";
    const k = errorOf({ MESHAGENT_MASTER_KEY: secret }).message;
    expect(k).toMatch(/^MESHAGENT_MASTER_KEY: expected 32 bytes as 64 hex characters or base64/);
    expect(k).not.toContain(secret);
    expect(k).not.toContain("not-a-key");
  });

  it("names every bad variable at once, and writes nothing when one is bad", () => {
    const dir = join(tmp(), "data");
    let err: unknown;
    try {
      loadConfig({ MESHAGENT_DATA_DIR: dir, MESHAGENT_PORT: "x", MESHAGENT_ROOM_PROXY: "maybe" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message.split("\n").map((l) => l.split(":")[0])).toEqual(["MESHAGENT_PORT", "MESHAGENT_ROOM_PROXY"]);
    expect(existsSync(dir)).toBe(false);
  });

  it("checks the variables that go together", () => {
    expect(errorOf({ MESHAGENT_SMTP_TLS_CERT: "/c.pem" }).message).toMatch(/MESHAGENT_SMTP_TLS_CERT and MESHAGENT_SMTP_TLS_KEY/);
    expect(errorOf({ MESHAGENT_WEBHOOK_TIMEOUT_MS: "5000", MESHAGENT_WEBHOOK_LEASE_MS: "5000" }).message).toMatch(
      /^MESHAGENT_WEBHOOK_LEASE_MS: expected more than MESHAGENT_WEBHOOK_TIMEOUT_MS/,
    );
    expect(load({ MESHAGENT_WEBHOOK_TIMEOUT_MS: "5000", MESHAGENT_WEBHOOK_LEASE_MS: "5001" }).webhooks.leaseMs).toBe(5001);
  });

  it("the server prints the message and exits 1, without a stack trace", async () => {
    const cwd = tmp();
    const dir = join(cwd, "data");
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "serve"],
        { cwd, env: { PATH: process.env.PATH ?? "", MESHAGENT_DATA_DIR: dir, MESHAGENT_ROOM_PROXY: "maybe" }, timeout: 30_000 },
        (_err, stdout, stderr) => resolve({ code: child.exitCode, out: stdout + stderr }),
      );
    });
    expect(r.code).toBe(1);
    expect(r.out.trim()).toBe('error: MESHAGENT_ROOM_PROXY: expected a boolean (true/false, 1/0, yes/no, on/off), got "maybe"');
    expect(existsSync(dir)).toBe(false);
  });
});
