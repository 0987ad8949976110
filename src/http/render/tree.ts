// A metadata tree flattened to path -> answer, the way EC2, OpenStack and NoCloud serve it:
// every directory answers with a listing of its children (sub-directories end in "/").
// Lookups are exact Map hits on a cleaned path, so nothing a client sends can walk elsewhere.
import { rendered, TEXT, type Rendered } from './rendered.js';

export class FlatTree {
  private readonly leaves = new Map<string, { body: string | Buffer<ArrayBuffer>; type: string }>();
  private readonly dirs = new Map<string, string[]>();
  private readonly listings = new Map<string, string>();

  constructor() {
    this.dirs.set('', []);
  }

  /** Adds a leaf at `path` ("a/b/c", no leading or trailing slash); parents become directories. */
  leaf(path: string, body: string | Buffer<ArrayBuffer>, type = TEXT): this {
    this.leaves.set(path, { body, type });
    this.link(path, false);
    return this;
  }

  /** An empty directory, listed by its parent. */
  dir(path: string): this {
    if (!this.dirs.has(path)) this.dirs.set(path, []);
    this.link(path, true);
    return this;
  }

  /** Replaces a directory's generated listing (EC2's `public-keys/` lists "0=name"). */
  listing(path: string, text: string): this {
    this.listings.set(path, text);
    return this;
  }

  private link(path: string, isDir: boolean): void {
    const cut = path.lastIndexOf('/');
    const parent = cut < 0 ? '' : path.slice(0, cut);
    const name = (cut < 0 ? path : path.slice(cut + 1)) + (isDir ? '/' : '');
    let siblings = this.dirs.get(parent);
    if (!siblings) {
      siblings = [];
      this.dirs.set(parent, siblings);
      if (parent !== '') this.link(parent, true);
    }
    if (!siblings.includes(name)) siblings.push(name);
  }

  /** Everything rendered: "" is the root listing; directories answer with or without the slash. */
  build(extraHeaders: Record<string, string> = {}): Map<string, Rendered> {
    const out = new Map<string, Rendered>();
    for (const [path, children] of this.dirs) out.set(path, rendered(this.listings.get(path) ?? children.join('\n'), TEXT, extraHeaders));
    for (const [path, l] of this.leaves) out.set(path, rendered(l.body, l.type, extraHeaders));
    return out;
  }
}

/** "a/b/" -> "a/b"; "" stays "". Callers have already refused dot segments and empty segments. */
export function trimSlashes(path: string): string {
  let s = 0;
  let e = path.length;
  while (s < e && path.charCodeAt(s) === 47) s++;
  while (e > s && path.charCodeAt(e - 1) === 47) e--;
  return s === 0 && e === path.length ? path : path.slice(s, e);
}
