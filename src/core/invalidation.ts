import pg from "pg";

/**
 * Cache invalidation across server processes. In one process (SQLite) a local fan-out is enough; on
 * PostgreSQL every process LISTENs on one channel so a key deleted anywhere stops working everywhere at once.
 */
export interface Invalidator {
  publish(topic: string, key: string): Promise<void>;
  subscribe(topic: string, fn: (key: string) => void): void;
  close(): Promise<void>;
}

export class LocalInvalidator implements Invalidator {
  protected subs = new Map<string, ((key: string) => void)[]>();
  async publish(topic: string, key: string) {
    this.deliver(topic, key);
  }
  protected deliver(topic: string, key: string) {
    for (const fn of this.subs.get(topic) ?? []) fn(key);
  }
  subscribe(topic: string, fn: (key: string) => void) {
    this.subs.set(topic, [...(this.subs.get(topic) ?? []), fn]);
  }
  async close() {}
}

const CHANNEL = "meshagent_invalidate";

export class PgInvalidator extends LocalInvalidator {
  private client?: pg.Client;
  private closed = false;
  constructor(private readonly url: string) {
    super();
  }
  async start() {
    const client = new pg.Client({ connectionString: this.url });
    client.on("error", () => {});
    client.on("notification", (msg) => {
      if (!msg.payload) return;
      const i = msg.payload.indexOf(":");
      this.deliver(msg.payload.slice(0, i), msg.payload.slice(i + 1));
    });
    client.on("end", () => {
      // Reconnect; while disconnected we may miss notifications, so tell every subscriber to drop everything.
      if (this.closed) return;
      for (const topic of this.subs.keys()) this.deliver(topic, "*");
      setTimeout(() => this.start().catch(() => {}), 1000).unref();
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.client = client;
  }
  /** Notifications go out one at a time on the LISTEN connection (a pg.Client runs one query at a time). */
  private sending: Promise<unknown> = Promise.resolve();
  async publish(topic: string, key: string) {
    this.deliver(topic, key);
    const client = this.client;
    if (!client) return;
    const sent = this.sending.then(() => client.query("SELECT pg_notify($1, $2)", [CHANNEL, `${topic}:${key}`]));
    this.sending = sent.catch(() => {});
    await sent;
  }
  async close() {
    this.closed = true;
    await this.client?.end().catch(() => {});
  }
}

/**
 * A read-through cache of rows that change rarely, evicted in every process when `topic` announces a key. A key
 * ending in "*" evicts every key that starts with what precedes it ("*" alone: everything).
 * A load that raced with an eviction is returned but not cached, so a stale row never outlives its invalidation.
 * Only found rows are cached: a row created later is found on the next lookup.
 */
export class InvalidatedCache<V> {
  private map = new Map<string, V>();
  private epoch = 0;

  constructor(
    invalidator: Invalidator,
    topic: string,
    private readonly max: number,
  ) {
    invalidator.subscribe(topic, (key) => {
      this.epoch++;
      if (key === "*") this.map.clear();
      else if (key.endsWith("*")) {
        const prefix = key.slice(0, -1);
        for (const k of this.map.keys()) if (k.startsWith(prefix)) this.map.delete(k);
      } else this.map.delete(key);
    });
  }

  async get(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    const hit = this.map.get(key);
    if (hit !== undefined) return hit;
    const epoch = this.epoch;
    const value = await load();
    if (value !== undefined && epoch === this.epoch) {
      if (this.map.size >= this.max) this.map.clear();
      this.map.set(key, value);
    }
    return value;
  }
}
