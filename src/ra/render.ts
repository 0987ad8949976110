// Router advertisement configs for a network: the prefix for SLAAC, RDNSS = the appliance (every
// replica's address: a guest's resolver moves on to the next when one is down),
// DNSSL = the search domain. That is all a guest needs to find `metadata`: no DHCP, no IPv4.
import { metadataAddresses, type Network } from '../model/schema.js';

export type RaFormat = 'radvd' | 'dnsmasq';

export function bridgeOf(network: Network): string {
  return network.bridge ?? `br-${network.name}`.slice(0, 15);
}

export function renderRadvd(network: Network, iface = bridgeOf(network)): string {
  return `# radvd.conf for network ${network.name} (uncloud-metadata ra-config)
interface ${iface}
{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    AdvManagedFlag off;
    AdvOtherConfigFlag off;
    prefix ${network.prefix6}
    {
        AdvOnLink on;
        AdvAutonomous on;
    };
    RDNSS ${metadataAddresses(network).v6.join(' ')}
    {
        AdvRDNSSLifetime 30;
    };
    DNSSL ${network.domain}
    {
        AdvDNSSLLifetime 30;
    };
};
`;
}

export function renderDnsmasq(network: Network, iface = bridgeOf(network)): string {
  const base = network.prefix6.split('/')[0];
  const len = network.prefix6.split('/')[1];
  return `# dnsmasq.conf for network ${network.name} (uncloud-metadata ra-config): router advertisements only
port=0
interface=${iface}
bind-interfaces
enable-ra
ra-param=${iface},10
dhcp-range=${base},ra-only,${len}
dhcp-option=option6:dns-server,${metadataAddresses(network).v6.map((a) => `[${a}]`).join(',')}
dhcp-option=option6:domain-search,${network.domain}
`;
}

export function renderRa(network: Network, format: RaFormat, iface?: string): string {
  return format === 'radvd' ? renderRadvd(network, iface) : renderDnsmasq(network, iface);
}
