// The appliance's guest-attribute writes: HTTP hands over a checked value for the VM a request
// came from, the store writes it in one transaction bound to that VM's record.
import type { Config } from '../config/schema.js';
import type { OpenedStore } from '../store/open.js';
import { putGuestAttribute } from '../store/guest-attributes.js';
import { GuestAttributeRefused, type GuestAttributeSink } from '../http/routes/guest-attributes.js';
import type { MetadataAppOptions } from '../http/app.js';

export function guestAttributes(cfg: Config, store: OpenedStore): MetadataAppOptions['guestAttributes'] {
  const { enabled, ...limits } = cfg.serve.guestAttributes;
  if (!enabled) return { limits };
  const sink: GuestAttributeSink = {
    async put(view, namespace, key, value, l) {
      const { vm } = view;
      const refused = await putGuestAttribute(store.kv, store.keys, vm, namespace, key, value, l.maxKeys);
      if (refused) throw new GuestAttributeRefused(refused.status, refused.message);
    },
  };
  return { sink, limits };
}
