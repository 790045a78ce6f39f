//! The compiled encoder file: an ONNX sentence encoder after tract's
//! analysis, saved so that a page does not analyse it again.
//!
//! Building an encoder from ONNX spends most of its time in tract's analysis
//! of the graph (facts over symbolic batch and sequence lengths, then
//! decluttering), code that runs once and that a WebAssembly engine runs in
//! its baseline tier. A compiled encoder is the decluttered model written
//! ahead of time with tract's NNEF serialisation, so a load only parses it and
//! generates code. It is a tar of:
//!
//! | file | what |
//! |---|---|
//! | `localtune-encoder.json` (first) | [`Header`]: the ONNX file's sha256 (the encoder's identity), the tract version, the inputs' roles |
//! | `graph.nnef` and `*.dat` | tract's NNEF of the decluttered model, its weight products already the encoder's integer products ([`super::integer_products::nnef_registry`]: their int8 weights packed, as `*.panels.dat` and `*.scales.dat`) |
//! | `*.q8` | other int8 weights (the position embeddings) with their scales, in place of the f32 `.dat` tract would write |
//! | `*.q4` | with 4-bit word embeddings: the int8 lookup table in 4 bits ([`super::four_bit`]), in place of its `.dat` |
//!
//! The `.q8` files keep the file as small as the ONNX one: tract writes every
//! weight as f32 (55 MB for MiniLM's 23 MB), but each of them is an int8
//! matrix times a scale that the ONNX file holds. A weight is stored so only
//! when dequantizing it reproduces tract's f32 values bit for bit, checked
//! while compiling.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tract_nnef::internal::{format_err, Nnef, Resource, ResourceLoader, StaticName};
use tract_nnef::prelude::*;

use super::integer_products::Int8Weight;
use super::quantized::{QuantizedMatrix, Scale};
use super::InputRole;
use crate::error::{Error, Result};

/// The tract this build links, pinned exactly in `Cargo.toml` (a test keeps
/// the two equal). NNEF written by one tract version is only read back by
/// the same one.
pub const TRACT_VERSION: &str = "0.23.9";

const FORMAT: &str = "localtune compiled encoder";
/// Format 2 stores the weight products as the encoder runs them
/// ([`super::integer_products::nnef_registry`]); format 1 stored them as
/// f32 einsums over `.q8` weights, which a load rewrote (still read).
const FORMAT_VERSION: u32 = 2;
const OLDEST_FORMAT_VERSION: u32 = 1;
const HEADER_FILE: &str = "localtune-encoder.json";
const QUANTIZED_EXTENSION: &str = "q8";
const QUANTIZED_MAGIC: &[u8; 8] = b"LTQ8\0\0\0\x01";
const FOUR_BIT_EXTENSION: &str = "q4";
/// The largest header read: it is a few hundred bytes.
const MAX_HEADER_BYTES: u64 = 64 << 10;
/// Every entry's modification time, so the same ONNX bytes give the same
/// file (1980-01-01, as tract's own deterministic mode).
#[cfg(feature = "onnx-import")]
const ENTRY_MTIME: u64 = 315_532_800;

/// `localtune-encoder.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub format_version: u32,
    pub tract_version: String,
    /// The sha256 of the ONNX file this was compiled from: the encoder's
    /// identity, the same as when built from that file.
    pub source_sha256: String,
    /// One role per graph input, in the graph's input order.
    pub(crate) inputs: Vec<InputRole>,
    pub hidden_size: usize,
    pub gather_first_lookups: usize,
    /// Word embeddings requantized to 4 bits in groups of this many values
    /// (`.q4` files, [`super::four_bit`]); absent for int8, so int8 files
    /// are byte for byte what they were before the option existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_embeddings_4bit: Option<usize>,
}

impl Header {
    #[cfg(feature = "onnx-import")]
    pub(crate) fn new(
        source_sha256: String,
        inputs: &[InputRole],
        hidden_size: usize,
        gather_first_lookups: usize,
        word_embeddings_4bit: Option<usize>,
    ) -> Self {
        Header {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            tract_version: TRACT_VERSION.into(),
            source_sha256,
            inputs: inputs.to_vec(),
            hidden_size,
            gather_first_lookups,
            word_embeddings_4bit,
        }
    }

