// Types of localtune/embedding-pool: Web Workers for a Classifier's big embedding jobs.
import type { BundleSource, EmbeddingPoolLike } from './localtune.js';

/** Workers by default: one fewer than the cores the browser reports (the classifier's thread embeds too), at least 1, at most 3. */
export declare function defaultWorkers(): number;

export interface EmbeddingPoolOptions {
  /** Workers besides the classifier's own thread (default `defaultWorkers()`); 0: the classifier embeds alone. */
  workers?: number;
  /** Read the bundle's files from the bundle cache (default true), as `Classifier.load` does. */
  bundleCache?: boolean;
}

/**
 * Give it to `Classifier.load(source, { embeddingPool: new EmbeddingPool(source) })`:
 * the classifier hands it the runs of a big job (from 256 texts) and releases
 * it when the job ends. `WorkerClassifier` starts one by itself.
 */
export declare class EmbeddingPool implements EmbeddingPoolLike {
  constructor(source: BundleSource, options?: EmbeddingPoolOptions);
  /** Threads it embeds on besides the classifier's. */
  readonly workers: number;
  embedRun(texts: string[]): Promise<Float32Array>;
  release(): void;
}
