// What a handler may read from a request, the cheap way: node:http's own socket and raw target
// when served by @hono/node-server, the Fetch Request otherwise (app.request in tests). Headers
// are read once, raw, by guards.screen.
import type { Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';

export type Env = { Bindings: Partial<HttpBindings> };
export type Ctx = Context<Env>;

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
