import { describe, expect, it } from 'vitest';
import { placementOf, placementProblem } from './placement.js';
import { NetworkSchema, describeIssues } from './schema.js';

const net = { v: 1, name: 'lab', prefix6: '2001:db8::/64', domain: 'lab.example', metadata6: '2001:db8::53' };

describe('placement', () => {
  it('defaults: region = network name, zone = region + "a"; a zone alone implies its region', () => {
    expect(placementOf({ name: 'lab' })).toEqual({ region: 'lab', zone: 'laba' });
    expect(placementOf({ name: 'lab', region: 'eu-west-1' })).toEqual({ region: 'eu-west-1', zone: 'eu-west-1a' });
    expect(placementOf({ name: 'lab', zone: 'eu-west-1c' })).toEqual({ region: 'eu-west-1', zone: 'eu-west-1c' });
    expect(placementOf({ name: 'lab', region: 'r1', zone: 'r1b' })).toEqual({ region: 'r1', zone: 'r1b' });
  });

  it('every zone it serves minus its last character is its region (as botocore derives it)', () => {
    for (const n of [{ name: 'lab' }, { name: 'x' }, { name: 'a'.repeat(63) }, { name: 'n', region: 'us-east-1' }, { name: 'n', zone: 'ab9z' }]) {
      const p = placementOf(n);
      expect(p.zone.slice(0, -1)).toBe(p.region);
      expect(placementProblem(p.region, p.zone)).toBeUndefined();
    }
  });

  it('refuses regions and zones that are not of that form', () => {
    for (const region of ['', 'Lab', 'eu_west', '-eu', 'eu-', 'a'.repeat(64), 'eu west']) {
      expect(placementProblem(region, undefined)?.field, region).toBe('region');
    }
    for (const zone of ['a', 'lab1', 'lab-', 'lab-a', 'LABa', 'laB', '-laba', `${'a'.repeat(64)}a`]) {
      expect(placementProblem(undefined, zone)?.field, zone).toBe('zone');
    }
    expect(placementProblem('lab', 'labb')).toBeUndefined();
    expect(placementProblem('lab', 'laxa')?.message).toMatch(/must be the region "lab" followed by one letter/);
    expect(placementProblem('lab', 'labab')?.field).toBe('zone');
  });

  it('the network schema checks the pair and names the field', () => {
    expect(NetworkSchema.parse({ ...net, region: 'eu-west-1', zone: 'eu-west-1b' })).toMatchObject({ region: 'eu-west-1', zone: 'eu-west-1b' });
    const r = NetworkSchema.safeParse({ ...net, region: 'eu-west-1', zone: 'eu-west-2b' });
    expect(r.success).toBe(false);
    expect(describeIssues(r.error!)).toMatch(/^zone: "eu-west-2b" must be the region "eu-west-1"/);
    expect(NetworkSchema.parse(net)).not.toHaveProperty('region');
  });
});
