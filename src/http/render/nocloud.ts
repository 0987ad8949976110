// cloud-init NoCloud seed (`ds=nocloud;s=http://metadata/nocloud/`): meta-data, user-data,
// vendor-data and network-config (v2), all YAML or opaque text.
import { stringify } from 'yaml';
import type { VmView } from '../../registry/registry.js';
import { metadataAddresses } from '../../model/schema.js';
import { parsePrefix } from '../../model/ip.js';
import { FlatTree } from './tree.js';
import { BYTES, type Rendered } from './rendered.js';
import { placementOf } from '../../model/placement.js';
import { dataBytes } from '../../model/user-data.js';

const YAML_TYPE = 'text/yaml; charset=utf-8';

export function renderNoCloud(view: VmView): Map<string, Rendered> {
  const { vm, network } = view;
  const metaData = {
    'instance-id': vm.id,
    'local-hostname': view.fqdn,
    hostname: view.fqdn,
    'public-keys': view.authorizedKeys,
    // cloud-init's DataSource.availability_zone reads this key.
    'availability-zone': placementOf(network).zone,
  };
  const p6 = parsePrefix(network.prefix6, 6)!;
  const p4 = network.prefix4 ? parsePrefix(network.prefix4, 4) : undefined;
  const explicit = [
    ...view.addresses6.slice(1).map((a) => `${a}/${p6.length}`),
    ...view.addresses4.map((a) => `${a}/${p4?.length ?? 32}`),
  ];
  const networkConfig = {
    version: 2,
    ethernets: {
      nic0: {
        match: { macaddress: vm.mac },
        dhcp4: false,
        dhcp6: false,
        'accept-ra': true,
        ...(explicit.length ? { addresses: explicit } : {}),
        nameservers: { addresses: [...metadataAddresses(network).v6, ...metadataAddresses(network).v4], search: [network.domain] },
      },
    },
  };
  return new FlatTree()
    .leaf('meta-data', stringify(metaData, { lineWidth: 0 }), YAML_TYPE)
    .leaf('user-data', dataBytes(vm, 'userData') ?? '', BYTES)
    .leaf('vendor-data', dataBytes(vm, 'vendorData') ?? '', BYTES)
    .leaf('network-config', stringify(networkConfig, { lineWidth: 0 }), YAML_TYPE)
    .build();
}
