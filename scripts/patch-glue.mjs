// Makes wasm-bindgen's glue load the package's best module by default:
// `init()` without arguments fetches defaultWasmUrl() (src/js/wasm-variant.js)
// instead of the fixed localtune_bg.wasm, and the glue re-exports the probe;
// and puts every exported class behind the trap guard (src/js/trap-guard.js).
// Fails if wasm-bindgen's output no longer has the one line it replaces.
//   node scripts/patch-glue.mjs <glue in> <glue out>
import { readFile, writeFile } from 'node:fs/promises';

const [input, output] = process.argv.slice(2);
const glue = String(await readFile(input));
const fixedUrl = "module_or_path = new URL('localtune_bg.wasm', import.meta.url);";
const found = glue.split(fixedUrl).length - 1;
if (found !== 1) {
  console.error(`patch-glue: expected the default module URL once in ${input}, found it ${found} times`);
  process.exit(1);
}
// Every exported class goes behind the trap guard (src/js/trap-guard.js):
// a trapped module answers with a named error instead of `unreachable`.
const classes = [...glue.matchAll(/^export class (\w+) /gm)].map((m) => m[1]);
if (!classes.includes('Classifier')) {
  console.error(`patch-glue: expected \`export class Classifier\` in ${input}; found classes ${classes.join(', ') || 'none'}`);
  process.exit(1);
}
const patched =
  glue.replace(fixedUrl, 'module_or_path = defaultWasmUrl();') +
  "\nimport { defaultWasmUrl } from './wasm-variant.js';\nexport { defaultWasmUrl, supportsRelaxedSimd } from './wasm-variant.js';\n" +
  `import { guardAgainstTraps } from './trap-guard.js';\nexport { moduleTrap } from './trap-guard.js';\nguardAgainstTraps({ ${classes.join(', ')} });\n`;
await writeFile(output, patched);
