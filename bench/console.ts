/**
 * The web console: its bundle size, and the time until the rooms page is interactive with 10k rooms.
 *
 *   npx tsx bench/console.ts          (BENCH_ROUNDS, default 7; needs the console built: npm run build -w @meshagent-oss/console,
 *                                      and /usr/bin/chromium)
 *
 * 1. Size (gzip, zlib level 9): what the browser loads first — the entry chunk, its static imports (modulepreload) and
 *    the stylesheet — from dist/.vite/manifest.json, then the same plus the rooms page's own chunks, then every chunk.
 *    Goal: initial JS ≤ 250 KB gzip.
 * 2. Time to interactive of /console/projects/<p>/rooms in headless Chromium with the HTTP cache off (every round loads
 *    every file again): from navigation start (performance.now() in the page) until the first page of rooms is in the
 *    table and the filter box is enabled; then a filter's round trip (typing a name until the table shows only the
 *    matches). A project with 10 000 rooms against one with 10 rooms, same server, alternating rounds; the ratio says
 *    what the 10k rooms cost (paging: the page asks for 50 rooms, whatever the total). Goal: ≤ 1 s with 10k rooms.
 */
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "../test/helpers/server.js";
import { launchChromium } from "../test/helpers/browser.js";
import { signedIn, PASSWORD } from "../test/helpers/console.js";
import { loadRooms } from "./rooms-load.js";
import { median, ROOT } from "./lib.js";

const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const DIST = join(ROOT, "packages/console/dist");
type Chunk = { file: string; imports?: string[]; dynamicImports?: string[]; css?: string[]; isEntry?: boolean; src?: string };
const manifest = JSON.parse(readFileSync(join(DIST, ".vite/manifest.json"), "utf8")) as Record<string, Chunk>;
const gz = (file: string) => gzipSync(readFileSync(join(DIST, file)), { level: 9 }).length;
const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

/** The files a chunk pulls in statically (itself, its imports, recursively), and their CSS. */
function closure(key: string, seen = new Set<string>()): Set<string> {
  if (seen.has(key)) return seen;
  seen.add(key);
  for (const i of manifest[key].imports ?? []) closure(i, seen);
  return seen;
}
const filesOf = (keys: Set<string>) => {
  const js = new Set<string>();
  const css = new Set<string>();
  for (const k of keys) {
    js.add(manifest[k].file);
    for (const c of manifest[k].css ?? []) css.add(c);
  }
  return { js: [...js], css: [...css] };
};
const sum = (files: string[]) => files.reduce((n, f) => n + gz(f), 0);
const entry = Object.keys(manifest).find((k) => manifest[k].isEntry)!;
const shell = filesOf(closure(entry));
const roomsKey = Object.keys(manifest).find((k) => manifest[k].src?.endsWith("src/pages/rooms.tsx"))!;
const roomsPage = filesOf(closure(roomsKey, closure(entry)));
const everything = Object.values(manifest).map((c) => c.file);
console.log("== console bundle (gzip -9) ==");
console.log(`initial JS (entry + static imports): ${kb(sum(shell.js))}  (goal <= 250 KB) in ${shell.js.length} file(s); CSS ${kb(sum(shell.css))}`);
console.log(`initial JS of the rooms page (the shell + its page chunk): ${kb(sum(roomsPage.js))}; CSS ${kb(sum(roomsPage.css))}`);
console.log(`every chunk (all pages, loaded on demand): ${kb(sum(everything))} in ${everything.length} files`);

const s = await startServer({ env: { MESHAGENT_RATE_LIMIT: "0" } });
try {
  await s.ctx.users.setPassword(s.admin.userId, PASSWORD);
  const big = s.admin.projectId;
  const small = (await s.client(s.admin.userToken).createProject("ten rooms")) as unknown as { id: string };
  await loadRooms(s.ctx.store, big, 10_000);
  await loadRooms(s.ctx.store, small.id, 10);
  const browser = await launchChromium();
  const { page } = await signedIn(browser, s, s.admin.email);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });

  async function round(projectId: string, rows: number) {
    await page.goto(`${s.url}/console/projects/${projectId}/rooms`);
    await page.waitForFunction((n) => document.querySelectorAll("main table tbody tr").length >= n, rows, { timeout: 30_000, polling: "raf" });
    const filter = page.getByLabel(/filter/i);
    await filter.waitFor();
    const tti = await page.evaluate(() => performance.now());
    // A name that exists in both: r0000000 is room 0 of each load.
    const t0 = Date.now();
    await filter.fill("r0000000");
    await page.waitForFunction(() => document.querySelectorAll("main table tbody tr").length === 1, null, { timeout: 30_000, polling: "raf" });
    return { tti, filter: Date.now() - t0 };
  }
  await round(big, 50);
  await round(small.id, 10);
  const tBig: number[] = [];
  const tSmall: number[] = [];
  const fBig: number[] = [];
  const fSmall: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const a = await round(big, 50);
    const b = await round(small.id, 10);
    tBig.push(a.tti);
    fBig.push(a.filter);
    tSmall.push(b.tti);
    fSmall.push(b.filter);
  }
  console.log(`== rooms page, headless Chromium, cache off, median of ${rounds} alternating rounds ==`);
  console.log(
    `interactive with 10k rooms: ${median(tBig).toFixed(0)} ms (goal <= 1000 ms); with 10 rooms: ${median(tSmall).toFixed(0)} ms; ratio ${(median(tBig) / median(tSmall)).toFixed(2)}x`,
  );
  console.log(
    `filter round trip with 10k rooms: ${median(fBig).toFixed(0)} ms; with 10 rooms: ${median(fSmall).toFixed(0)} ms; ratio ${(median(fBig) / median(fSmall)).toFixed(2)}x`,
  );
  await browser.close();
} finally {
  await s.close();
}
