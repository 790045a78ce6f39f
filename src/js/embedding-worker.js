// One worker of an EmbeddingPool (embedding-pool.js): loads the bundle's
// encoder with the module the classifier's thread runs (handed over
// compiled, or else the one `init()` picks there too), so a run's vectors
// are the ones that thread would compute, bit for bit; then embeds each
// run it is handed as one batch.
//   → { source, options, module? }   ← { ready: true } | { error: { name, message } }
//   → { texts }             ← { vectors }     | { error: { name, message } }
import init, { Encoder } from './localtune.js';

let encoder = null;
let loading = null;

self.onmessage = async ({ data }) => {
  try {
    if (data.source !== undefined) {
      const module = data.module instanceof WebAssembly.Module ? { module_or_path: data.module } : undefined;
      loading = init(module).then(() => Encoder.fromBundle(data.source, data.options));
      encoder = await loading;
      self.postMessage({ ready: true });
      return;
    }
    await loading;
    const vectors = encoder.embed(data.texts);
    self.postMessage({ vectors }, [vectors.buffer]);
  } catch (e) {
    self.postMessage({ error: { name: e?.name ?? 'Error', message: e?.message ?? String(e) } });
  }
};
