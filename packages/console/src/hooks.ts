import { useCallback, useEffect, useRef, useState } from "react";

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change (and on reload()); the newest answer wins, older ones are dropped. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    load(ac.signal).then(
      (data) => !ac.signal.aborted && setState({ data, loading: false }),
      (error) => !ac.signal.aborted && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => ac.abort();
  }, [...deps, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

export interface Backoff {
  /** The first and shortest wait, ms. */
  minMs: number;
  /** The longest wait, ms. */
  maxMs: number;
}

/**
 * The next wait of a poll: back to the shortest when something changed, doubled (up to the longest) when nothing did
 * or the call failed. So an idle view polls rarely, and a busy one stays live, never in a tight loop.
 */
export function nextDelay(prev: number, changed: boolean, b: Backoff): number {
  if (changed) return b.minMs;
  return Math.min(b.maxMs, Math.max(b.minMs, prev * 2));
}

/**
 * Polls `load` with backoff (nextDelay), pausing while the tab is hidden. `data` is the newest answer; `error` the
 * newest failure (cleared by the next success).
 */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], b: Backoff = { minMs: 1000, maxMs: 30_000 }): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const kick = useRef<() => void>(() => {});
  useEffect(() => {
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let delay = b.minMs;
    let last = "";
    const run = async () => {
      if (ac.signal.aborted) return;
      if (typeof document !== "undefined" && document.hidden) {
        timer = setTimeout(run, delay);
        return;
      }
      let changed = false;
      try {
        const data = await load(ac.signal);
        const s = JSON.stringify(data);
        changed = s !== last;
        last = s;
        if (!ac.signal.aborted) setState({ data, loading: false });
      } catch (error) {
        if (!ac.signal.aborted) setState((s) => ({ data: s.data, error, loading: false }));
      }
      delay = nextDelay(delay, changed, b);
      if (!ac.signal.aborted) timer = setTimeout(run, delay);
    };
    kick.current = () => {
      clearTimeout(timer);
      delay = b.minMs;
      void run();
    };
    void run();
    return () => {
      ac.abort();
      clearTimeout(timer);
    };
  }, deps);
  const reload = useCallback(() => kick.current(), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** A value that follows `value` after `ms` without changes (validation as you type). */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
