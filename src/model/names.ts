// DNS names: what a VM, network or user may be called.

/** RFC 1123 host label: letters, digits, inner hyphens, at most 63. Lower-case is canonical. */
export const LABEL_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function isDnsLabel(name: string): boolean {
  return LABEL_RE.test(name);
}

/** A domain: dot-separated labels, at most 253 characters, no trailing dot (it is stripped). */
export function normalizeDomain(text: string): string | undefined {
  const d = text.trim().toLowerCase().replace(/\.$/, '');
  if (d.length === 0 || d.length > 253) return undefined;
  return d.split('.').every(isDnsLabel) ? d : undefined;
}
