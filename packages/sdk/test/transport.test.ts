import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Meshagent, MeshagentError, retryAfterMs } from "@meshagent-oss/sdk";

/**
 * Timeouts, retries, error mapping and streaming against a misbehaving local server: each request is answered by the
 * next step of the current script (an answer, a dropped connection, a hang, or a stall after the headers).
 */
type Step = { status: number; headers?: Record<string, string>; body?: string } | "drop" | "hang" | "stall";
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe("SDK transport: timeouts, retries, errors", () => {
  let server: http.Server;
  let base: string;
  let script: Step[] = [];
  let seen: Seen[] = [];
  const hung: http.ServerResponse[] = [];
  const play = (...steps: Step[]) => {
    script = steps;
    seen = [];
  };
  const ok = (body: unknown = { id: "p1" }): Step => ({ status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const client = (o: ConstructorParameters<typeof Meshagent>[0] = {}) => new Meshagent({ baseUrl: base, token: "ma-secret", retryBaseMs: 1, ...o });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
        const step = script.shift() ?? ok();
        if (step === "drop") return req.socket.destroy();
        if (step === "hang") return void hung.push(res);
        if (step === "stall") {
          res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "100" });
          res.write("partial");
          return void hung.push(res);
        }
        res.writeHead(step.status, step.headers ?? {}).end(step.body ?? "");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const r of hung) r.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("retries an idempotent GET on 503, 502 and a dropped connection, then answers", async () => {
    play({ status: 503 }, "drop", { status: 502, body: "bad gateway" }, ok({ id: "p1", name: "x" }));
    expect(await client({ maxRetries: 3 }).getProject("p1")).toMatchObject({ id: "p1" });
    expect(seen).toHaveLength(4);
    expect(seen.every((s) => s.method === "GET" && s.headers.authorization === "Bearer ma-secret")).toBe(true);
  });

  it("gives up after a fixed number of attempts with the last error", async () => {
    play(
      { status: 503, headers: { "content-type": "application/json", "x-request-id": "req-1" }, body: '{"error":{"code":"unavailable","message":"try later"}}' },
      { status: 503 },
      {
        status: 503,
        headers: { "content-type": "application/json", "x-request-id": "req-3" },
        body: '{"error":{"code":"unavailable","message":"still down"}}',
      },
    );
    const err = await client({ maxRetries: 2 })
      .getProject("p1")
      .catch((e) => e);
    expect(seen).toHaveLength(3);
    expect(err).toBeInstanceOf(MeshagentError);
    expect(err).toMatchObject({ status: 503, code: "unavailable", message: "still down", requestId: "req-3", request: "GET /accounts/projects/p1" });
  });

  it("never retries a 4xx other than 408 and 429, and maps its error body", async () => {
    play({
      status: 400,
      headers: { "content-type": "application/json", "x-request-id": "r-400" },
      body: '{"error":{"code":"invalid_request","message":"name: must not be empty"}}',
    });
    const err = await client()
      .createRoom("p1", "")
      .catch((e) => e);
    expect(seen).toHaveLength(1);
    expect(err).toMatchObject({ status: 400, code: "invalid_request", message: "name: must not be empty", requestId: "r-400", retryable: false });
    play({ status: 404, body: "<html>nope</html>" });
    expect(
      await client()
        .getRoom("p1", "x")
        .catch((e) => e),
    ).toMatchObject({ status: 404, code: "http_404" });
  });

  it("retries a POST with the same Idempotency-Key (its own, or one it generated); without one, never", async () => {
    play({ status: 500 }, ok({ id: "r1", name: "a" }));
    await client().createRoom("p1", "a", {}, { idempotencyKey: "my-key" });
    expect(seen.map((s) => s.headers["idempotency-key"])).toEqual(["my-key", "my-key"]);
    play({ status: 500 }, "drop", ok({ id: "r1", name: "a" }));
    await client().createRoom("p1", "a");
    const keys = seen.map((s) => s.headers["idempotency-key"]);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    play({ status: 500 }, ok());
    await expect(client({ autoIdempotencyKey: false }).createRoom("p1", "a")).rejects.toMatchObject({ status: 500 });
    expect(seen).toHaveLength(1);
    expect(seen[0].headers["idempotency-key"]).toBeUndefined();
  });

  it("honours Retry-After on 429, and does not wait longer than retryMaxMs", async () => {
    play({ status: 429, headers: { "retry-after": "1" } }, ok());
    const t0 = Date.now();
    await client().getProject("p1");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(seen).toHaveLength(2);
    play({ status: 429, headers: { "retry-after": "120" } }, ok());
    await expect(client({ retryMaxMs: 5_000 }).getProject("p1")).rejects.toMatchObject({ status: 429 });
    expect(seen).toHaveLength(1);
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs(new Date(Date.now() + 3000).toUTCString())).toBeGreaterThan(1000);
    expect(retryAfterMs("soon")).toBeUndefined();
  });

  it("times out a request that hangs (code timeout, status 0), and retries it when allowed", async () => {
    play("hang", "hang");
    const err = await client({ timeoutMs: 150, maxRetries: 1 })
      .getProject("p1")
      .catch((e) => e);
    expect(err).toMatchObject({ status: 0, code: "timeout" });
    expect(err.message).toMatch(/timed out after 150 ms/);
    expect(seen).toHaveLength(2);
    play("hang", ok());
    expect(await client({ timeoutMs: 150 }).getProject("p1")).toMatchObject({ id: "p1" });
  });

  it("a download that stalls after its headers times out while it is read", async () => {
    play("stall");
    const { stream } = await client({ timeoutMs: 200 }).downloadStream("p1", "f.bin");
    const err = await new Response(stream).arrayBuffer().catch((e) => e);
    expect(err).toBeInstanceOf(MeshagentError);
    expect(err.code).toBe("timeout");
  });

  it("an AbortSignal cancels the call and its retries (code aborted)", async () => {
    play("hang", ok());
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    const err = await client()
      .getProject("p1", { signal: ctl.signal })
      .catch((e) => e);
    expect(err).toMatchObject({ status: 0, code: "aborted" });
    expect(seen).toHaveLength(1);
    const pre = new AbortController();
    pre.abort();
    await expect(client().getProject("p1", { signal: pre.signal })).rejects.toMatchObject({ code: "aborted" });
  });

  it("a connection refused is a network_error naming the server", async () => {
    const dead = new Meshagent({ baseUrl: "http://127.0.0.1:1", token: "x", maxRetries: 1, retryBaseMs: 1 });
    const err = await dead.listProjects().catch((e) => e);
    expect(err).toMatchObject({ status: 0, code: "network_error" });
    expect(err.message).toContain("http://127.0.0.1:1");
  });

  it("uploads: bytes are retried, a stream is sent once (it cannot be replayed); progress reaches the total", async () => {
    play({ status: 503 }, ok({ path: "a", size: 3 }));
    await client().upload("p1", "a", new Uint8Array([1, 2, 3]));
    expect(seen.map((s) => s.body.length)).toEqual([3, 3]);
    expect(seen[0].headers["content-type"]).toBe("application/octet-stream");
    expect(seen[0].url).toBe("/projects/p1/storage/upload?path=a");
    play({ status: 503 }, ok());
    async function* chunks() {
      yield new Uint8Array(10);
      yield new Uint8Array(20);
    }
    const progress: number[] = [];
    await expect(client().upload("p1", "a", chunks(), { onProgress: (n) => progress.push(n) })).rejects.toMatchObject({ status: 503 });
    expect(seen).toHaveLength(1);
    expect(seen[0].body.length).toBe(30);
    expect(progress.at(-1)).toBe(30);
  });

  it("sends no Authorization without a token, and JSON without undefined keys", async () => {
    play(ok({ jwt: "j" }));
    await new Meshagent({ baseUrl: base, token: null }).connectShare("s1");
    expect(seen[0].headers.authorization).toBeUndefined();
    play(ok({ id: "r", name: "n" }));
    await client().createRoom("p1", "n", { metadata: undefined });
    expect(JSON.parse(seen[0].body)).toEqual({ name: "n" });
  });
});
