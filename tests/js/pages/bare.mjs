// Loads the built package the way a user's page does (plain ESM, no bundler)
// and exposes it to the tests (window.lt), with the two encoders they use.
// `?module=localtune_bg.wasm` loads that module instead of init()'s choice.
import init, * as lt from '/pkg/localtune.js';

const module = new URLSearchParams(location.search).get('module');
await init(module ? { module_or_path: `/pkg/${module}` } : undefined);

async function bytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

let tinyEncoder;
let realEncoder;
window.lt = lt;
// Both compiled: a page's module has no ONNX importer.
/** The tiny test encoder the repository ships (8-d vectors, fast). */
window.tinyEncoder = async () =>
  (tinyEncoder ??= lt.Encoder.fromCompiled(await bytes('/fixtures/tiny/encoder.compiled.tar'), await bytes('/fixtures/tiny/tokenizer.json')));
/** The real int8 MiniLM encoder (fetched by scripts/fetch-model.sh), as the default bundle compiled it. */
window.realEncoder = async () =>
  (realEncoder ??= lt.Encoder.fromCompiled(
    await bytes('/bundles/default/encoder.compiled.tar'),
    await bytes('/models/all-minilm-l6-v2-int8/tokenizer.json'),
  ));
/** Row i of a batch of vectors. */
window.row = (vectors, dim, i) => vectors.subarray(i * dim, (i + 1) * dim);
/** Writes to the raw IndexedDB database behind the library's back. */
window.tamper = (dbName, storeName, key, change) =>
  new Promise((resolve, reject) => {
    const open = indexedDB.open(dbName);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(storeName, 'readwrite');
      const store = tx.objectStore(storeName);
      const get = store.get(key);
      get.onsuccess = () => store.put(change(get.result));
      tx.oncomplete = () => { db.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  });
document.body.dataset.ready = 'true';
