// Propagation: one etcd transaction (a new VM, and a new meta value on the probe VM) -> the new
// name answered by DNS and the new value served by HTTP. Both are polled from the moment the
// write is sent, one request in flight each, ~1 ms apart; p50/p99 over `count` changes.
import { request, Agent } from 'node:http';
import { Etcd3 } from 'etcd3';
import { Keys } from '../../dist/store/keys.js';
import { DnsClient } from './dns-client.mjs';
import { percentile, sleep } from './proc.mjs';
import { domainOf, probeVm, vm, vmMac } from './seed.mjs';

function get(agent, port, path) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Stops early (and says so in `measured`) when `budgetMs` is spent: a slow server must not make the bench unbounded. */
export async function propagation({ endpoint, prefix, users, dnsPort, httpPort, count, run = 0, timeoutMs = 5000, budgetMs = 120_000 }) {
  const stopAt = performance.now() + budgetMs;
  const keys = new Keys(prefix);
  const etcd = new Etcd3({ hosts: `http://${endpoint}` });
  const dns = new DnsClient('127.0.0.1', dnsPort);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const dnsMs = [];
  const httpMs = [];
  let misses = 0;
  try {
    for (let i = 0; i < count && performance.now() < stopAt; i++) {
      const n = run * 100_000 + i;
      const fresh = { ...vm(0x800000 + n, { networks: 1, users }), name: `prop${n}`, mac: vmMac(0x800000 + n) };
      const serial = `${run}-${i + 1}`;
      const probe = { ...probeVm(users), meta: { role: 'probe', serial } };
      const fqdn = `prop${n}.${domainOf('net0')}`;
      const want = new RegExp(`"serial":\\s*"${serial}"`);
      const t0 = performance.now();
      const deadline = t0 + timeoutMs;
      const write = etcd.kv.txn({
        compare: [],
        success: [
          { request_put: { key: Buffer.from(keys.vm('net0', fresh.name)), value: Buffer.from(JSON.stringify(fresh)) } },
          { request_put: { key: Buffer.from(keys.vm('net0', 'probe')), value: Buffer.from(JSON.stringify(probe)) } },
        ],
        failure: [],
      });
      const pollDns = async () => {
        while (performance.now() < deadline) {
          const r = await dns.query(fqdn, 28, 500);
          if (r && r.rcode === 0 && r.answers > 0) return performance.now() - t0;
          await sleep(1);
        }
        return undefined;
      };
      const pollHttp = async () => {
        while (performance.now() < deadline) {
          const r = await get(agent, httpPort, '/openstack/latest/meta_data.json').catch(() => undefined);
          if (r?.status === 200 && want.test(r.body)) return performance.now() - t0;
          await sleep(1);
        }
        return undefined;
      };
      const [d, h] = await Promise.all([pollDns(), pollHttp(), write]);
      if (d === undefined || h === undefined) misses++;
      else {
        dnsMs.push(d);
        httpMs.push(h);
      }
    }
  } finally {
    dns.close();
    agent.destroy();
    etcd.close();
  }
  return {
    count: dnsMs.length, misses, wanted: count, timeoutMs,
    dns: { p50: percentile(dnsMs, 50), p99: percentile(dnsMs, 99) },
    http: { p50: percentile(httpMs, 50), p99: percentile(httpMs, 99) },
  };
}
