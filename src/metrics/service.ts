import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { FastifyInstance } from "fastify";
import type { Store } from "../store/db.js";
import type { Clock } from "../core/clock.js";
import { metricsRepo } from "./repo.js";

/** What the collectors read from the running process (each optional part reports nothing when absent). */
export interface MetricsSources {
  store: Store;
  clock: Clock;
  /** Rooms this process serves, with their participant counts. */
  activeRooms: () => { participants: number }[];
  /** Failed webhook attempts and deliveries given up, counted by this process's dispatcher since it started. */
  webhookFailures: () => { attempts: number; deliveries: number };
  version: string;
}

/** Latency buckets (seconds): from a cached read (~1 ms) to a slow upload. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The Prometheus metrics of one server process (`GET /metrics`, prom-client): HTTP requests by route and status with
 * latency histograms, rooms and participants this process serves, and the store-wide backlogs (room queues, the
 * webhook outbox, due scheduled tasks) read at scrape time, plus Node's own (event-loop lag, heap, GC, RSS).
 */
export class MetricsService {
  readonly registry = new Registry();
  /**
   * Requests by "method route status": counts, latency sums and bucket counts kept here and written out at scrape
   * time (prom-client's observe() validates and hashes the labels on every call: ~10 µs a request, a tenth of what
   * a cached read costs; this is well under 1 µs).
   */
  private readonly http = new Map<string, { method: string; route: string; status: string; count: number; sum: number; buckets: Float64Array }>();
  private readonly gauges: Record<string, Gauge<string>>;

  constructor(private readonly src: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    new Gauge({ name: "meshagent_build_info", help: "the server's version (value 1)", labelNames: ["version", "store"], registers }).set(
      { version: src.version, store: src.store.dialect },
      1,
    );
    const failures = src.webhookFailures;
    new Counter({
      name: "meshagent_webhook_attempts_failed_total",
      help: "webhook delivery attempts that failed (an error status, a timeout, no answer), by this process",
      registers,
      collect() {
        this.reset();
        this.inc(failures().attempts);
      },
    });
    new Counter({
      name: "meshagent_webhook_deliveries_failed_total",
      help: "webhook deliveries this process gave up on (every attempt failed, or the endpoint answered 410)",
      registers,
      collect() {
        this.reset();
        this.inc(failures().deliveries);
      },
    });
    const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });
    this.gauges = {
      rooms: gauge("meshagent_rooms_active", "rooms this process serves now"),
      participants: gauge("meshagent_room_participants", "participants connected to the rooms this process serves"),
      queue: gauge("meshagent_queue_messages", "messages in room queues (store-wide); state=ready: receivable now", ["state"]),
      deliveries: gauge("meshagent_webhook_deliveries", "webhook deliveries by status (store-wide)", ["status"]),
      backlog: gauge("meshagent_webhook_backlog", "pending webhook deliveries that are due (store-wide)"),
      backlogAge: gauge("meshagent_webhook_backlog_oldest_seconds", "how long the oldest due webhook delivery has waited (0: none)"),
      dueTasks: gauge("meshagent_scheduler_due_tasks", "active scheduled tasks whose next run is due (store-wide)"),
      schedulerLag: gauge("meshagent_scheduler_lag_seconds", "how long the oldest due scheduled task has waited to run (0: none)"),
      pool: gauge("meshagent_db_pool_connections", "PostgreSQL pool connections by state (total, idle, waiting clients); SQLite: one", ["state"]),
      poolMax: gauge("meshagent_db_pool_max", "the pool's size (MESHAGENT_DB_POOL; SQLite: 1)"),
    };
  }

  /** Count and time every answered request (the route template, never the raw URL: bounded label values). */
  install(app: FastifyInstance) {
    app.addHook("onResponse", (req, reply, done) => {
      const route = req.routeOptions.url ?? "unmatched";
      const key = `${req.method} ${route} ${reply.statusCode}`;
      let c = this.http.get(key);
      if (!c) {
        c = { method: req.method, route, status: String(reply.statusCode), count: 0, sum: 0, buckets: new Float64Array(BUCKETS.length) };
        this.http.set(key, c);
      }
      const s = reply.elapsedTime / 1000;
      c.count++;
      c.sum += s;
      // Per bucket (not cumulative): the exposition adds them up.
      for (let i = 0; i < BUCKETS.length; i++)
        if (s <= BUCKETS[i]) {
          c.buckets[i]++;
          break;
        }
      done();
    });
  }

  /** The text exposition, with the store-wide gauges read now. */
  async render(): Promise<string> {
    await this.refresh();
    return (await this.registry.metrics()) + this.httpExposition();
  }

  /** The two HTTP families in the text format (cumulative buckets, +Inf, sum, count). */
  private httpExposition(): string {
    const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
    const total = [
      "# HELP meshagent_http_requests_total HTTP requests answered, by method, route template and status",
      "# TYPE meshagent_http_requests_total counter",
    ];
    const hist = [
      "# HELP meshagent_http_request_duration_seconds time to answer an HTTP request, by method, route template and status",
      "# TYPE meshagent_http_request_duration_seconds histogram",
    ];
    for (const c of this.http.values()) {
      const labels = `method="${esc(c.method)}",route="${esc(c.route)}",status="${c.status}"`;
      total.push(`meshagent_http_requests_total{${labels}} ${c.count}`);
      let acc = 0;
      for (let i = 0; i < BUCKETS.length; i++) {
        acc += c.buckets[i];
        hist.push(`meshagent_http_request_duration_seconds_bucket{le="${BUCKETS[i]}",${labels}} ${acc}`);
      }
      hist.push(`meshagent_http_request_duration_seconds_bucket{le="+Inf",${labels}} ${c.count}`);
      hist.push(`meshagent_http_request_duration_seconds_sum{${labels}} ${c.sum}`);
      hist.push(`meshagent_http_request_duration_seconds_count{${labels}} ${c.count}`);
    }
    return `${total.join("\n")}\n\n${hist.join("\n")}\n`;
  }

  get contentType() {
    return this.registry.contentType;
  }

  private async refresh() {
    const { store, clock } = this.src;
    const g = this.gauges;
    const rooms = this.src.activeRooms();
    g.rooms.set(rooms.length);
    g.participants.set(rooms.reduce((n, r) => n + r.participants, 0));
    const now = clock.now();
    const [byStatus, due, queue, tasks] = await Promise.all([
      metricsRepo.deliveriesByStatus(store.db),
      metricsRepo.dueDeliveries(store.db, now),
      metricsRepo.queueMessages(store.db, now),
      metricsRepo.dueTasks(store.db, now),
    ]);
    g.deliveries.reset();
    for (const s of ["pending", "delivered", "failed", "held"]) g.deliveries.set({ status: s }, 0);
    for (const r of byStatus) g.deliveries.set({ status: r.status }, Number(r.n));
    g.backlog.set(Number(due.n));
    g.backlogAge.set(due.oldest === null ? 0 : Math.max(0, (now - Number(due.oldest)) / 1000));
    g.queue.set({ state: "all" }, Number(queue.n));
    g.queue.set({ state: "ready" }, Number(queue.ready));
    g.dueTasks.set(Number(tasks.n));
    g.schedulerLag.set(tasks.oldest === null ? 0 : Math.max(0, (now - Number(tasks.oldest)) / 1000));
    const pool = store.pool?.();
    g.pool.set({ state: "total" }, pool?.total ?? 1);
    g.pool.set({ state: "idle" }, pool?.idle ?? 0);
    g.pool.set({ state: "waiting" }, pool?.waiting ?? 0);
    g.poolMax.set(pool?.max ?? 1);
  }
}