    /// The encoder's identity ([`super::encoder_identity`]).
    pub fn identity(&self) -> String {
        super::encoder_identity(&self.source_sha256, self.word_embeddings_4bit)
    }

    /// "int8", or "4-bit in groups of N", for messages.
    pub fn describe_word_embeddings(&self) -> String {
        super::four_bit::describe(self.word_embeddings_4bit)
    }

    /// Whether this build can load the file: a format version it reads,
    /// the same tract. A bundle falls back to its ONNX file when it cannot.
    pub fn check_loadable(&self) -> Result<()> {
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(Error::ModelFormat(format!(
                "compiled encoder format version {} is not supported; this build reads \
                 versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}: compile the ONNX file \
                 again with this build",
                self.format_version
            )));
        }
        if self.tract_version != TRACT_VERSION {
            return Err(Error::ModelFormat(format!(
                "the encoder was compiled for tract {}; this build runs tract \
                 {TRACT_VERSION}: compile the ONNX file again with this build",
                self.tract_version
            )));
        }
        Ok(())
    }
}

fn not_compiled(why: impl std::fmt::Display) -> Error {
    Error::ModelFormat(format!("not a compiled localtune encoder: {why}"))
}

/// Reads the header (the archive's first file) without reading the rest.
pub fn read_header(compiled: &[u8]) -> Result<Header> {
    if compiled.is_empty() {
        return Err(Error::ModelFormat("the file is empty".into()));
    }
    let mut archive = tar::Archive::new(compiled);
    let mut entries = archive.entries().map_err(not_compiled)?;
    let first = entries
        .next()
        .ok_or_else(|| not_compiled("it holds no files"))?
        .map_err(not_compiled)?;
    let path = first.path().map_err(not_compiled)?.into_owned();
    if path != Path::new(HEADER_FILE) {
        return Err(not_compiled(format!(
            "its first file is {path:?}, not {HEADER_FILE}"
        )));
    }
    let mut json = Vec::new();
    first
        .take(MAX_HEADER_BYTES)
        .read_to_end(&mut json)
        .map_err(not_compiled)?;
    let header: Header =
        serde_json::from_slice(&json).map_err(|e| not_compiled(format!("{HEADER_FILE}: {e}")))?;
    if header.format != FORMAT {
        return Err(not_compiled(format!(
            "{HEADER_FILE} says format {:?}",
            header.format
        )));
    }
    Ok(header)
}

/// The decluttered model in a compiled encoder, and its `.q8` weights as
/// int8 matrices (the model holds them dequantized to f32).
pub(crate) fn read_model(compiled: &[u8]) -> Result<(TypedModel, Vec<Int8Weight>)> {
    let loaded = Arc::new(Mutex::new(Vec::new()));
    let model = tract_nnef::nnef()
        .with_registry(super::integer_products::nnef_registry())
        .with_resource_loader(QuantizedLoader {
            loaded: loaded.clone(),
        })
        .model_for_read(&mut &compiled[..])
        .map_err(|e| Error::ModelFormat(format!("the compiled graph: {e:#}")))?;
    let matrices = std::mem::take(&mut *loaded.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((model, matrices))
}

/// Writes a compiled encoder: the header, then tract's NNEF of `typed` with
/// every f32 weight that is exactly one of `quantized` (or its transpose)
/// stored as int8.
#[cfg(feature = "onnx-import")]
pub(crate) fn write(
    typed: &TypedModel,
    header: &Header,
    quantized: &[QuantizedMatrix],
) -> Result<Vec<u8>> {
    let io = |stage: &'static str| {
        move |e: std::io::Error| Error::ModelRuntime {
            stage,
            message: e.to_string(),
        }
    };
    // tract's core operators and our integer products only (no
    // `tract_onnx` extension): a module without the ONNX importer reads
    // every compiled encoder, and a graph that needs more fails to compile
    // here rather than to load in a page.
    let nnef = tract_nnef::nnef()
        .with_registry(super::integer_products::nnef_registry())
        .write_to_tar_with_config(typed, Vec::new(), false, true)
        .map_err(|e| Error::ModelRuntime {
            stage: "serialised",
            message: format!("{e:#}"),
        })?;
    let mut out = tar::Builder::new(Vec::new());
    let header_json = serde_json::to_vec_pretty(header).expect("a header serialises");
    append(&mut out, Path::new(HEADER_FILE), &header_json).map_err(io("written"))?;
    let mut archive = tar::Archive::new(&nnef[..]);
    for entry in archive.entries().map_err(io("re-read"))? {
        let mut entry = entry.map_err(io("re-read"))?;
        let path = entry.path().map_err(io("re-read"))?.into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(io("re-read"))?;
        let is_dat = path.extension().is_some_and(|e| e == "dat");
        let four_bit = header
            .word_embeddings_4bit
            .filter(|_| is_dat)
            .and_then(|group| four_bit_form(&data, group));
        let matrix = (is_dat && four_bit.is_none())
            .then(|| quantized_form(&data, quantized))
            .flatten();
        match (four_bit, matrix) {
            (Some(q4), _) => append(&mut out, &path.with_extension(FOUR_BIT_EXTENSION), &q4),
            (None, Some(m)) => append(
                &mut out,
                &path.with_extension(QUANTIZED_EXTENSION),
                &encode_quantized(&m),
            ),
            (None, None) => append(&mut out, &path, &data),
        }
        .map_err(io("written"))?;
    }
    out.into_inner().map_err(io("written"))
}

