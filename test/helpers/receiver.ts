import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** How the receiver answers request n (0-based): a status, optional headers and body; or "hang" (never answers). */
export type Responder = (req: Received, n: number) => { status: number; headers?: Record<string, string>; body?: string; delayMs?: number } | "hang";

/** A real HTTP receiver on loopback that records every request and answers as told. */
export class Receiver {
  readonly requests: Received[] = [];
  private server!: Server;
  private waiters: { n: number; resolve: () => void }[] = [];
  private hanging: ServerResponse[] = [];
  port = 0;
  responder: Responder = () => ({ status: 200, headers: { "content-type": "application/json" }, body: '{"ok": true}' });

  static async start(port = 0): Promise<Receiver> {
    const r = new Receiver();
    await r.listen(port);
    return r;
  }

  async listen(port = 0) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const rec: Received = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() };
        const n = this.requests.length;
        this.requests.push(rec);
        for (const w of this.waiters.filter((w) => this.requests.length >= w.n)) w.resolve();
        this.waiters = this.waiters.filter((w) => this.requests.length < w.n);
        const a = this.responder(rec, n);
        if (a === "hang") {
          this.hanging.push(res);
          return;
        }
        const send = () => res.writeHead(a.status, a.headers ?? {}).end(a.body ?? "");
        if (a.delayMs) setTimeout(send, a.delayMs);
        else send();
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server.listen(port, "127.0.0.1", resolve));
    const addr = this.server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}/webhook`;
  }

  /** Resolves once n requests in total have arrived. */
  waitFor(n: number, timeoutMs = 20_000): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`receiver: ${this.requests.length} of ${n} requests after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  async close() {
    for (const r of this.hanging) r.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Poll until fn returns a truthy value (for state that settles asynchronously: rows written after a delivery). */
export async function until<T>(
  fn: () => Promise<T | false | null | undefined> | T | false | null | undefined,
  what = "condition",
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
