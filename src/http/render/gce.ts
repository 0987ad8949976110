// GCE-style metadata (computeMetadata/v1): a tree of directories and leaves answered per path as
// a listing, a leaf, or (?recursive=true) the whole subtree as JSON (camelCase keys, as GCE does,
// except attribute names) or as "path value" lines (?alt=text). Every answer carries an ETag.
import type { VmView } from '../../registry/registry.js';
import { metadataAddresses } from '../../model/schema.js';
import { JSON_TYPE, bareEtag, rendered, type Rendered } from './rendered.js';
import { gceInstanceId, instanceType, namedKeys } from './identity.js';
import { placementOf } from '../../model/placement.js';

type Leaf = string | number | string[];
export class GDir {
  constructor(
    readonly entries: Map<string, GNode>,
    /** Children are "0", "1", ... and recursive JSON makes an array. */
    readonly array = false,
    /** Attribute directories keep their names in JSON (no camelCase). */
    readonly keepNames = false,
  ) {}
}
export type GNode = Leaf | GDir;

const GCE_TEXT = 'application/text';
const FLAVOR = { 'metadata-flavor': 'Google' };

const dir = (o: Record<string, GNode | undefined>, keepNames = false) =>
  new GDir(new Map(Object.entries(o).filter((e): e is [string, GNode] => e[1] !== undefined)), false, keepNames);

/**
 * GCE attribute values are text. UTF-8 user-data is served as it is; other bytes are served in
 * base64 with the attribute `user-data-encoding: base64`, the convention cloud-init's GCE
 * datasource decodes (read_md), so it still gets the exact bytes.
 */
function gceUserData(vm: VmView['vm']): Record<string, string> {
  if (vm.userData !== undefined) return { 'user-data': vm.userData };
  if (vm.userDataBase64 !== undefined) return { 'user-data': vm.userDataBase64, 'user-data-encoding': 'base64' };
  return {};
}

export function gceTree(view: VmView): GDir {
  const { vm } = view;
  const project = 0;
  const sshKeys = namedKeys(view).map((k) => `${k.user}:${k.key}`).join('\n');
  const attributes = dir({
    ...vm.meta,
    'ssh-keys': sshKeys || undefined,
    ...gceUserData(vm),
  }, true);
  const nic = dir({
    ip: view.addresses4[0] ?? '',
    ipv6s: view.addresses6,
    mac: vm.mac,
    network: `projects/${project}/networks/${vm.network}`,
    'dns-servers': [...metadataAddresses(view.network).v6, ...metadataAddresses(view.network).v4],
  });
  return dir({
    instance: dir({
      attributes,
      description: '',
      hostname: view.fqdn,
      id: gceInstanceId(view),
      image: '',
      'machine-type': `projects/${project}/machineTypes/${instanceType(view)}`,
      'maintenance-event': 'NONE',
      name: vm.name,
      'network-interfaces': new GDir(new Map([['0', nic]]), true),
      tags: [],
      // As GCE: the numeric project id, then the zone (clients take the last segment).
      zone: `projects/${project}/zones/${placementOf(view.network).zone}`,
    }),
    project: dir({
      attributes: dir({}, true),
      'numeric-project-id': project,
      'project-id': vm.owner ?? vm.network,
    }),
  });
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function toJson(node: GNode): unknown {
  if (!(node instanceof GDir)) return node;
  if (node.array) return [...node.entries.values()].map(toJson);
  const out: Record<string, unknown> = {};
  for (const [k, v] of node.entries) out[node.keepNames ? k : camel(k)] = toJson(v);
  return out;
}

const leafText = (v: Leaf) => (typeof v === 'string' ? v : JSON.stringify(v));

function textLines(node: GNode, prefix: string, out: string[]): void {
  if (!(node instanceof GDir)) {
    out.push(`${prefix} ${leafText(node)}`);
    return;
  }
  for (const [k, v] of node.entries) textLines(v, prefix ? `${prefix}/${k}` : k, out);
}

export type GceAlt = 'json' | 'text' | undefined;

/** Answers for one VM revision, memoised per (path, recursive, alt). */
export class GceDocument {
  private readonly root: GDir;
  private readonly memo = new Map<string, Rendered>();

  constructor(view: VmView) {
    this.root = gceTree(view);
  }

  /** `path` is below computeMetadata/v1, without slashes at either end ("" is the root). */
  answer(path: string, recursive: boolean, alt: GceAlt): Rendered | undefined {
    const key = `${path}\0${recursive ? 1 : 0}\0${alt ?? ''}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    const node = this.find(path);
    if (node === undefined) return undefined;
    const r = bareEtag(this.render(node, recursive, alt));
    this.memo.set(key, r);
    return r;
  }

  private find(path: string): GNode | undefined {
    let node: GNode = this.root;
    if (path === '') return node;
    for (const seg of path.split('/')) {
      if (!(node instanceof GDir)) return undefined;
      const next: GNode | undefined = node.entries.get(seg);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  private render(node: GNode, recursive: boolean, alt: GceAlt): Rendered {
    if (node instanceof GDir) {
      if (recursive) {
        if (alt === 'text') {
          const lines: string[] = [];
          textLines(node, '', lines);
          return rendered(lines.join('\n'), GCE_TEXT, FLAVOR);
        }
        return rendered(JSON.stringify(toJson(node)), JSON_TYPE, FLAVOR);
      }
      const names = [...node.entries].map(([k, v]) => (v instanceof GDir ? `${k}/` : k));
      return alt === 'json' ? rendered(JSON.stringify(names), JSON_TYPE, FLAVOR) : rendered(`${names.join('\n')}\n`, GCE_TEXT, FLAVOR);
    }
    return alt === 'json' ? rendered(JSON.stringify(node), JSON_TYPE, FLAVOR) : rendered(leafText(node), GCE_TEXT, FLAVOR);
  }
}
