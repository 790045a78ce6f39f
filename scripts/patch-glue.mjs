// Makes wasm-bindgen's glue load the package's best module by default:
// `init()` without arguments fetches defaultWasmUrl() (src/js/wasm-variant.js)
// instead of the fixed localtune_bg.wasm, and the glue re-exports the probe;
// and puts every exported class behind the trap guard (src/js/trap-guard.js);
// and exports the compiled module (`loadedModule()`).
// With `onnx`, the glue of the module with the ONNX importer: its
// defaultWasmUrl() is that module, whatever the engine.
// Fails if wasm-bindgen's output no longer has the one line it replaces.
//   node scripts/patch-glue.mjs <glue in> <glue out> [onnx]
import { readFile, writeFile } from 'node:fs/promises';

const [input, output, variant = 'page'] = process.argv.slice(2);
const glue = String(await readFile(input));
const moduleFile = variant === 'onnx' ? 'localtune_onnx_bg.wasm' : 'localtune_bg.wasm';
const fixedUrl = `module_or_path = new URL('${moduleFile}', import.meta.url);`;
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
// The compiled module `init()` instantiated, for workers that run the same
// code (src/js/embedding-pool.js): a WebAssembly.Module crosses to a
// worker without being compiled again, and V8 shares its optimised code.
if (!/^let wasmModule\b/m.test(glue) || !/^\s*wasmModule = module;/m.test(glue)) {
  console.error(`patch-glue: expected the glue's \`wasmModule\` variable in ${input}`);
  process.exit(1);
}
const loadedModule = '\n/** The WebAssembly.Module `init()` instantiated (undefined before it has). */\nexport function loadedModule() {\n  return wasmModule;\n}\n';
// The ONNX glue keeps a literal `new URL(…, import.meta.url)` of its module
// so that bundlers ship it with an app that imports localtune/onnx.
const defaultUrl = variant === 'onnx'
  ? `\n/** The module \`init()\` loads by default: this glue's, with the ONNX importer. */\nexport function defaultWasmUrl() {\n  return new URL('${moduleFile}', import.meta.url);\n}\nexport { supportsRelaxedSimd } from './wasm-variant.js';\n`
  : "\nimport { defaultWasmUrl } from './wasm-variant.js';\nexport { defaultWasmUrl, supportsRelaxedSimd } from './wasm-variant.js';\n";
const patched =
  glue.replace(fixedUrl, 'module_or_path = defaultWasmUrl();') +
  defaultUrl +
  loadedModule +
  `import { guardAgainstTraps } from './trap-guard.js';\nexport { moduleTrap } from './trap-guard.js';\nguardAgainstTraps({ ${classes.join(', ')} });\n`;
await writeFile(output, patched);
