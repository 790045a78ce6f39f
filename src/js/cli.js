#!/usr/bin/env node
// `npx localtune bundle --encoder … --tokenizer … --data … --out …`: the
// bundle tool from the npm package alone (see bundle.js).
import { runBundleCli } from './bundle.js';

const [command, ...args] = process.argv.slice(2);
if (command !== 'bundle') {
  console.error('usage: localtune bundle --encoder MODEL.onnx --tokenizer TOKENIZER.json --data LABELLED.csv --out DIR [options]\n       localtune bundle --help');
  process.exit(2);
}
try {
  await runBundleCli(args);
} catch (e) {
  if (e?.name !== 'BundleToolError') throw e;
  console.error(`localtune bundle: ${e.message}`);
  process.exit(1);
}
