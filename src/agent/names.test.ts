import { describe, expect, it } from 'vitest';
import { bridgeName, tapName, chainName } from './names.js';

describe('host-side names', () => {
  it('fits taps in 15 characters, keeps them readable, and tells VMs with one stem apart', () => {
    const long = 'a-very-long-vm-name-that-goes-on-and-on';
    expect(tapName('lab', long).length).toBeLessThanOrEqual(15);
    expect(tapName('lab', 'web1')).toMatch(/^ucweb1-[0-9a-f]{6}$/);
    expect(tapName('lab', `${long}-1`)).not.toBe(tapName('lab', `${long}-2`));
    expect(tapName('lab', 'web1')).not.toBe(tapName('prod', 'web1'));
    expect(tapName('lab', 'web1')).toBe(tapName('lab', 'web1'));
  });

  it('uses the network\'s bridge, else br-NAME cut to 15, and nft-safe chain names', () => {
    const net = { v: 1 as const, name: 'a-rather-long-network', prefix6: 'fd00::/64', domain: 'x.test', metadata6: 'fd00::53', upstreams: [] };
    expect(bridgeName(net)).toBe('br-a-rather-lon');
    expect(bridgeName({ ...net, bridge: 'virbr0' })).toBe('virbr0');
    expect(chainName('ucweb1-4bf145')).toBe('vm_ucweb1_4bf145');
  });
});
