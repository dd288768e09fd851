import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

const require = createRequire(import.meta.url);

/**
 * A worker thread running `code` (CommonJS, evaluated) with its own better-sqlite3 connection: `workerData` gets
 * `module`, the path to require better-sqlite3 by. The thread does not keep the process alive, but `stop()` does,
 * until the thread has handled "stop" (its cue to finish and close its connection) and exited.
 */
export function startSqliteWorker(code: string, workerData: Record<string, unknown>): { worker: Worker; stop(): Promise<void> } {
  const worker = new Worker(code, { eval: true, workerData: { ...workerData, module: require.resolve("better-sqlite3") } });
  worker.unref();
  return {
    worker,
    stop() {
      const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
      worker.ref();
      worker.postMessage("stop");
      return exited;
    },
  };
}
