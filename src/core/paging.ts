import { badRequest } from "./errors.js";

export const MAX_PAGE = 1000;

/** Clamp a page size: the contract's routes default differently, every route caps at MAX_PAGE. */
export function pageSize(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value < 0) throw badRequest("limit must not be negative");
  return Math.min(value, MAX_PAGE);
}

export function pageOffset(value: number | undefined): number {
  if (value === undefined) return 0;
  if (value < 0) throw badRequest("offset must not be negative");
  return value;
}

/** Escape a user-supplied substring for a LIKE pattern with ESCAPE '\\'. */
export function likePattern(s: string): string {
  return "%" + s.toLowerCase().replace(/[\\%_]/g, (c) => "\\" + c) + "%";
}
