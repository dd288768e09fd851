import { randomUUID } from "node:crypto";
import { ErrorCode, ToolError } from "./protocol.js";

/** One side of a server-mediated request: a participant's connection as this module needs it. */
export interface RequestParty {
  readonly id: string;
  readonly name: string;
  readonly closed: boolean;
  /** Aborted when the socket closes. */
  readonly abort: AbortController;
}

interface Entry<D, T> {
  kind: string;
  requester: RequestParty;
  target: RequestParty;
  data: D;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
  /** Clears the timer and the close listeners. */
  release: () => void;
}

/** A request its target has claimed: nothing can end it any more but `resolve` / `reject`. */
export interface ClaimedRequest<D, T> {
  id: string;
  requester: RequestParty;
  data: D;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export interface OpenRequest<D> {
  /** What it asks for, in error texts ("secret", "OAuth authorization"). */
  kind: string;
  requester: RequestParty;
  target: RequestParty;
  timeoutMs: number;
  /** What the answering side needs later (kept server-side, never sent). */
  data: D;
  /** Deliver the request to the target, with its id. */
  send: (requestId: string) => void;
}

/**
 * Server→participant requests answered through a later tool call of the target (the secrets toolkit's
 * request_secret / provide_secret and request_oauth_token / provide_oauth_authorization). The official client
 * answers such a request with no `__response__`: its handler hands the request to the application, which answers
 * with a tool call naming the request id. So a pending request is tracked here, by id, and always ends: with the
 * target's answer, or with an error when the target leaves, the requester leaves, or the timeout passes.
 */
export class PendingRequests<D, T> {
  private readonly pending = new Map<string, Entry<D, T>>();

  constructor(private readonly maxPending = 10_000) {}

  get size() {
    return this.pending.size;
  }

  /** Send a request to `target` and wait for its answer (or the error that ends it). */
  open(o: OpenRequest<D>): Promise<T> {
    if (o.target.closed) return Promise.reject(new ToolError(`participant ${o.target.id} left the room`, ErrorCode.NOT_FOUND));
    if (this.pending.size >= this.maxPending)
      return Promise.reject(new ToolError(`too many pending requests on this server (${this.maxPending}); try again later`, ErrorCode.INVALID_STATE));
    const id = randomUUID();
    return new Promise<T>((resolve, reject) => {
      const seconds = Math.round(o.timeoutMs / 100) / 10;
      const end = (e: ToolError) => {
        const entry = this.pending.get(id);
        if (!entry) return;
        this.pending.delete(id);
        entry.release();
        entry.reject(e);
      };
      const onTargetLeft = () =>
        end(new ToolError(`participant ${o.target.id} (${o.target.name}) left the room before answering the ${o.kind} request`, ErrorCode.NOT_FOUND));
      const onRequesterLeft = () => end(new ToolError(`the requester left before the ${o.kind} request was answered`, ErrorCode.INVALID_STATE));
      const timer = setTimeout(
        () =>
          end(
            new ToolError(`timeout: participant ${o.target.id} (${o.target.name}) did not answer the ${o.kind} request within ${seconds} s`, ErrorCode.TIMEOUT),
          ),
        o.timeoutMs,
      );
      timer.unref();
      o.target.abort.signal.addEventListener("abort", onTargetLeft, { once: true });
      o.requester.abort.signal.addEventListener("abort", onRequesterLeft, { once: true });
      const release = () => {
        clearTimeout(timer);
        o.target.abort.signal.removeEventListener("abort", onTargetLeft);
        o.requester.abort.signal.removeEventListener("abort", onRequesterLeft);
      };
      this.pending.set(id, { kind: o.kind, requester: o.requester, target: o.target, data: o.data, resolve, reject, release });
      try {
        o.send(id);
      } catch (e) {
        this.pending.delete(id);
        release();
        reject(e);
        return;
      }
      // Either side may have gone while the request was being set up.
      if (o.target.closed) onTargetLeft();
      else if (o.requester.closed) onRequesterLeft();
    });
  }

  /**
   * The target's answer arrives: the request leaves the table (its timer and close listeners with it) and is the
   * caller's to complete. Null when there is no such request for this participant (answered, timed out, cancelled,
   * or addressed to someone else: a participant cannot answer another's request).
   */
  claim(requestId: unknown, by: RequestParty, kind?: string): ClaimedRequest<D, T> | null {
    if (typeof requestId !== "string") return null;
    const entry = this.pending.get(requestId);
    if (!entry || entry.target !== by || (kind !== undefined && entry.kind !== kind)) return null;
    this.pending.delete(requestId);
    entry.release();
    return { id: requestId, requester: entry.requester, data: entry.data, resolve: entry.resolve, reject: entry.reject };
  }
}