#[cfg(feature = "onnx-import")]
fn append(out: &mut tar::Builder<Vec<u8>>, path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(ENTRY_MTIME);
    header.set_entry_type(tar::EntryType::Regular);
    out.append_data(&mut header, path, data)
}

/// The `.q4` form of an NNEF tensor file, when the tensor is a 2-D int8 or
/// uint8 table on the 4-bit grid of its groups (the importer requantized the
/// lookup tables): exact, so the loader gives back the same table. Any other
/// tensor stays as it is.
#[cfg(feature = "onnx-import")]
fn four_bit_form(dat: &[u8], group: usize) -> Option<Vec<u8>> {
    let tensor = tract_nnef::tensors::read_tensor(dat).ok()?;
    let &[rows, cols] = tensor.shape() else {
        return None;
    };
    let signed = match tensor.datum_type() {
        DatumType::I8 => true,
        DatumType::U8 => false,
        _ => return None,
    };
    let view = tensor.try_as_plain_ram().ok()?;
    let bytes: Vec<u8> = if signed {
        view.as_slice::<i8>()
            .ok()?
            .iter()
            .map(|&v| v as u8)
            .collect()
    } else {
        view.as_slice::<u8>().ok()?.to_vec()
    };
    super::four_bit::encode(&bytes, rows, cols, group, signed).ok()
}

/// The int8 form of an NNEF tensor file, when the tensor is a 2-D f32
/// matrix equal bit for bit to one of `candidates` or to its transpose.
#[cfg(feature = "onnx-import")]
fn quantized_form(dat: &[u8], candidates: &[QuantizedMatrix]) -> Option<QuantizedMatrix> {
    let tensor = tract_nnef::tensors::read_tensor(dat).ok()?;
    let &[rows, cols] = tensor.shape() else {
        return None;
    };
    let view = tensor.try_as_plain_ram().ok()?;
    let values = view.as_slice::<f32>().ok()?;
    candidates.iter().find_map(|m| {
        if (m.rows, m.cols) == (rows, cols) && m.matches(values, false) {
            Some(m.clone())
        } else if (m.cols, m.rows) == (rows, cols) && m.matches(values, true) {
            Some(m.transposed())
        } else {
            None
        }
    })
}

