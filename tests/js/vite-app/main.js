import init, { Classifier, relaxedSimdEnabled } from 'localtune';
import { WorkerClassifier } from 'localtune/client';

try {
  await init();
  const main = await Classifier.load('/bundles/default/', { storeName: 'vite-main', autoUpdate: { enabled: false } });
  const worker = await WorkerClassifier.load('/bundles/default/', { storeName: 'vite-worker', autoUpdate: { enabled: false } });
  const text = 'pause the music in the kitchen';
  window.result = { main: main.predict(text), worker: await worker.predict(text), relaxedSimd: relaxedSimdEnabled() };
} catch (e) {
  window.result = { error: `${e.name}: ${e.message}` };
}
document.body.dataset.ready = 'true';
