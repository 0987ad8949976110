// What a handler may read from a request, the cheap way: node:http's own header list and socket
// when served by @hono/node-server, the Fetch Request otherwise (app.request in tests).
import type { Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';

export type Env = { Bindings: Partial<HttpBindings> };
export type Ctx = Context<Env>;

/**
 * A header by lower-case name (its first value). Served by node:http, this scans rawHeaders:
 * touching `incoming.headers` would build a whole lower-cased object per request, a visible
 * cost next to a pre-rendered answer. (The guards read every header once, in guards.screen.)
 */
export function header(c: Ctx, name: string): string | undefined {
  const raw = c.env?.incoming?.rawHeaders;
  if (raw) {
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i];
      if (n.length === name.length && (n === name || n.toLowerCase() === name)) return raw[i + 1];
    }
    return undefined;
  }
  return c.req.raw.headers.get(name) ?? undefined;
}

/** The socket's remote address: the only thing identity is ever decided from. */
export function remoteAddress(c: Ctx): string | undefined {
  return c.env?.incoming?.socket?.remoteAddress;
}

/** The request target exactly as the client sent it (before any URL normalisation). */
export function target(c: Ctx): string {
  const raw = c.env?.incoming?.url;
  if (raw !== undefined) return raw;
  const u = new URL(c.req.url);
  return u.pathname + u.search;
}

/** Runs `then` on a value or a promise of it, staying synchronous when it can. */
export function after<T, R>(v: T | Promise<T>, then: (v: T) => R | Promise<R>): R | Promise<R> {
  return v instanceof Promise ? v.then(then) : then(v);
}
