// OpenStack (Nova) metadata: /openstack lists versions; every version serves the same files.
import ipaddr from 'ipaddr.js';
import type { VmView } from '../../registry/registry.js';
import { metadataAddresses } from '../../model/schema.js';
import { parsePrefix } from '../../model/ip.js';
import { FlatTree } from './tree.js';
import { BYTES, JSON_TYPE, type Rendered } from './rendered.js';
import { namedKeys } from './identity.js';
import { placementOf } from '../../model/placement.js';
import { dataBytes } from '../../model/user-data.js';
import { vendorDataString } from './mime.js';

/** The versions cloud-init knows (sources/helpers/openstack.py), oldest first. */
export const OPENSTACK_VERSIONS = ['2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27'];

const json = (v: unknown) => `${JSON.stringify(v)}\n`;

export function renderOpenStack(view: VmView): Map<string, Rendered> {
  const { vm } = view;
  const keys = namedKeys(view);
  const metaData = {
    uuid: vm.id,
    name: vm.name,
    hostname: view.fqdn,
    public_keys: Object.fromEntries(keys.map((k) => [k.name, k.key])),
    keys: keys.map((k) => ({ name: k.name, type: 'ssh', data: k.key })),
    meta: vm.meta,
    availability_zone: placementOf(view.network).zone,
    project_id: vm.owner ?? '',
    launch_index: 0,
    devices: [],
  };
  const userData = dataBytes(vm, 'userData');
  const vendor = vendorJson(vm);
  const tree = new FlatTree();
  for (const version of [...OPENSTACK_VERSIONS, 'latest']) {
    tree.leaf(`${version}/meta_data.json`, json(metaData), JSON_TYPE);
    if (userData) tree.leaf(`${version}/user_data`, userData, BYTES);
    tree.leaf(`${version}/vendor_data.json`, json(vendor), JSON_TYPE);
    tree.leaf(`${version}/vendor_data2.json`, json({}), JSON_TYPE);
    tree.leaf(`${version}/network_data.json`, json(networkData(view)), JSON_TYPE);
  }
  // The version listing is plain lines, no trailing slashes (cloud-init reads it line by line).
  tree.listing('', [...OPENSTACK_VERSIONS, 'latest'].join('\n'));
  return tree.build();
}

/**
 * vendor_data.json holds vendor-data as a JSON string under "cloud-init" (what cloud-init's
 * convert_vendordata takes). Text goes as it is; other bytes cannot be a JSON string and go as
 * what cloud-init would make of them (mime.ts).
 */
function vendorJson(vm: VmView['vm']): Record<string, string> {
  if (vm.vendorData !== undefined) return { 'cloud-init': vm.vendorData };
  const bytes = dataBytes(vm, 'vendorData');
  return bytes ? { 'cloud-init': vendorDataString(bytes) } : {};
}

/**
 * The IPv6 network as SLAAC on one link (the EUI-64 address comes from router advertisements),
 * explicit IPv4 addresses as static networks, and the appliance as the DNS service. Explicit
 * IPv6 addresses are left out: Nova's static "ipv6" type makes cloud-init turn accept-ra off,
 * which would drop the SLAAC address and route.
 */
export function networkData(view: VmView) {
  const net = view.network;
  const { v6, v4 } = metadataAddresses(net);
  const dns = [...v6, ...v4].map((address) => ({ type: 'dns', address }));
  const link = 'interface0';
  const p4 = net.prefix4 ? parsePrefix(net.prefix4, 4) : undefined;
  return {
    links: [{ id: link, type: 'phy', ethernet_mac_address: view.vm.mac }],
    networks: [
      {
        id: 'network0', link, type: 'ipv6_slaac', network_id: net.name,
        ip_address: view.addresses6[0], netmask: ipaddr.IPv6.subnetMaskFromPrefixLength(64).toString(),
        routes: [], services: dns,
      },
      ...view.addresses4.map((a, i) => ({
        id: `network${i + 1}`, link, type: 'ipv4', network_id: net.name,
        ip_address: a, netmask: ipaddr.IPv4.subnetMaskFromPrefixLength(p4?.length ?? 32).toString(),
        routes: [], services: dns,
      })),
    ],
    services: dns,
  };
}
