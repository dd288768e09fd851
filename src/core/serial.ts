/**
 * Runs tasks one after another per key (a room, a session), different keys side by side. A task runs after every
 * earlier task of its key has settled, whether it failed or not; a key is forgotten once its last task settled.
 */
export class KeyedSerial {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = next.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Is anything queued or running for this key? */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  /** Settles once every task queued so far has settled. */
  async idle(): Promise<void> {
    await Promise.all([...this.tails.values()]);
  }
}
