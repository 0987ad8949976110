// Runs the real `dig` and reads its answer back: status, flags, sections, EDNS. Test-only.
import { execFile } from 'node:child_process';

export interface DigRecord { name: string; ttl: number; type: string; data: string }
export interface DigResult {
  status: string;
  flags: string[];
  question: string;
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  /** The OPT pseudo-section line ("; EDNS: version: 0, flags:; udp: 1232"), if any. */
  edns?: string;
  raw: string;
}

export function dig(server: string, port: number, args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('dig', [`@${server}`, '-p', String(port), '+tries=1', '+time=3', '+nocookie', ...args], { timeout: 15_000 }, (err, stdout) => {
      if (err && !stdout) return reject(err);
      resolve(parseDig(stdout));
    });
  });
}

export function parseDig(raw: string): DigResult {
  const status = /status: ([A-Z]+)/.exec(raw)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([a-z ]*);/.exec(raw)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const edns = /^; EDNS: .*$/m.exec(raw)?.[0];
  const sections: Record<string, DigRecord[]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] };
  let question = '';
  let current: string | undefined;
  for (const line of raw.split('\n')) {
    const head = /^;; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (head) {
      current = head[1];
      continue;
    }
    if (!line.trim()) {
      current = undefined;
      continue;
    }
    if (current === 'QUESTION') {
      question = line.replace(/^;/, '').split(/\s+/)[0];
    } else if (current && !line.startsWith(';')) {
      const [name, ttl, , type, ...data] = line.split(/\s+/);
      sections[current].push({ name, ttl: Number(ttl), type, data: data.join(' ') });
    }
  }
  return { status, flags, question, answer: sections.ANSWER, authority: sections.AUTHORITY, additional: sections.ADDITIONAL, edns, raw };
}
