import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";

/**
 * Outbound URL safety: webhook URLs must not reach into the server's own network. Addresses are checked when a
 * webhook is saved AND at connect time (the HTTP agent's DNS lookup refuses them), so a DNS answer that changes
 * after the check (rebinding) cannot slip through.
 */
const blocked = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8], // "this" network
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata)
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const)
  blocked.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated)
  ["ff00::", 8], // multicast
  ["2001:db8::", 32], // documentation
  ["64:ff9b:1::", 48], // local-use NAT64
] as const)
  blocked.addSubnet(net, bits, "ipv6");

/** True for private, loopback, link-local and other non-public addresses (IPv4-mapped IPv6 included). */
export function isPrivateAddress(address: string): boolean {
  const v = isIP(address);
  if (v === 4) return blocked.check(address, "ipv4");
  if (v === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1], "ipv4");
    return blocked.check(address, "ipv6");
  }
  return true; // not an address: refuse
}

export class UnsafeUrlError extends Error {}

/** Parse and check a webhook URL's shape (http/https, a host, no credentials). Throws UnsafeUrlError. */
export function parseWebhookUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UnsafeUrlError("url is not a valid absolute URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new UnsafeUrlError("url must use http or https");
  if (!u.hostname) throw new UnsafeUrlError("url must have a host");
  if (u.username || u.password) throw new UnsafeUrlError("url must not contain credentials");
  return u;
}

const bareHost = (h: string) => (h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h);

function lookupAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => dnsLookup(host, { all: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));
}

/** Resolve the URL's host and refuse it when any address is private (unless allowed). */
export async function checkUrlTarget(u: URL, allowPrivate: boolean): Promise<void> {
  if (allowPrivate) return;
  const host = bareHost(u.hostname);
  if (isIP(host)) {
    if (isPrivateAddress(host)) throw new UnsafeUrlError(`url points to a private, loopback or link-local address (${host})`);
    return;
  }
  let addrs: LookupAddress[];
  try {
    addrs = await lookupAll(host);
  } catch {
    throw new UnsafeUrlError(`url host ${host} does not resolve`);
  }
  const bad = addrs.find((a) => isPrivateAddress(a.address));
  if (bad) throw new UnsafeUrlError(`url host ${host} resolves to a private, loopback or link-local address (${bad.address})`);
}

/**
 * A `lookup` for http(s) agents that refuses private answers at connect time. IP-literal hosts never reach a
 * lookup function, so the dispatcher checks those itself before connecting.
 */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: object, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
      if (err) return cb(err, "", 4);
      if (!allowPrivate) {
        const bad = addrs.find((a) => isPrivateAddress(a.address));
        if (bad) {
          const e = new Error(`refused: ${hostname} resolves to a private address (${bad.address})`) as NodeJS.ErrnoException;
          e.code = "EPRIVATEADDR";
          return cb(e, "", 4);
        }
      }
      if ((options as { all?: boolean }).all) return cb(null, addrs);
      cb(null, addrs[0].address, addrs[0].family);
    });
  };
}
