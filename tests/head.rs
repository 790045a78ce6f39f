//! The head and its update task, natively and as wasm in Node. The cases
//! live in `head_cases/` so `head_in_browser.rs` runs the same ones in
//! headless Chromium.

mod head_cases;
