// The package as a user gets it from npm: `npm pack` of pkg/, installed
// into an empty app folder, with no Rust toolchain on the PATH. There, `npx
// localtune bundle` turns a labelled CSV (columns of the app's own naming)
// into a bundle; `buildBundle` from localtune/bundle builds the same bundle
// in memory; the quick start runs in Node; and the app's page loads the
// bundle it made, with the installed package, in headless Chromium and
// predicts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openBrowser } from './browser.mjs';
import { INTENT_ROWS } from './intents.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = `${ROOT}tests/artifacts/npm-app`;
const MODEL = `${ROOT}models/all-minilm-l6-v2-int8`;
// A user's machine with Node and npm, and no cargo.
const USER_PATH = '/usr/bin:/bin';

function run(command, args, options = {}) {
  const result = spawnSync(command, args, {
    cwd: APP, encoding: 'utf8', env: { ...process.env, PATH: USER_PATH }, ...options,
  });
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

// Four intents of the Home Assistant set, 20 training and 5 test sentences
// each, under column names of the app's own.
const INTENTS = ['HassTurnOn', 'HassTurnOff', 'HassGetWeather', 'HassShoppingListAddItem'];
const picked = INTENTS.flatMap((intent) => [
  ...INTENT_ROWS.filter((r) => r.intent === intent && r.split === 'train').slice(0, 20),
  ...INTENT_ROWS.filter((r) => r.intent === intent && r.split === 'test').slice(0, 5),
]);
const quote = (s) => `"${s.replaceAll('"', '""')}"`;
const CSV = `sentence,what,part\n${picked.map((r) => `${quote(r.text)},${r.intent},${r.split}`).join('\n')}\n`;
const PROBE = INTENT_ROWS.find((r) => r.intent === 'HassGetWeather' && r.split === 'test' && !picked.includes(r));

const env = await openBrowser();
after(() => env.close());

test('npm pack → npm install → npx localtune bundle, with no Rust, and the page predicts with it', async () => {
  assert.notEqual(spawnSync('cargo', ['--version'], { env: { PATH: USER_PATH } }).status, 0, 'cargo must not be on the user PATH');
  await rm(APP, { recursive: true, force: true });
  await mkdir(APP, { recursive: true });
  const tarball = run('npm', ['pack', `${ROOT}pkg`, '--pack-destination', APP, '--silent']).trim().split('\n').pop();
  await writeFile(`${APP}/package.json`, JSON.stringify({ name: 'npm-app', private: true, type: 'module' }));
  run('npm', ['install', `./${tarball}`, '--offline', '--no-audit', '--no-fund', '--silent']);
  await writeFile(`${APP}/labelled.csv`, CSV);

  const out = run('npx', ['--no-install', 'localtune', 'bundle',
    '--encoder', `${MODEL}/model.onnx`, '--tokenizer', `${MODEL}/tokenizer.json`,
    '--data', 'labelled.csv', '--text-column', 'sentence', '--label-column', 'what', '--split-column', 'part',
    '--name', 'my-intents', '--out', 'my-bundle']);
  assert.match(out, /read 100 rows, 4 labels \(20 held out\)/);
  assert.match(out, /held-out accuracy: \d+\.\d% \(\d+ \/ 20 samples\)/);
  const files = (await readdir(`${APP}/my-bundle`)).sort();
  assert.deepEqual(files, ['encoder.compiled.tar', 'encoder.onnx', 'head.bin', 'manifest.json', 'rehearsal.bin', 'shipped-check.bin', 'tokenizer.json']);
  const manifest = JSON.parse(await readFile(`${APP}/my-bundle/manifest.json`, 'utf8'));
  assert.equal(manifest.name, 'my-intents');
  assert.deepEqual([...manifest.labels].sort(), [...INTENTS].sort());

  // Bad input: the tool's own words, exit code 1, nothing written.
  const bad = spawnSync('npx', ['--no-install', 'localtune', 'bundle', '--encoder', `${MODEL}/model.onnx`,
    '--tokenizer', `${MODEL}/tokenizer.json`, '--data', 'labelled.csv', '--out', 'bad-bundle'],
  { cwd: APP, encoding: 'utf8', env: { ...process.env, PATH: USER_PATH } });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /localtune bundle: labelled.csv: no column "text" \(columns: \["sentence", "what", "part"\]\)/);
  assert.equal(spawnSync('test', ['-e', `${APP}/bad-bundle`]).status, 1, 'nothing written');

  // In Node, from the installed package: buildBundle makes the same bundle
  // in memory (the build is seeded), and the quick start's Encoder runs.
  const node = run('node', ['--input-type=module', '-e', `
    import { readFileSync } from 'node:fs';
    import { buildBundle } from 'localtune/bundle';
    import { initSync, Encoder, defaultWasmUrl } from 'localtune';
    const files = buildBundle({
      encoder: readFileSync('${MODEL}/model.onnx'), tokenizer: readFileSync('${MODEL}/tokenizer.json'),
      data: readFileSync('labelled.csv', 'utf8'), textColumn: 'sentence', labelColumn: 'what', splitColumn: 'part',
    });
    // Every file but the manifest (whose name and description differ):
    // kept views of the module's memory once came back with garbage here.
    const same = [...files].filter(([name]) => name !== 'manifest.json')
      .every(([name, bytes]) => Buffer.compare(bytes, readFileSync('my-bundle/' + name)) === 0);
    initSync({ module: readFileSync(defaultWasmUrl()) });
    const encoder = new Encoder(readFileSync('${MODEL}/model.onnx'), readFileSync('${MODEL}/tokenizer.json'));
    console.log(JSON.stringify({ files: [...files.keys()].sort(), same, dim: encoder.dim }));
  `]);
  const fromNode = JSON.parse(node.trim().split('\n').pop());
  assert.deepEqual(fromNode.files, files);
  assert.equal(fromNode.same, true, 'buildBundle writes the same files as the CLI');
  assert.equal(fromNode.dim, 384);

  // The app's page, with the installed package and its own bundle: the
  // package README's quick start, on the main thread and in a worker.
  await writeFile(`${APP}/index.html`, `<!doctype html><meta charset="utf-8"><body><script type="module">
    import init, { Classifier } from './node_modules/localtune/localtune.js';
    import { WorkerClassifier } from './node_modules/localtune/client.js';
    await init();
    const classifier = await Classifier.load('./my-bundle/');
    const prediction = classifier.predict(${JSON.stringify(PROBE.text)});
    await classifier.addFeedback('pause the music', 'StopTheMusic');
    document.body.dataset.corrected = classifier.predict('pause the music').label;
    const worker = await WorkerClassifier.load('./my-bundle/', { storeName: 'npm-app-worker' });
    document.body.dataset.fromWorker = (await worker.predict(${JSON.stringify(PROBE.text)})).label;
    document.body.dataset.labels = classifier.labels.join(',');
    document.body.dataset.label = prediction.label;
  </script>`);
  const page = await env.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${env.url}artifacts/npm-app/index.html`);
  await page.waitForSelector('body[data-label]', { state: 'attached', timeout: 120_000 });
  assert.equal(await page.getAttribute('body', 'data-label'), 'HassGetWeather');
  assert.equal(await page.getAttribute('body', 'data-from-worker'), 'HassGetWeather');
  assert.equal(await page.getAttribute('body', 'data-corrected'), 'StopTheMusic', 'a correction counts at once');
  assert.deepEqual((await page.getAttribute('body', 'data-labels')).split(',').sort(), [...INTENTS, 'StopTheMusic'].sort());
  assert.deepEqual(errors, []);
  await page.close();
});
