// A small app written against the package's shipped types, compiled with
// `tsc --strict` by tests/js/types.test.mjs: the types must describe what
// the code does, and must not be `any` (the @ts-expect-error lines fail
// the compile if a wrong call is accepted).
import init, {
  Classifier, moduleTrap, supportsRelaxedSimd,
  type ClassifierStats, type Prediction, type Sample, type VersionInfo,
} from 'localtune';
import { WorkerClassifier } from 'localtune/client';
import { EmbeddingPool, defaultWorkers } from 'localtune/embedding-pool';
import { buildBundle, buildBundleOnWorkers, runBundleCli } from 'localtune/bundle';

export async function mainThread(): Promise<string> {
  await init();
  const relaxed: boolean = supportsRelaxedSimd();
  const classifier: Classifier = await Classifier.load('/bundles/default/', {
    storeName: 'app',
    bundleCache: true,
    autoUpdate: { threshold: 20, onlyWhileCharging: true },
    onLoadProgress: (p) => console.log(p.file, p.loadedBytes / p.totalBytes, p.fromCache),
    onAutoUpdate: (event) => {
      if (event.phase === 'finished') {
        const reason: 'epochsDone' | 'earlyStopped' | 'stepBudget' | 'timeBudget' = event.report.outcome.stopReason;
        const through: number | null | undefined = event.report.version.trainedThroughSample;
        console.log(event.report.accepted, event.report.gate, reason, through);
      }
      if (event.phase === 'failed') console.log(event.error.message);
    },
  });
  const prediction: Prediction = classifier.predict('turn off the lights');
  const many: Prediction[] = classifier.predictMany(['a', 'b']);
  const feedback = await classifier.addFeedback('how many steps today', 'Fitness');
  const pending: number = feedback.pending;
  const samples: Sample[] = await classifier.samples();
  await classifier.deleteSample(samples[0].id);
  await classifier.deleteAllSamples();
  const shipped: VersionInfo = await classifier.deleteEverything();
  const stats: ClassifierStats = await classifier.stats();
  const cached: number = stats.bundleCacheBytes;
  const usage: number | null = stats.storage.usageBytes;
  // @ts-expect-error: the storage use is null where the browser does not say
  stats.storage.usageBytes.toFixed();
  const trap: Error | null = moduleTrap();
  // @ts-expect-error: predict takes a string
  classifier.predict(42);
  // @ts-expect-error: a label is a string, not a number
  prediction.label.toFixed();
  // @ts-expect-error: an unknown option
  await Classifier.load('/bundles/default/', { bundelCache: false });
  // @ts-expect-error: an unknown automatic-update option
  await Classifier.load('/bundles/default/', { autoUpdate: { treshold: 20 } });
  // @ts-expect-error: an update option of the wrong type
  await Classifier.load('/bundles/default/', { autoUpdate: { options: { epochs: 'ten' } } });
  // Big embedding jobs on a pool of Web Workers: an import says how far it is.
  const pooled = await Classifier.load('/bundles/default/', {
    embeddingPool: new EmbeddingPool('/bundles/default/', { workers: defaultWorkers() }),
  });
  const imported = await pooled.importData(new Uint8Array(), {
    signal: new AbortController().signal,
    onProgress: (p) => console.log(p.done / p.total, p.workers),
  });
  await pooled.update({}, (event) => {
    if (event.kind === 'embedding') console.log(event.embedding?.done);
  });
  // @ts-expect-error: a pool is an object with embedRun and release, not a number
  await Classifier.load('/bundles/default/', { embeddingPool: 2 });
  return `${relaxed} ${many.length} ${pending} ${shipped.version} ${cached} ${usage} ${trap?.name} ${imported.samples}`;
}

export async function inAWorker(): Promise<number> {
  const classifier = await WorkerClassifier.load('/bundles/default/', {
    worker: () => new Worker('/assets/worker.js', { type: 'module' }),
    onLoadProgress: ({ loadedBytes }) => console.log(loadedBytes.toFixed(0)),
    embeddingWorkers: 2,
  });
  await classifier.importData(new Uint8Array(), { onProgress: ({ done }) => console.log(done) });
  // @ts-expect-error: a WorkerClassifier's pool is started in its worker: a count, not an object
  await WorkerClassifier.load('/bundles/default/', { embeddingPool: new EmbeddingPool('/bundles/default/') });
  const prediction: Prediction = await classifier.predict('pause the music');
  const labels: string[] = classifier.labels;
  const samples: Sample[] = await classifier.samples();
  await classifier.deleteEverything();
  // @ts-expect-error: every WorkerClassifier method is a Promise
  const label: string = classifier.predict('pause the music').label;
  return prediction.probability + labels.length + samples.length + classifier.restarts + label.length;
}

/** A build script (Node) making a bundle from a CSV with localtune/bundle. */
export async function buildStep(encoder: Uint8Array, tokenizer: Uint8Array, csv: string): Promise<number> {
  const files: Map<string, Uint8Array> = buildBundle({
    encoder, tokenizer, data: csv, textColumn: 'text', labelColumn: 'intent',
    architecture: 'mlp:64', epochs: 30, onProgress: (line) => console.log(line.length),
  });
  const onWorkers: Map<string, Uint8Array> = await buildBundleOnWorkers({
    encoder, tokenizer, data: csv, threads: 2, signal: AbortSignal.timeout(600_000),
  });
  await runBundleCli(['--help'], { print: (line) => console.log(line), signal: new AbortController().signal });
  // @ts-expect-error: architecture is 'linear' or 'mlp:H'
  buildBundle({ encoder, tokenizer, data: csv, architecture: 'deep' });
  // @ts-expect-error: the encoder's bytes are required
  buildBundle({ tokenizer, data: csv });
  return (files.get('manifest.json')?.length ?? 0) + onWorkers.size;
}
