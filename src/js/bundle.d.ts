/** Options of `buildBundle`: the bundle tool's flags, in camelCase. */
export interface BuildBundleOptions {
  /** The ONNX sentence encoder. */
  encoder: Uint8Array;
  /** Its tokenizer.json. */
  tokenizer: Uint8Array;
  /** The labelled CSV, as text or bytes. */
  data: string | Uint8Array;
  textColumn?: string;
  labelColumn?: string;
  /** Rows whose value in this column is "test" are held out. */
  splitColumn?: string;
  name?: string;
  version?: string;
  /** 'linear' (default) or 'mlp:H'. */
  architecture?: 'linear' | `mlp:${number}`;
  freezeHidden?: boolean;
  maxSeqLen?: number;
  epochs?: number;
  seed?: number;
  rehearsalPerLabel?: number;
  shippedCheckPerLabel?: number;
  autoUpdateThreshold?: number;
  /** The compiled encoder's word embeddings: 'int8' (default), or 4 bits in groups of 32 ('4bit') or G ('4bit:G'). */
  wordEmbeddings?: 'int8' | '4bit' | `4bit:${number}`;
  /** Worker threads that embed the texts in `buildBundleOnWorkers` (default: one per core, at most 8); the files do not depend on it. */
  threads?: number;
  /** Sees each line of progress. */
  onProgress?: (line: string) => void;
}

/** Builds a bundle in memory, on this thread: file name → bytes, `manifest.json` among them. */
export function buildBundle(options: BuildBundleOptions): Map<string, Uint8Array>;

/**
 * `buildBundle` with the texts embedded on worker threads: the same files, bit
 * for bit. Rejects with a `BundleToolError`, or with `signal`'s reason once it
 * aborts (the workers stop at once).
 */
export function buildBundleOnWorkers(options: BuildBundleOptions & { signal?: AbortSignal }): Promise<Map<string, Uint8Array>>;

/**
 * Runs the bundle tool with its command-line flags on the file system,
 * embedding on `--threads` worker threads (default: one per core, at most 8).
 */
export function runBundleCli(args: string[], options?: { print?: (line: string) => void; signal?: AbortSignal }): Promise<void>;
