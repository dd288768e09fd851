import { createQueryId, type Compilable, type CompiledQuery } from "kysely";
import type { Queryable } from "./db.js";

/**
 * A hot query built and compiled once per database handle, then run with new parameter values. Building and
 * compiling a Kysely query costs more than running an indexed lookup, so per-request point lookups (auth, room and
 * grant lookups, connect_room) use this.
 *
 * `build` must use every argument only as a bound value (never to shape the SQL) and put no other bound values in
 * the query: it is compiled once with sentinel arguments, and each compiled parameter is mapped back to the argument
 * it came from (a parameter that is no argument is refused at first use, so a mistake cannot go unnoticed).
 */
export function prepared<A extends unknown[], R>(build: (q: Queryable, ...args: A) => Compilable<R>) {
  const cache = new WeakMap<object, { compiled: CompiledQuery<R>; slots: number[] }>();
  const compile = (q: Queryable, n: number) => {
    const sentinels = Array.from({ length: n }, (_, i) => `\u0000prepared-arg-${i}\u0000`);
    const compiled = build(q, ...(sentinels as A)).compile();
    const slots = compiled.parameters.map((p) => {
      const i = sentinels.indexOf(p as string);
      if (i < 0) throw new Error(`prepared query has a bound value that is not an argument: ${String(p)}`);
      return i;
    });
    const entry = { compiled, slots };
    cache.set(q.getExecutor().adapter, entry);
    return entry;
  };
  const run = async (q: Queryable, ...args: A): Promise<R[]> => {
    // Keyed on the dialect adapter, which a database handle and its transactions share: compiled once per store.
    const { compiled, slots } = cache.get(q.getExecutor().adapter) ?? compile(q, args.length);
    const r = await q.executeQuery<R>({ ...compiled, parameters: slots.map((i) => args[i]), queryId: createQueryId() });
    return r.rows;
  };
  /**
   * The SQL text and, for each of its parameters, the index of the argument it binds (`args.length` = `arity`):
   * for running the statement on another connection (the SQLite queue writer's worker thread).
   */
  run.statement = (q: Queryable, arity: number) => {
    const { compiled, slots } = cache.get(q.getExecutor().adapter) ?? compile(q, arity);
    return { sql: compiled.sql, slots };
  };
  return run;
}
