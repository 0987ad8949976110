// EC2 IMDS: the meta-data tree with directory listings, user-data and the identity document.
// Every dated version serves the same tree (clients probe for the newest they know).
import type { VmView } from '../../registry/registry.js';
import { FlatTree } from './tree.js';
import { BYTES, JSON_TYPE, type Rendered } from './rendered.js';
import { ec2InstanceId, instanceType, namedKeys } from './identity.js';
import { placementOf } from '../../model/placement.js';
import { dataBytes } from '../../model/user-data.js';

/** The versions "/" lists; every other YYYY-MM-DD is served too, as AWS does. */
export const EC2_VERSIONS = ['1.0', '2009-04-04', '2016-09-02', '2018-09-24', '2021-03-23', 'latest'];
const DATED = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$/;

export function isEc2Version(segment: string): boolean {
  return segment === 'latest' || segment === '1.0' || DATED.test(segment);
}

/** Paths relative to a version ("meta-data/instance-id"); "" is the version's own listing. */
export interface Ec2Options {
  /** The identity document's accountId (12 digits, from the identity config). */
  accountId?: string;
  /** Signatures are served (a key file is configured): list them beside the document, as AWS does. */
  signed?: boolean;
}

export function renderEc2(view: VmView, opts: Ec2Options = {}): Map<string, Rendered> {
  const { vm } = view;
  const id = ec2InstanceId(view);
  const keys = namedKeys(view);
  const placement = placementOf(view.network);
  const t = new FlatTree();
  const md = (p: string, v: string) => t.leaf(`meta-data/${p}`, v);
  md('ami-id', 'ami-00000000');
  md('ami-launch-index', '0');
  md('hostname', view.fqdn);
  md('instance-id', id);
  md('instance-type', instanceType(view));
  md('local-hostname', view.fqdn);
  if (view.addresses4.length) md('local-ipv4', view.addresses4[0]);
  md('ipv6', view.addresses6[0]);
  md('mac', vm.mac);
  md('placement/availability-zone', placement.zone);
  md('placement/region', placement.region);
  if (keys.length) {
    keys.forEach((k, i) => md(`public-keys/${i}/openssh-key`, k.key));
    t.listing('meta-data/public-keys', keys.map((k, i) => `${i}=${k.name}`).join('\n'));
  }
  const nic = `network/interfaces/macs/${vm.mac}`;
  md(`${nic}/device-number`, '0');
  md(`${nic}/interface-id`, `eni-${vm.id.replace(/-/g, '').slice(0, 17)}`);
  md(`${nic}/local-hostname`, view.fqdn);
  md(`${nic}/mac`, vm.mac);
  md(`${nic}/ipv6s`, view.addresses6.join('\n'));
  if (view.addresses4.length) md(`${nic}/local-ipv4s`, view.addresses4.join('\n'));
  md(`${nic}/subnet-ipv6-cidr-blocks`, view.network.prefix6);
  if (view.network.prefix4) md(`${nic}/subnet-ipv4-cidr-block`, view.network.prefix4);
  t.dir('meta-data/tags/instance');
  for (const [k, v] of Object.entries(vm.meta)) md(`tags/instance/${k}`, v);
  const userData = dataBytes(vm, 'userData');
  if (userData) t.leaf('user-data', userData, BYTES);
  t.leaf('dynamic/instance-identity/document', `${JSON.stringify({
    accountId: opts.accountId ?? '000000000000',
    architecture: 'x86_64',
    availabilityZone: placement.zone,
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    imageId: 'ami-00000000',
    instanceId: id,
    instanceType: instanceType(view),
    kernelId: null,
    ramdiskId: null,
    pendingTime: vm.createdAt,
    privateIp: view.addresses4[0] ?? null,
    region: placement.region,
    version: '2017-09-30',
  }, null, 2)}\n`, JSON_TYPE);
  if (opts.signed) t.listing('dynamic/instance-identity', 'document\npkcs7\nrsa2048\nsignature');
  return t.build();
}
