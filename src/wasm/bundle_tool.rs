//! `runBundleTool`: the bundle tool ([`crate::bundle::tool`]) for the npm
//! package's `npx localtune bundle` and `localtune/bundle`'s `buildBundle`.
//! The caller lends it a file system, a console and a clock; the tool
//! decides everything else, exactly as the native `localtune-bundle` does.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use crate::bundle::tool::{self, ToolIo};

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

/// Runs the bundle tool with `args` (its flags, as `localtune-bundle`
/// takes them). Throws an `Error` whose message is what the tool would
/// print; writes nothing unless the whole bundle built.
#[wasm_bindgen(js_name = runBundleTool)]
pub fn run_bundle_tool(args: Vec<String>, io: &BundleToolIo) -> Result<(), JsValue> {
    tool::run(&args, io).map_err(|message| {
        let error = js_sys::Error::new(&message);
        error.set_name("BundleToolError");
        error.into()
    })
}
