//! `runBundleTool`: the bundle tool ([`crate::bundle::tool`]) for the npm
//! package's `npx localtune bundle` and `localtune/bundle`'s `buildBundle`.
//! The caller lends it a file system, a console and a clock; the tool
//! decides everything else, exactly as the native `localtune-bundle` does.
//! `prepareBundleBuild` is the same run cut at the embedding, for a caller
//! that embeds the texts on a pool of worker threads (wasm has no threads
//! of its own) and hands the vectors back.

use js_sys::{Float32Array, Uint8Array};
use wasm_bindgen::prelude::*;

use super::encoder::EncoderOptionsArg;
use super::head::to_js;
use crate::bundle::tool::{self, PreparedTool, ToolIo};

#[wasm_bindgen(typescript_custom_section)]
const BUNDLE_TOOL_IO: &str = r#"
/** What the bundle tool asks of its caller (Node's fs, or memory). */
export interface BundleToolIo {
  /** The bytes of the file at `path`; throw if it cannot be read. */
  readFile(path: string): Uint8Array;
  /** Writes `bytes` (a copy, the caller's to keep) as `name` in the folder `dir`, creating the folder. */
  writeFile(dir: string, name: string, bytes: Uint8Array): void;
  /** Prints one line of progress. */
  print(line: string): void;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "BundleToolIo")]
    pub type BundleToolIo;

    #[wasm_bindgen(method, catch, js_name = readFile)]
    fn read_file(this: &BundleToolIo, path: &str) -> Result<Uint8Array, JsValue>;

    /// `bytes` is a copy the caller owns: a `&[u8]` here would arrive as a
    /// view of the module's memory, overwritten after the call (kept
    /// views came back with garbage in their last bytes).
    #[wasm_bindgen(method, catch, js_name = writeFile)]
    fn write_file(
        this: &BundleToolIo,
        dir: &str,
        name: &str,
        bytes: &Uint8Array,
    ) -> Result<(), JsValue>;

    #[wasm_bindgen(method, js_name = print)]
    fn print_line(this: &BundleToolIo, line: &str);
}

/// A thrown JS value as text, for the tool's error message.
fn describe(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

impl ToolIo for BundleToolIo {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.read_file(path)
            .map(|bytes| bytes.to_vec())
            .map_err(|e| format!("{path}: {}", describe(e)))
    }
    fn write(&self, dir: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
        self.write_file(dir, name, &Uint8Array::from(bytes))
            .map_err(|e| format!("{dir}/{name}: {}", describe(e)))
    }
    fn print(&self, line: &str) {
        self.print_line(line)
    }
    fn now_ms(&self) -> f64 {
        super::performance_now()
    }
}

/// The tool's error as a JS `Error` named `BundleToolError`.
fn tool_error(message: String) -> JsValue {
    let error = js_sys::Error::new(&message);
    error.set_name("BundleToolError");
    error.into()
}

/// Runs the bundle tool with `args` (its flags, as `localtune-bundle`
/// takes them). Throws an `Error` whose message is what the tool would
/// print; writes nothing unless the whole bundle built.
#[wasm_bindgen(js_name = runBundleTool)]
pub fn run_bundle_tool(args: Vec<String>, io: &BundleToolIo) -> Result<(), JsValue> {
    tool::run(&args, io).map_err(tool_error)
}

/// Runs the bundle tool with `args` up to the embedding: reads the flags,
/// the files and the rows, and prints what the tool prints by then.
/// `undefined` for `--help` (the usage is printed). Throws as
/// `runBundleTool` does.
#[wasm_bindgen(js_name = prepareBundleBuild)]
pub fn prepare_bundle_build(
    args: Vec<String>,
    io: &BundleToolIo,
) -> Result<Option<BundleBuild>, JsValue> {
    Ok(tool::prepare(&args, io)
        .map_err(tool_error)?
        .map(BundleBuild))
}

/// A bundle tool run waiting for its texts' vectors.
#[wasm_bindgen]
pub struct BundleBuild(PreparedTool);

#[wasm_bindgen]
impl BundleBuild {
    /// The texts to embed, in the order `finish` takes their vectors.
    pub fn texts(&self) -> Vec<String> {
        self.0.texts().into_iter().map(String::from).collect()
    }

    /// The encoder's ONNX file (a copy), for `new Encoder(model, tokenizer,
    /// encoderOptions)`.
    pub fn model(&self) -> Uint8Array {
        Uint8Array::from(self.0.encoder().0)
    }

    /// The tokenizer.json (a copy).
    pub fn tokenizer(&self) -> Uint8Array {
        Uint8Array::from(self.0.encoder().1)
    }

    /// The options an encoder that embeds as the tool does is built with.
    #[wasm_bindgen(js_name = encoderOptions)]
    pub fn encoder_options(&self) -> Result<EncoderOptionsArg, JsValue> {
        Ok(to_js(&self.0.encoder().2)?.unchecked_into())
    }

    /// How many worker threads embed the texts on a machine with `cores`
    /// (`--threads`, or one per core up to 8; no more than the runs).
    pub fn workers(&self, cores: usize) -> usize {
        self.0.workers(cores)
    }

    /// The progress line the tool prints when `done` texts are embedded,
    /// if any.
    #[wasm_bindgen(js_name = embeddedLine)]
    pub fn embedded_line(&self, done: usize) -> Option<String> {
        self.0.embedded_line(done)
    }

    /// Builds and writes the bundle from every text's vector (`texts().length
    /// × dim` floats, row-major in the order of `texts()`), and prints the
    /// rest of the tool's lines. Consumes this object. Throws as
    /// `runBundleTool` does; writes nothing unless the whole bundle built.
    pub fn finish(self, vectors: &Float32Array, io: &BundleToolIo) -> Result<(), JsValue> {
        self.0
            .finish(Some(&vectors.to_vec()), io)
            .map_err(tool_error)
    }
}
