import type { createContext } from "./wiring.js";

/**
 * Everything a route file may use: exactly what `createContext` (wiring.ts) builds, less `close()`. Tests build
 * it the same way. There is no second list to keep: a service added there is on the context.
 */
export type AppContext = Omit<Awaited<ReturnType<typeof createContext>>, "close">;
