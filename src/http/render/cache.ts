// Rendered answers per VM and flavour, built on first request and kept while the VM's revision
// stands. The registry's 'change' events drop the VMs they name (every VM on a reload), so no
// answer outlives a change; the revision check covers anything an event could miss.
import type { RegistryChange, VmView } from '../../registry/registry.js';
import type { Rendered } from './rendered.js';
import { renderNative } from './native.js';
import { renderOpenStack } from './openstack.js';
import { renderEc2, type Ec2Options } from './ec2.js';
import { renderNoCloud } from './nocloud.js';
import { GceDocument } from './gce.js';

const FLAT = {
  native: renderNative, openstack: renderOpenStack, nocloud: renderNoCloud,
  ec2: (view: VmView, o: RenderOptions) => renderEc2(view, o.ec2),
} as const;

export interface RenderOptions {
  ec2?: Ec2Options;
}
export type FlatFlavour = keyof typeof FLAT;

interface Entry {
  revision: number;
  flat: Partial<Record<FlatFlavour, Map<string, Rendered>>>;
  gce?: GceDocument;
}

export class RenderCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly opts: RenderOptions = {}) {}

  private entry(view: VmView): Entry {
    let e = this.entries.get(view.key);
    if (!e || e.revision !== view.revision) {
      e = { revision: view.revision, flat: {} };
      this.entries.set(view.key, e);
    }
    return e;
  }

  flat(view: VmView, flavour: FlatFlavour): Map<string, Rendered> {
    const e = this.entry(view);
    return (e.flat[flavour] ??= FLAT[flavour](view, this.opts));
  }

  gce(view: VmView): GceDocument {
    const e = this.entry(view);
    return (e.gce ??= new GceDocument(view));
  }

  invalidate(change: RegistryChange): void {
    if (change.all) this.entries.clear();
    else for (const key of change.vms) this.entries.delete(key);
  }

  get size(): number { return this.entries.size; }
}
