import type { Queryable } from "../store/db.js";

/** A catalog entry: an event a domain publishes (and a webhook may subscribe to), with the keys of its `data`. */
export interface EventSpec {
  event: string;
  description: string;
  data: Record<string, string>;
}

/** A domain event. `type` uses the webhook catalog's names (room.created, api_key.deleted, ...). */
export interface DomainEvent {
  type: string;
  project_id: string;
  data: Record<string, unknown>;
}

/**
 * Transactional subscribers run inside the transaction that made the change (the webhook outbox writes its
 * rows there, so an event exists exactly when its change committed). After-commit listeners see events
 * once they are durable (in-process notifications, metrics).
 */
export type TxSubscriber = (q: Queryable, event: DomainEvent) => Promise<void>;
export type Listener = (event: DomainEvent) => void;

export class EventBus {
  private txSubs: TxSubscriber[] = [];
  private listeners: Listener[] = [];

  subscribeTx(fn: TxSubscriber) {
    this.txSubs.push(fn);
  }
  on(fn: Listener) {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }
  /** Call inside the transaction of the change; returns a function to call once it committed. */
  async publish(q: Queryable, event: DomainEvent): Promise<() => void> {
    for (const s of this.txSubs) await s(q, event);
    return () => this.notify(event);
  }
  notify(event: DomainEvent) {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // a listener's failure must not break the request that caused the event
      }
    }
  }
}
