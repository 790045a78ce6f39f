//! Randomized decoder tests: every decoder of bytes that come from outside
//! (an export file, head weights, rehearsal vectors, a bundle manifest, a
//! compiled encoder's header) gets thousands of mutated copies of a valid
//! input — a fixed seed and budget, so a failure replays — and must answer
//! each with a result or a named error: never a panic, and never an
//! allocation larger than the input can justify (a length field read and
//! trusted). Export files are mutated twice over: as bytes (the checksum
//! catches most), and as a payload whose checksum the mutator recomputes,
//! as anyone editing a file can.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::tiny_bundle::{block_on, bundle_files, load};
use localtune::bundle::{parse_manifest, Rehearsal, MANIFEST_FILE};
use localtune::classifier::Classifier;
use localtune::encoder::compiled::read_header;
use localtune::head::codec;
use localtune::store::export::{self, ImportLimits};
use localtune::store::memory::MemoryBackend;
use localtune::store::{sha256_hex, StorePolicy};
use localtune::{Error, Head, HeadArchitecture, UpdateConfig};
use rand::{Rng, RngCore};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Mutated inputs per decoder and run.
const CASES: usize = 2_000;

// ---- the largest single allocation while a decoder runs ----------------

struct Watching;

thread_local! {
    /// The largest allocation made on this thread since [`watch`] began
    /// (`None`: not watching).
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note(size: usize) {
    // `try_with`: allocations while the thread's locals are torn down.
    let _ = LARGEST.try_with(|largest| {
        if let Some(so_far) = largest.get() {
            largest.set(Some(so_far.max(size)));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `decode` on `input`, and checks what it did: a result or a named
/// error, no panic, no allocation over a small multiple of the input.
/// Returns whether it decoded.
fn check<T>(
    what: &str,
    case: usize,
    input: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> bool {
    LARGEST.with(|l| l.set(Some(0)));
    let outcome = catch_unwind(AssertUnwindSafe(|| decode(input).map(|_| ())));
    let largest = LARGEST.with(|l| l.replace(None)).unwrap_or(0);
    // Decoding may widen int8 to f32 (4×) and copy once more; a length
    // field that is trusted asks for gigabytes.
    let allowed = 8 * input.len() + (64 << 10);
    assert!(
        largest <= allowed,
        "{what}, case {case}: a {largest}-byte allocation for a {}-byte input",
        input.len()
    );
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            assert!(!e.code().is_empty(), "{what}, case {case}: unnamed error");
            assert!(
                !e.to_string().is_empty(),
                "{what}, case {case}: empty message"
            );
            false
        }
        Err(_) => panic!("{what}, case {case}: the decoder panicked"),
    }
}

/// [`CASES`] mutations (seeded) of the `valid` inputs, taken in turn, each
/// [`check`]ed with `decode`.
fn check_mutations<T>(
    what: &str,
    seed: u64,
    valid: &[&[u8]],
    decode: impl Fn(&[u8]) -> Result<T, Error>,
) {
    let mut rng = rng(seed);
    for case in 0..CASES {
        let input = mutate(valid[case % valid.len()], &mut rng);
        check(what, case, &input, &decode);
    }
}

// ---- mutations -----------------------------------------------------------

/// Values that break length and count fields, as little-endian u32.
const EDGE_U32: [u32; 8] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

/// Numbers that break ids, counts and sizes in JSON.
const EDGE_NUMBERS: [&str; 9] = [
    "0",
    "-1",
    "9007199254740992",
    "18446744073709551615",
    "1e308",
    "-0",
    "4294967296",
    "1.5",
    "null",
];

/// One to three random edits of `valid`.
fn mutate(valid: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        let len = bytes.len().max(1);
        let at = rng.random_range(0..len).min(bytes.len().saturating_sub(1));
        match rng.random_range(0..9) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.random_range(0..8),
            1 if !bytes.is_empty() => bytes[at] = rng.random(),
            2 if bytes.len() >= 4 => {
                let at = rng.random_range(0..=bytes.len() - 4);
                let value = EDGE_U32[rng.random_range(0..EDGE_U32.len())];
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            3 => bytes.truncate(rng.random_range(0..=bytes.len())),
            4 if !bytes.is_empty() => {
                let end = rng.random_range(at..=bytes.len().min(at + 64));
                bytes.drain(at..end);
            }
            5 => {
                let mut extra = vec![0u8; rng.random_range(1..=16)];
                rng.fill_bytes(&mut extra);
                bytes.splice(at..at, extra);
            }
            6 if !bytes.is_empty() => {
                let end = rng.random_range(at..=bytes.len().min(at + 256));
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            7 => replace_number(&mut bytes, rng),
            _ => {
                // A structural character of JSON, somewhere.
                let c = b"{}[]\",:\\"[rng.random_range(0..8)];
                if at < bytes.len() {
                    bytes[at] = c;
                }
            }
        }
    }
    bytes
}

/// Replaces one run of ASCII digits with an edge-case number.
fn replace_number(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = starts[rng.random_range(0..starts.len())];
    let end = (start..bytes.len())
        .find(|&i| !bytes[i].is_ascii_digit())
        .unwrap_or(bytes.len());
    let number = EDGE_NUMBERS[rng.random_range(0..EDGE_NUMBERS.len())];
    bytes.splice(start..end, number.bytes());
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

// ---- the decoders ----------------------------------------------------------

#[test]
fn head_weights() {
    let linear = codec::encode(
        &Head::new_seeded(8, HeadArchitecture::Linear, vec!["a".into(), "b".into()], 1).unwrap(),
    );
    let mlp = codec::encode(
        &Head::new_seeded(
            8,
            HeadArchitecture::Mlp { hidden: 4 },
            vec!["a".into(), "b".into(), "c".into()],
            2,
        )
        .unwrap(),
    );
    check_mutations("head weights", 1, &[&linear, &mlp], codec::decode);
}

#[test]
fn rehearsal_vectors() {
    let rehearsal = Rehearsal {
        dim: 6,
        features: (0..24).map(|i| (i as f32 * 0.37).sin()).collect(),
        labels: vec![0, 1, 1, 2],
        nearest: Vec::new(),
    };
    let int8 = rehearsal.encode();
    let with_nearest = rehearsal.clone().with_nearest().unwrap().encode();
    assert_eq!(&with_nearest[..8], b"LTREHE03");
    // The first format, still read: magic, rows, dim, labels, f32 values.
    let mut f32_format = b"LTREHE01".to_vec();
    f32_format.extend_from_slice(&4u32.to_le_bytes());
    f32_format.extend_from_slice(&6u32.to_le_bytes());
    for l in &rehearsal.labels {
        f32_format.extend_from_slice(&l.to_le_bytes());
    }
    for v in &rehearsal.features {
        f32_format.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        Rehearsal::decode(&f32_format).unwrap().labels,
        rehearsal.labels
    );
    check_mutations(
        "rehearsal vectors",
        2,
        &[&int8, &f32_format, &with_nearest],
        Rehearsal::decode,
    );
}

#[test]
fn bundle_manifest() {
    let manifest = bundle_files().remove(MANIFEST_FILE).unwrap();
    check_mutations("manifest", 3, &[&manifest], parse_manifest);
}

#[test]
fn compiled_encoder_header() {
    let compiled = bundle_files().remove("encoder.compiled.tar").unwrap();
    // The header is the archive's first file; mutations past it would test
    // nothing here (the rest is tract's to read), so they stay within it.
    let head = &compiled[..compiled.len().min(2_048)];
    let mut rng = rng(4);
    for case in 0..CASES {
        let mut input = mutate(head, &mut rng);
        input.extend_from_slice(&compiled[head.len()..]);
        check("compiled encoder header", case, &input, read_header);
    }
}

/// An export file of the tiny classifier's store: corrections, two
/// versions, the current pointer.
fn export_file() -> (Vec<u8>, ImportLimits<'static>) {
    let p = block_on(Classifier::open(
        load(bundle_files()).unwrap(),
        MemoryBackend::new(),
        StorePolicy::default(),
        0.0,
    ))
    .unwrap();
    for (i, text) in ["open the garage", "close the garage", "lock the door"]
        .iter()
        .enumerate()
    {
        block_on(p.add_feedback(text, "doors", i as f64)).unwrap();
    }
    block_on(p.update(&UpdateConfig::default(), &|| 0.0, &mut |_| {
        std::ops::ControlFlow::Continue(())
    }))
    .unwrap();
    let file = block_on(p.store().export(9.0)).unwrap();
    let limits = ImportLimits {
        encoder_sha256: Box::leak(p.bundle().encoder.sha256().to_string().into_boxed_str()),
        input_dim: p.bundle().head.input_dim(),
        max_samples: 5_000,
    };
    export::read(&file, &limits).expect("the valid file reads");
    (file, limits)
}

#[test]
fn export_file_bytes() {
    let (file, limits) = export_file();
    check_mutations("export file", 5, &[&file], |f| export::read(f, &limits));
}

#[test]
fn export_file_with_its_checksum_recomputed() {
    let (file, limits) = export_file();
    let newline = file.iter().position(|&b| b == b'\n').unwrap();
    let payload = &file[newline + 1..];
    let mut rng = rng(6);
    let mut accepted = 0;
    for case in 0..CASES {
        let payload = mutate(payload, &mut rng);
        let mut forged = format!(
            "{{\"format\":\"localtune-export\",\"schemaVersion\":1,\"payloadBytes\":{},\"payloadSha256\":\"{}\"}}\n",
            payload.len(),
            sha256_hex(&payload)
        )
        .into_bytes();
        forged.extend_from_slice(&payload);
        let read = check("forged export file", case, &forged, |f| {
            export::read(f, &limits)
        });
        accepted += usize::from(read);
    }
    // Most edits of the payload break it; some (a changed text, a time)
    // leave a file that is fine to import, and is imported.
    assert!(
        accepted < CASES / 2,
        "{accepted} of {CASES} forged files accepted"
    );
}
