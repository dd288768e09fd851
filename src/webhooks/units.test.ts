import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { backoff, MAX_ATTEMPTS, parseRetryAfter, RETRY_DELAYS_MS } from "./dispatcher.js";
import { isPrivateAddress } from "./ssrf.js";
import { EventCatalog, matches } from "./catalog.js";
import { domains } from "../domains.js";

const catalog = new EventCatalog(domains.flatMap((d) => d.events ?? []));
const invalidSubscription = (e: string) => catalog.invalidSubscription(e);

describe("retry schedule", () => {
  it("retries for at least 24 h even with the smallest jitter, and at most ~35 h", () => {
    const min = RETRY_DELAYS_MS.reduce((a, d, i) => a + backoff(i + 1, () => 0)!, 0);
    const max = RETRY_DELAYS_MS.reduce((a, d, i) => a + backoff(i + 1, () => 1)!, 0);
    expect(min).toBeGreaterThanOrEqual(24 * 3600_000);
    expect(max).toBeLessThanOrEqual(35 * 3600_000);
    expect(backoff(MAX_ATTEMPTS, () => 0.5)).toBeNull();
    for (let i = 1; i < RETRY_DELAYS_MS.length; i++) expect(RETRY_DELAYS_MS[i]).toBeGreaterThanOrEqual(RETRY_DELAYS_MS[i - 1]);
  });

  it("parses Retry-After as seconds or an HTTP date, clamped", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("0", now)).toBe(1000);
    expect(parseRetryAfter("999999999", now)).toBe(24 * 3600_000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:10:00 GMT", now)).toBe(600_000);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});

describe("private address ranges", () => {
  it.each([
    ["127.0.0.1", true],
    ["10.0.0.1", true],
    ["172.16.5.4", true],
    ["172.32.0.1", false],
    ["192.168.0.1", true],
    ["169.254.169.254", true],
    ["100.64.0.1", true],
    ["0.0.0.0", true],
    ["224.0.0.1", true],
    ["255.255.255.255", true],
    ["8.8.8.8", false],
    ["1.1.1.1", false],
    ["::1", true],
    ["::", true],
    ["fe80::1", true],
    ["fd00::1", true],
    ["::ffff:127.0.0.1", true],
    ["::ffff:8.8.8.8", false],
    ["2606:4700:4700::1111", false],
    ["not-an-ip", true],
  ])("%s → %s", (addr, priv) => expect(isPrivateAddress(addr)).toBe(priv));
});

describe("catalog", () => {
  it("validates subscriptions and matches wildcards", () => {
    expect(invalidSubscription("room.started")).toBeNull();
    expect(invalidSubscription("*")).toBeNull();
    expect(invalidSubscription("storage.*")).toBeNull();
    expect(invalidSubscription("storage.file.*")).toBeNull();
    expect(invalidSubscription("room.exploded")).toContain("room.exploded");
    expect(invalidSubscription("roo.*")).not.toBeNull();
    expect(matches(["storage.*"], "storage.file.moved")).toBe(true);
    expect(matches(["room.*"], "roomy.x")).toBe(false);
    expect(matches(["api_key.created"], "api_key.deleted")).toBe(false);
    expect(matches(["*"], "anything")).toBe(true);
  });

  it("every catalog event is documented in the README's Webhooks section", () => {
    const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Webhooks"), readme.indexOf("\n## ", readme.indexOf("## Webhooks") + 5));
    for (const e of catalog.entries) {
      expect(section, e.event).toContain("`" + e.event + "`");
      for (const k of Object.keys(e.data)) expect(section, `${e.event}.${k}`).toContain("`" + k + "`");
    }
  });
});
