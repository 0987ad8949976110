// etcd3 1.1.2's WatchManager throws from its stream's 'data' handler when a response names a watch
// id it no longer knows; thrown there, it is an uncaught exception and ends the process. It
// happens after a stream error: the library cancels the old stream and clears every watcher's
// id, but responses the old stream had already buffered are still delivered (measured here: an
// appliance whose etcd restarted while it was frozen died this way about one run in ten of
// test/reliability/etcd-outage.test.ts). Those responses are stale by construction, and the
// source reloads everything after every reconnect anyway (source.ts), so they are dropped.
// Patched once, on the library's prototype, because the library offers no hook for it.
interface WatchResponse { watch_id: string; canceled?: boolean; created?: boolean }
interface Manager {
  watchers: { id: string | null }[];
  handleResponse(res: WatchResponse): void;
  handleCreatedResponse(res: WatchResponse): void;
}

let guarded = false;

export function guardWatchManager(WatchManager: { prototype: Manager }): void {
  if (guarded) return;
  guarded = true;
  const proto = WatchManager.prototype;
  const handleResponse = proto.handleResponse;
  proto.handleResponse = function (this: Manager, res: WatchResponse) {
    if (!this.watchers.some((w) => w.id === res.watch_id)) return; // a stale stream's response
    handleResponse.call(this, res);
  };
  const handleCreated = proto.handleCreatedResponse;
  proto.handleCreatedResponse = function (this: Manager, res: WatchResponse) {
    // A refused creation with no watcher waiting for one: the same staleness.
    if (res.canceled && !this.watchers.some((w) => w.id === null)) return;
    handleCreated.call(this, res);
  };
}
