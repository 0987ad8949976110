// The HTTP ceiling: bare node:http answering every request with one fixed JSON body of the size
// of a meta_data.json. Usage: node bench/bare-http.mjs PORT
import { createServer } from 'node:http';

const body = Buffer.from(JSON.stringify({
  uuid: '00000000-0000-4000-8000-000000000001', name: 'probe', hostname: 'probe.net0.bench.internal', launch_index: 0,
  availability_zone: 'net0', project_id: 'user0', public_keys: { laptop: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j user0@bench' },
  keys: [{ name: 'laptop', type: 'ssh', data: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j user0@bench' }],
  meta: { role: 'probe', serial: '0' },
}));
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}).listen(Number(process.argv[2]), '127.0.0.1', () => process.send?.('ready'));
