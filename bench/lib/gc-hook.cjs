// Preloaded into an appliance by bench/one-against.mjs (NODE_OPTIONS=--require): on SIGUSR2, two
// full collections, then process.memoryUsage() written to $UNCLOUD_BENCH_MEM_DIR/mem-<pid>.json.
// The same hook goes into every checkout compared, old ones included, so the method is the same.
const v8 = require('node:v8');
const vm = require('node:vm');
const fs = require('node:fs');
const path = require('node:path');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
process.on('SIGUSR2', () => {
  gc();
  gc();
  fs.writeFileSync(path.join(process.env.UNCLOUD_BENCH_MEM_DIR, `mem-${process.pid}.json`), JSON.stringify(process.memoryUsage()));
});
