//! `localtune-bundle`: builds a model bundle from an encoder, its tokenizer
//! and a labelled CSV, by training the generic head with the same Rust code
//! that updates it on the device (the seed's `export_coreml.py` with
//! `is_updatable`). The native shell of [`localtune::bundle::tool`]: the
//! npm package's `npx localtune bundle` is the other, with the same flags.
//!
//! ```text
//! localtune-bundle --encoder model.onnx --tokenizer tokenizer.json \
//!     --data labelled.csv --out bundle-dir [options]
//! ```
//! Run with `--help` for the options.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(message) = localtune::bundle::tool::run(&args, &native::Shell::new()) {
        eprintln!("localtune-bundle: {message}");
        std::process::exit(1);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::Path;
    use std::time::Instant;

    use localtune::bundle::tool::ToolIo;

    /// The file system, the console and a clock.
    pub struct Shell(Instant);

    impl Shell {
        pub fn new() -> Self {
            Shell(Instant::now())
        }
    }

    impl ToolIo for Shell {
        fn read(&self, path: &str) -> Result<Vec<u8>, String> {
            std::fs::read(path).map_err(|e| format!("{path}: {e}"))
        }
        fn write(&self, dir: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
            std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
            let path = Path::new(dir).join(name);
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
        }
        fn print(&self, line: &str) {
            println!("{line}");
        }
        fn now_ms(&self) -> f64 {
            self.0.elapsed().as_secs_f64() * 1000.0
        }
    }
}
