// Names every flavour derives from a VM the same way: ids in each cloud's shape and named keys.
import type { VmView } from '../../registry/registry.js';

/** EC2-shaped instance id: "i-" and 17 hex digits of the VM's UUID. */
export function ec2InstanceId(view: VmView): string {
  return `i-${view.vm.id.replace(/-/g, '').slice(0, 17)}`;
}

/** GCE-shaped numeric id, below 2^53 so JSON readers keep every digit. */
export function gceInstanceId(view: VmView): number {
  return parseInt(view.vm.id.replace(/-/g, '').slice(0, 13), 16);
}

export interface NamedKey { name: string; key: string; user: string }

/** The owner's keys under their names, then the VM's own as "vm-N": the order of authorizedKeys. */
export function namedKeys(view: VmView): NamedKey[] {
  const user = view.owner?.name ?? 'root';
  return [
    ...(view.owner?.keys.map((k) => ({ name: k.name, key: k.key, user })) ?? []),
    ...view.vm.sshKeys.map((key, i) => ({ name: `vm-${i}`, key, user })),
  ];
}

export function instanceType(view: VmView): string {
  return `uc.${view.vm.resources.cpus}cpu.${view.vm.resources.memoryMiB}mib`;
}
