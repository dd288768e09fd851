/**
 * The event catalog: every event a webhook may subscribe to, with the keys of its `data`. Each domain declares the
 * events it publishes (its `events` in the domain registry, src/domains.ts) and publishes them on ctx.bus inside the
 * transaction of the change; the catalog is their union. The README's "Webhooks" section documents the same list.
 * A webhook's `events` may name an event, "*" (everything), or a prefix wildcard such as "room.*" or "storage.*".
 */
import type { EventSpec } from "../core/events.js";
import { quote } from "../core/errors.js";

/** Sent by POST …/webhooks/{id}/test to that one webhook, whatever it subscribes to. */
export const PING_EVENT = "webhook.test";

/**
 * The call handoff (src/calls). Nothing publishes it on the bus: webhooks with action "call" turn room events into it
 * (WebhooksService.enqueue), and `room.call` requests send it directly.
 */
export const CALL_EVENT = "room.call";

export class EventCatalog {
  private readonly names: Set<string>;
  private readonly prefixes: Set<string>;

  constructor(readonly entries: EventSpec[]) {
    this.names = new Set();
    for (const e of entries) {
      if (this.names.has(e.event)) throw new Error(`event ${e.event} is declared by two domains`);
      this.names.add(e.event);
    }
    this.prefixes = new Set(
      entries.flatMap((e) =>
        e.event
          .split(".")
          .slice(0, -1)
          .map((_, i, parts) => parts.slice(0, i + 1).join(".")),
      ),
    );
  }

  /** Why a subscription entry is invalid, or null when it is fine. */
  invalidSubscription(entry: string): string | null {
    if (entry === "*" || this.names.has(entry)) return null;
    if (entry.endsWith(".*") && this.prefixes.has(entry.slice(0, -2))) return null;
    return `unknown event ${quote(entry)} (see the catalog: e.g. room.started, storage.file.updated, api_key.created, room.*, *)`;
  }
}

/** Does a webhook subscribed to `events` receive `type`? */
export function matches(events: string[], type: string): boolean {
  for (const e of events) {
    if (e === "*" || e === type) return true;
    if (e.endsWith(".*") && type.startsWith(e.slice(0, -1))) return true;
  }
  return false;
}
