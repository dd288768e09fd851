import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** Where `npm run build -w @meshagent-oss/console` writes the console (the same from src/ and from the compiled dist/). */
export const CONSOLE_DIST = fileURLToPath(new URL("../../packages/console/dist/", import.meta.url));

/** The console's built index.html, or null when the console was not built (an install without dev dependencies). */
export function consoleIndex(dir: string): string | null {
  const file = join(dir, "index.html");
  return existsSync(file) ? readFileSync(file, "utf8") : null;
}

const wsOrigin = (url: string) => {
  const u = new URL(url);
  return `${u.protocol === "https:" ? "wss:" : "ws:"}//${u.host}`;
};

/**
 * The console's Content-Security-Policy: its own scripts and styles only (no inline code, no eval), the API and the
 * room WebSockets of this server (room URLs are built from the public URL), images from itself, data:
 * and blob: (file previews), and no framing.
 */
export function consoleCsp(publicUrl: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self'",
    `connect-src 'self' ${wsOrigin(publicUrl)}`,
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}
