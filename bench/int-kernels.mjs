// Issue 19, item 2: one encoder layer's six weight products, the encoder's
// f32 micro-kernel against 12-bit activations × int8 weights (kept as i16 or
// as int8 in memory; bench/int-kernels/src/lib.rs), in Node and in headless
// Chromium, Firefox ESR and WebKitGTK (`--engines chromium,…` for fewer),
// each build where the engine validates it. Prints a Markdown table of the
// paired ratios. Run through bench/int-kernels.sh, which builds the two
// modules into bench/results/int-kernels/ and starts Node with relaxed SIMD
// allowed.
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { measureKernels } from './int-kernels-harness.mjs';
import { ENGINE_NAMES, benchEngines, runBenchPage } from './report.mjs';

const root = new URL('../', import.meta.url);
const builds = {};
for (const build of ['simd128', 'relaxed']) {
  const wasm = await readFile(new URL(`bench/results/int-kernels/${build}.wasm`, root));
  builds[build] = WebAssembly.validate(wasm) ? await measureKernels(wasm, () => performance.now()) : null;
}
const runtimes = [{ name: `Node ${process.versions.node}`, builds }];
for (const engine of benchEngines(['chromium', 'firefox', 'webkit'])) {
  const result = await runBenchPage('bench/int-kernels.html', { engine });
  runtimes.push({ name: `${ENGINE_NAMES[engine]} ${result.version}`, builds: result.builds });
}

const lines = [
  '| runtime | build | 8 tokens | 32 tokens | 128 tokens | at 128 tokens: f32 / i16 / int8 GMAC/s | outputs apart (of the largest) |',
  '|---|---|---:|---:|---:|---:|---:|',
];
for (const { name, builds } of runtimes) {
  for (const [build, rows] of Object.entries(builds)) {
    if (!rows) {
      lines.push(`| ${name} | ${build} | not validated | | | | |`);
      continue;
    }
    const at = (t) => rows.find((r) => r.tokens === t);
    const cell = (t) => `**${at(t).ratio.i16.toFixed(2)}×** / ${at(t).ratio.i8.toFixed(2)}×`;
    const { gmacs } = at(128);
    // NaN: the two integer layouts disagreed somewhere.
    const apart = Math.max(...rows.map((r) => r.difference));
    lines.push(
      `| ${name} | ${build} | ${cell(8)} | ${cell(32)} | ${cell(128)} | ` +
        `${gmacs.f32.toFixed(1)} / ${gmacs.i16.toFixed(1)} / ${gmacs.i8.toFixed(1)} | ${(apart * 100).toFixed(3)}% |`,
    );
  }
}
console.log(
  `Integer ÷ f32, paired medians, i16 / int8 weights in memory (one layer's six weight products; ` +
    `${new Date().toISOString().slice(0, 10)}):\n`,
);
console.log(lines.join('\n'));
