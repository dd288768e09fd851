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

export const iso = (ms: number) => new Date(ms).toISOString();

/** `iso` of a timestamp that may be absent: null stays null. */
export const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
