// Types of localtune/client: the Classifier API, served by a Web Worker.
import type {
  AutoUpdateEvent, BundleSource, ClassifierOptions, ClassifierStats, Feedback, ImportOptions, Prediction, Sample,
  StoreProblem, UpdateEvent, UpdateOptions, UpdateReport, VersionInfo,
} from './localtune.js';

export interface WorkerClassifierOptions extends Omit<ClassifierOptions, 'onAutoUpdate' | 'embeddingPool'> {
  onAutoUpdate?: (event: AutoUpdateEvent) => void;
  /**
   * Workers of the embedding pool the worker starts for big embedding jobs
   * (an import's, an update's after an encoder change; from 256 texts),
   * besides its own thread: default one fewer than the cores, at least 1,
   * at most 3; 0: none, the worker embeds alone.
   */
  embeddingWorkers?: number;
  /**
   * A worker running localtune/worker, or a function that starts one
   * (default: started from next to this module). With a function (or the
   * default) and a bundle URL, a worker whose module traps is replaced by a
   * new one that reloads the bundle and the store; the calls in flight that
   * only read are sent to it once more, those that write fail with
   * `ModuleTrappedError`.
   */
  worker?: Worker | (() => Worker);
}

export declare class WorkerClassifier {
  static load(source: BundleSource, options?: WorkerClassifierOptions): Promise<WorkerClassifier>;
  readonly labels: string[];
  readonly currentVersion: VersionInfo;
  readonly problems: StoreProblem[];
  readonly manifest: Record<string, unknown>;
  predict(text: string): Promise<Prediction>;
  predictMany(texts: string[]): Promise<Prediction[]>;
  addFeedback(text: string, label: string): Promise<Feedback>;
  update(options?: UpdateOptions, onProgress?: (event: UpdateEvent) => boolean | void): Promise<UpdateReport>;
  whenIdle(): Promise<void>;
  versions(): Promise<VersionInfo[]>;
  rollback(version: number): Promise<VersionInfo>;
  resetToShipped(): Promise<VersionInfo>;
  reload(): Promise<VersionInfo>;
  exportData(): Promise<Uint8Array>;
  importData(bytes: Uint8Array, options?: ImportOptions): Promise<{ samples: number; versions: number }>;
  stats(): Promise<ClassifierStats>;
  samples(): Promise<Sample[]>;
  deleteSample(id: number): Promise<void>;
  deleteAllSamples(): Promise<void>;
  deleteEverything(): Promise<VersionInfo>;
  requestPersistence(): Promise<boolean>;
  /** Network requests the worker has made since its bundle loaded. */
  networkRequests(): Promise<number>;
  /** Workers started again after their module trapped. */
  readonly restarts: number;
  /** For tests: traps the worker's module, at once or inside an async task. */
  forceTrapForTests(later?: boolean): Promise<void>;
  terminate(): void;
}
