/** All time comes from a Clock so tests can move it. */
export interface Clock {
  now(): number; // epoch milliseconds
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock tests can set and advance. */
export class ManualClock implements Clock {
  constructor(private t: number = Date.now()) {}
  now() {
    return this.t;
  }
  set(t: number) {
    this.t = t;
  }
  advance(ms: number) {
    this.t += ms;
  }
}

/**
 * The representable time range, in epoch milliseconds: what a JavaScript Date can hold (±8.64e15 ms, years
 * -271821 to 275760); it also fits the int64 columns of both stores. Every timestamp that enters the store is
 * checked against it ({@link isTimeMs}); {@link iso} clamps to it, so a stored value can always be rendered.
 */
export const MAX_TIME_MS = 8.64e15;
export const MIN_TIME_MS = -8.64e15;

/** A finite epoch-ms value inside the representable range. */
export const isTimeMs = (ms: number) => Number.isFinite(ms) && ms >= MIN_TIME_MS && ms <= MAX_TIME_MS;

/** ISO 8601 of an epoch-ms value; never throws (out-of-range values clamp to the range's ends, NaN to the epoch). */
export const iso = (ms: number) => new Date(Number.isNaN(ms) ? 0 : Math.min(MAX_TIME_MS, Math.max(MIN_TIME_MS, ms))).toISOString();

/** `iso` of a timestamp that may be absent: null stays null. */
export const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
