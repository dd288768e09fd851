import { afterAll, describe, expect, it } from "vitest";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, restartableData, spawnServer, type ServerProcess } from "./helpers/process.js";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import type { NewUsage } from "../src/billing/repo.js";
import { PERIOD_MS } from "../src/billing/engine.js";

const HOURS = 48;
const PROJECTS = 20;
const PER_HOUR = 4000;
const PRICE = 0.0005; // per participant-minute

async function countPeriods(env: Record<string, string>) {
  const c = await createContext(loadConfig(env), { listen: false });
  try {
    const r = await c.store.db
      .selectFrom("billing_periods")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  } finally {
    await c.close();
  }
}

/**
 * The billing job killed with -9 while it prices a backlog, again and again: once it is left to finish, every hour is
 * priced exactly once — no debit twice, none missing, each the sum of its hour's records.
 */
describe("billing job under kill -9", () => {
  const procs: ServerProcess[] = [];
  let cleanup: (() => Promise<void>) | null = null;
  afterAll(async () => {
    for (const p of procs) await p.kill("SIGKILL");
    await cleanup?.();
  });

  it("prices each hour once across kills mid-run", async () => {
    const start = Date.now();
    const data = await restartableData("billing-kill-");
    const pricing = join(data.dataDir, "pricing.json");
    writeFileSync(
      pricing,
      JSON.stringify({ currency: "usd", prices: [{ id: "room", usage_type: "room", unit: "participant_minute", unit_price: PRICE, description: "room" }] }),
    );
    const env = { ...data.env, MESHAGENT_PRICING_FILE: pricing, MESHAGENT_BILLING_GRACE: "0", MESHAGENT_BILLING_INTERVAL: "1", MESHAGENT_DOCKER_HOST: "none" };
    cleanup = async () => {
      await data.db.drop();
      rmSync(data.dataDir, { recursive: true, force: true });
    };
    // Projects and a backlog of closed hours, written directly.
    const ctx = await createContext(loadConfig(env), { listen: false });
    const projects: string[] = [];
    const expected = new Map<string, number>();
    try {
      for (let i = 0; i < PROJECTS; i++) projects.push((await bootstrap(ctx, { email: `kill-${i}@example.com`, project: `p${i}` })).project_id);
      const first = Math.floor(Date.now() / PERIOD_MS) * PERIOD_MS - (HOURS + 1) * PERIOD_MS;
      for (let h = 0; h < HOURS; h++) {
        const rows: NewUsage[] = [];
        const sums = new Map<string, number>();
        for (let i = 0; i < PER_HOUR; i++) {
          const project_id = projects[(i * 7 + h) % PROJECTS];
          const quantity = 1 + ((i * 31 + h * 17) % 600);
          sums.set(project_id, (sums.get(project_id) ?? 0) + quantity);
          rows.push({
            project_id,
            usage_type: "room",
            unit: "participant_second",
            quantity,
            room_name: "r",
            user_id: `u${i % 5}`,
            role: "user",
            provider: null,
            model: null,
            client: null,
            annotations: null,
            recorded_at: first + h * PERIOD_MS + ((i * 997) % PERIOD_MS),
          });
        }
        for (let i = 0; i < rows.length; i += 1000)
          await ctx.store.db
            .insertInto("usage_records")
            .values(rows.slice(i, i + 1000))
            .execute();
        for (const [p, q] of sums) expected.set(`${p}\0${first + h * PERIOD_MS}`, -Math.round((q / 60) * PRICE * 1e6));
      }
    } finally {
      await ctx.close();
    }
    console.log(`billing-kill: backlog written (${Date.now() - start} ms)`);

    // Kill the server at different points of its first billing run (it starts a second after listening).
    const t0 = Date.now();
    const priced: number[] = [];
    for (const delay of [1100, 1500, 2000]) {
      const p = await spawnServer(env);
      procs.push(p);
      await new Promise((r) => setTimeout(r, delay));
      await p.kill("SIGKILL");
      priced.push(await countPeriods(env));
    }
    console.log(`billing-kill: priced hours after each kill ${priced.join(", ")} of ${HOURS} (${Date.now() - t0} ms)`);
    // Then let one finish, with a second process pricing at the same time.
    const a = await spawnServer(env);
    const b = await spawnServer({ ...env, MESHAGENT_PORT: String(await freePort()) });
    procs.push(a, b);
    const check = await createContext(loadConfig(env), { listen: false });
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r = await check.store.db
          .selectFrom("billing_periods")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .executeTakeFirstOrThrow();
        if (Number(r.n) >= HOURS) break;
        if (Date.now() > deadline) throw new Error(`only ${r.n} of ${HOURS} hours priced`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const debits = await check.store.db
        .selectFrom("billing_transactions")
        .select(["project_id", "amount_micros", "reference", "kind"])
        .where("kind", "=", "usage")
        .execute();
      const got = new Map<string, number>();
      for (const d of debits) {
        const key = `${d.project_id}\0${Date.parse(d.reference!)}`;
        expect(got.has(key), `a second debit for ${key}`).toBe(false);
        got.set(key, Number(d.amount_micros));
      }
      // Every hour of the backlog is there with its amount (an hour the kills interrupted included).
      for (const [key, micros] of expected) expect(got.get(key), key).toBe(micros);
      expect(got.size).toBe(expected.size);
      for (const p of projects) {
        const sum = debits.filter((d) => d.project_id === p).reduce((s, d) => s + Number(d.amount_micros), 0);
        expect((await check.billing.balance(p)).balance).toBeCloseTo(sum / 1e6, 6);
      }
    } finally {
      await check.close();
    }
  }, 180_000);
});
