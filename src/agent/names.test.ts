import { describe, expect, it } from 'vitest';
import { bridgeMac, bridgeName, chainName, tapHostMac, tapName } from './names.js';

describe('host-side names', () => {
  it('names a tap uc + the 12 hex digits of the VM\'s MAC: 14 characters, one per MAC', () => {
    expect(tapName('52:54:00:e2:e0:01')).toBe('uc525400e2e001');
    expect(tapName('52:54:00:E2:E0:01')).toBe('uc525400e2e001');
    expect(tapName('52:54:00:e2:e0:01').length).toBeLessThanOrEqual(15);
    expect(tapName('52:54:00:e2:e0:01')).not.toBe(tapName('52:54:00:e2:e0:02'));
  });

  it('uses the network\'s bridge, else br-NAME cut to 15, and nft-safe chain names', () => {
    const net = { v: 1 as const, name: 'a-rather-long-network', prefix6: 'fd00::/64', domain: 'x.test', metadata6: 'fd00::53', upstreams: [] };
    expect(bridgeName(net)).toBe('br-a-rather-lon');
    expect(bridgeName({ ...net, bridge: 'virbr0' })).toBe('virbr0');
    expect(chainName('uc525400e2e001')).toBe('vm_uc525400e2e001');
  });

  it('gives bridges a stable locally administered MAC per host and network, and taps fe: MACs', () => {
    expect(bridgeMac('hv1', 'lab')).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(bridgeMac('hv1', 'lab')).toBe(bridgeMac('hv1', 'lab'));
    expect(bridgeMac('hv1', 'lab')).not.toBe(bridgeMac('hv2', 'lab'));
    expect(bridgeMac('hv1', 'lab')).not.toBe(bridgeMac('hv1', 'prod'));
    const tap = tapHostMac('52:54:00:e2:e0:01');
    expect(tap).toMatch(/^fe(:[0-9a-f]{2}){5}$/);
    expect(tap).not.toBe(tapHostMac('52:54:00:e2:e0:02'));
    // Never a guest's own MAC, even a guest whose MAC starts with fe: and shares the rest.
    expect(tap).not.toBe('fe:54:00:e2:e0:01');
  });
});