/// `.q8`: magic, rows and columns (u32 LE), signed (u8), scale kind (u8:
/// 0 one, 1 per row, 2 per column), two zero bytes, the scales (f32 LE),
/// then the values row-major.
#[cfg(feature = "onnx-import")]
fn encode_quantized(m: &QuantizedMatrix) -> Vec<u8> {
    let (kind, scales): (u8, &[f32]) = match &m.scale {
        Scale::One(s) => (0, std::slice::from_ref(s)),
        Scale::PerRow(s) => (1, s),
        Scale::PerColumn(s) => (2, s),
    };
    let mut out = Vec::with_capacity(20 + scales.len() * 4 + m.values.len());
    out.extend_from_slice(QUANTIZED_MAGIC);
    out.extend_from_slice(&(m.rows as u32).to_le_bytes());
    out.extend_from_slice(&(m.cols as u32).to_le_bytes());
    out.extend_from_slice(&[u8::from(m.signed), kind, 0, 0]);
    for s in scales {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.extend_from_slice(&m.values);
    out
}

fn decode_quantized(bytes: &[u8]) -> std::result::Result<QuantizedMatrix, String> {
    let rest = bytes
        .strip_prefix(QUANTIZED_MAGIC)
        .ok_or("not an int8 weight file (wrong magic)")?;
    let u32_at = |at: usize| -> std::result::Result<usize, String> {
        rest.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| "truncated header".to_string())
    };
    let (rows, cols) = (u32_at(0)?, u32_at(4)?);
    let &[signed, kind, 0, 0] = rest.get(8..12).ok_or("truncated header")? else {
        return Err("malformed header".into());
    };
    let scale_count = match kind {
        0 => 1,
        1 => rows,
        2 => cols,
        k => return Err(format!("unknown scale kind {k}")),
    };
    let values_len = rows.checked_mul(cols).ok_or("size overflows")?;
    let body = &rest[12..];
    if body.len() != scale_count * 4 + values_len {
        return Err(format!(
            "{} bytes of data for {rows} × {cols} values and {scale_count} scales",
            body.len()
        ));
    }
    let (scale_bytes, values) = body.split_at(scale_count * 4);
    let scales: Vec<f32> = scale_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let scale = match kind {
        0 => Scale::One(scales[0]),
        1 => Scale::PerRow(scales),
        _ => Scale::PerColumn(scales),
    };
    Ok(QuantizedMatrix {
        rows,
        cols,
        signed: signed != 0,
        values: values.to_vec(),
        scale,
    })
}

/// Reads `.q8` files as the f32 tensors tract would have written, and `.q4`
/// files as the int8 tables they hold.
#[derive(Debug, Clone)]
struct QuantizedLoader {
    /// Each `.q8` matrix as read, with the tensor it became (the encoder
    /// computes with them as integers: [`super::integer_products`]).
    loaded: Arc<Mutex<Vec<Int8Weight>>>,
}

/// The table of a `.q4` file whose header gave `shape`, decoded straight
/// into an int8 or uint8 tensor (`from_byte` reads a decoded byte as `T`).
fn four_bit_tensor<T: Datum + Copy>(
    bytes: &[u8],
    shape: &super::four_bit::Shape,
    from_byte: fn(u8) -> T,
) -> Result<Tensor, String> {
    let mut tensor =
        Tensor::zero_dt(T::datum_type(), &[shape.rows, shape.cols]).map_err(|e| e.to_string())?;
    {
        let mut plain = tensor.try_as_plain_ram_mut().map_err(|e| e.to_string())?;
        let values = plain.as_slice_mut::<T>().map_err(|e| e.to_string())?;
        super::four_bit::decode_into(bytes, shape, |i, b| values[i] = from_byte(b))?;
    }
    Ok(tensor)
}

impl ResourceLoader for QuantizedLoader {
    fn name(&self) -> StaticName {
        "localtune int8 and 4-bit weights".into()
    }

