// Which interfaces the agent puts guests on: the network record names the bridge and a store
// writer is not the host's administrator. Real `ip` in a network namespace.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns } from '../../test/e2e/netns.js';
import { BRIDGE_ALIAS, BridgeRefused, Links } from './links.js';

describe('bridges the agent will use', () => {
  let ns: Netns;
  let links: Links;
  const MAC = '02:aa:bb:cc:dd:01';

  beforeAll(async () => {
    ns = await Netns.create('uclnk');
    links = new Links(ns.wrapper('ip'), ns.wrapper('cat'));
    await ns.sh('ip link add mgmt0 type veth peer name mgmt1; ip link add hostuplink type bridge');
  });
  afterAll(async () => {
    await ns?.delete();
  });

  it('creates its own bridge with the fixed MAC and its label, and may use it again under any allow list', async () => {
    expect(await links.ensureBridge('br-own', MAC, [])).toBe('created');
    const link = JSON.parse(await ns.ip(['-j', 'link', 'show', 'dev', 'br-own']))[0];
    expect([link.address, link.ifalias]).toEqual([MAC, BRIDGE_ALIAS]);
    expect(await links.ensureBridge('br-own', MAC, [])).toBe('fixed');
  });

  it('never uses a link that is not a bridge, and leaves it as it was', async () => {
    await expect(links.ensureBridge('mgmt0', MAC)).rejects.toThrow(new BridgeRefused('mgmt0 exists and is not a bridge'));
    const link = JSON.parse(await ns.ip(['-j', 'link', 'show', 'dev', 'mgmt0']))[0];
    expect(link.flags).not.toContain('UP');
  });

  it('with agent.bridges set, adopts only the bridges listed there', async () => {
    await expect(links.ensureBridge('hostuplink', MAC, ['br-lab'])).rejects.toThrow('bridge hostuplink was not made by the agent and is not in agent.bridges');
    expect(await links.ensureBridge('hostuplink', MAC, ['hostuplink'])).toBe('floating');
    expect(await links.ensureBridge('hostuplink', MAC)).toBe('floating'); // unset: any existing bridge, as before
  });
});
