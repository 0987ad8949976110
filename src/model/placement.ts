// Where a network's VMs are said to run: a region and an availability zone, the same in every
// flavour. The zone is always the region plus one letter, because that is how clients derive the
// region (botocore: the zone minus its last character; AWS zones look like "us-east-1a").
// A network stores neither unless given: the defaults are computed, so records written without
// them stay readable by older versions.

/** Lower-case letters, digits and inner hyphens, at most 63 (a DNS label, so it fits anywhere). */
export const REGION_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const ZONE_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)[a-z]$/;

export interface Placement { region: string; zone: string }

/** Which field is refused and why, or undefined when the pair is fine (either may be absent). */
export function placementProblem(region: string | undefined, zone: string | undefined): { field: 'region' | 'zone'; message: string } | undefined {
  if (region !== undefined && !REGION_RE.test(region)) {
    return { field: 'region', message: `"${region}" must be lower-case letters, digits and inner hyphens, at most 63 (e.g. "lab" or "eu-west-1")` };
  }
  if (zone === undefined) return undefined;
  if (!ZONE_RE.test(zone)) return { field: 'zone', message: `"${zone}" must be a region followed by one letter a-z (e.g. "laba" or "eu-west-1a")` };
  if (region !== undefined && zone.slice(0, -1) !== region) {
    return { field: 'zone', message: `"${zone}" must be the region "${region}" followed by one letter (e.g. "${region}a"): clients derive the region by dropping the zone's last character` };
  }
  return undefined;
}

/**
 * The placement served for a network: the region given (or the one its zone implies, or the
 * network's name), and the zone given (or the region plus "a").
 */
export function placementOf(network: { name: string; region?: string; zone?: string }): Placement {
  const region = network.region ?? network.zone?.slice(0, -1) ?? network.name;
  return { region, zone: network.zone ?? `${region}a` };
}