    fn try_load(
        &self,
        path: &Path,
        reader: &mut dyn Read,
        _framework: &Nnef,
    ) -> TractResult<Option<(String, Arc<dyn Resource>)>> {
        let extension = path.extension().and_then(|e| e.to_str());
        if extension != Some(QUANTIZED_EXTENSION) && extension != Some(FOUR_BIT_EXTENSION) {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        let tensor = if extension == Some(FOUR_BIT_EXTENSION) {
            let failed = |e: String| format_err!("{path:?}: {e}");
            let shape = super::four_bit::read_shape(&bytes).map_err(failed)?;
            if shape.signed {
                four_bit_tensor(&bytes, &shape, |b| b as i8)
            } else {
                four_bit_tensor(&bytes, &shape, |b| b)
            }
            .map_err(failed)
            .map(Arc::new)?
        } else {
            let matrix = decode_quantized(&bytes).map_err(|e| format_err!("{path:?}: {e}"))?;
            // Straight into the tensor: no second buffer to allocate and copy.
            let mut tensor = Tensor::zero::<f32>(&[matrix.rows, matrix.cols])?;
            matrix.dequantize_into(tensor.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
            // tract's `variable` puts this very Arc in the graph's constant.
            let tensor = Arc::new(tensor);
            self.loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Int8Weight {
                    matrix,
                    dequantized: Arc::downgrade(&tensor),
                });
            tensor
        };
        // The id tract's own loader gives `name.dat`: the path without extension.
        let id = PathBuf::from(path).with_extension("");
        let id = id
            .to_str()
            .ok_or_else(|| format_err!("{path:?} is not UTF-8"))?
            .to_string();
        Ok(Some((id, tensor)))
    }
}

// The writer is part of the ONNX importer.
#[cfg(all(test, feature = "onnx-import"))]
mod tests {
    use super::*;

    fn matrix(scale: Scale) -> QuantizedMatrix {
        QuantizedMatrix {
            rows: 2,
            cols: 3,
            signed: true,
            values: vec![1, 255, 127, 128, 0, 7],
            scale,
        }
    }

    #[test]
    fn int8_weights_round_trip_through_their_file_format() {
        for scale in [
            Scale::One(0.5),
            Scale::PerRow(vec![0.25, 2.0]),
            Scale::PerColumn(vec![1.0, 0.1, 3.0]),
        ] {
            let m = matrix(scale);
            assert_eq!(decode_quantized(&encode_quantized(&m)).unwrap(), m);
        }
    }

    #[test]
    fn damaged_int8_weight_files_are_refused() {
        let bytes = encode_quantized(&matrix(Scale::PerRow(vec![0.25, 2.0])));
        assert!(decode_quantized(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("bytes of data"));
        assert!(decode_quantized(&bytes[..10])
            .unwrap_err()
            .contains("truncated"));
        let mut wrong_kind = bytes.clone();
        wrong_kind[8 + 9] = 9;
        assert!(decode_quantized(&wrong_kind)
            .unwrap_err()
            .contains("scale kind"));
        assert!(decode_quantized(b"not a weight file")
            .unwrap_err()
            .contains("magic"));
    }

    #[test]
    fn only_exact_matches_are_stored_as_int8() {
        let m = matrix(Scale::PerColumn(vec![1.0, 0.1, 3.0]));
        let dat = |values: Vec<f32>, shape: [usize; 2]| {
            let tensor = tract_ndarray::Array2::from_shape_vec(shape, values)
                .unwrap()
                .into_tensor();
            let mut out = Vec::new();
            tract_nnef::tensors::write_tensor(&mut out, &tensor).unwrap();
            out
        };
        let exact = m.dequantized();
        assert_eq!(
            quantized_form(&dat(exact.clone(), [2, 3]), std::slice::from_ref(&m)),
            Some(m.clone())
        );
        let transposed = m.transposed();
        assert_eq!(
            quantized_form(
                &dat(transposed.dequantized(), [3, 2]),
                std::slice::from_ref(&m)
            ),
            Some(transposed)
        );
        let mut off_by_one_ulp = exact;
        off_by_one_ulp[4] = f32::from_bits(off_by_one_ulp[4].to_bits() + 1);
        assert_eq!(
            quantized_form(&dat(off_by_one_ulp, [2, 3]), std::slice::from_ref(&m)),
            None
        );
    }

    #[test]
    fn the_tract_version_is_the_one_cargo_toml_pins() {
        let manifest = include_str!("../../Cargo.toml");
        let pin = format!("tract-onnx = {{ version = \"={TRACT_VERSION}\"");
        assert_eq!(manifest.matches(&pin).count(), 2, "{pin}");
        let nnef_pin = format!("tract-nnef = {{ version = \"={TRACT_VERSION}\"");
        assert!(manifest.contains(&nnef_pin), "{nnef_pin}");
    }
}
