// The guard on etcd3's WatchManager (watch-guard.ts): a response for a watch id the manager no
// longer knows (a stale stream's) is dropped instead of thrown from the stream's data handler,
// which would end the process; responses for known watchers still reach them. On the library's
// real prototype, as the client installs it.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { createEtcdClient } from './client.js';

const { WatchManager } = createRequire(import.meta.url)('etcd3/lib/watch.js');

describe('etcd3 WatchManager guard', () => {
  it('drops a response for an unknown watch id, and still delivers to a known one', () => {
    createEtcdClient({ endpoints: ['127.0.0.1:1'] }).close(); // installs the guard, as every client does
    const got: unknown[] = [];
    const manager = Object.create(WatchManager.prototype);
    Object.assign(manager, {
      watchers: [{ id: '7', emit: (event: string, res: unknown) => got.push([event, res]) }],
      initialBackoff: { next: () => ({}) },
    });
    expect(() => manager.handleResponse({ watch_id: '3', canceled: false, events: [] })).not.toThrow();
    expect(() => manager.handleCreatedResponse({ watch_id: '3', created: true, canceled: true })).not.toThrow();
    manager.handleResponse({ watch_id: '7', canceled: false, events: [] });
    expect(got).toEqual([['data', { watch_id: '7', canceled: false, events: [] }]]);
  });
});
