//! Text → token ids, padded per batch.

use tokenizers::{PaddingParams, Tokenizer, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// A batch of tokenized texts, row-major `[rows, seq_len]`, padded with
/// zeros to the longest text of this batch (not to a fixed length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub rows: usize,
    pub seq_len: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub token_type_ids: Vec<i64>,
}

impl TokenBatch {
    /// Builds a batch from per-text token ids (each already truncated),
    /// padding every row to the longest one.
    pub fn from_ids(texts: &[Vec<u32>]) -> Self {
        Self::from_rows(texts)
    }

    /// [`TokenBatch::from_ids`] over borrowed rows (a chunk of a larger
    /// call's texts, without copying their ids).
    pub(crate) fn from_rows<T: AsRef<[u32]>>(texts: &[T]) -> Self {
        let rows = texts.len();
        let seq_len = texts.iter().map(|t| t.as_ref().len()).max().unwrap_or(0);
        let mut input_ids = vec![0i64; rows * seq_len];
        let mut attention_mask = vec![0i64; rows * seq_len];
        for (row, ids) in texts.iter().enumerate() {
            let start = row * seq_len;
            for (k, &id) in ids.as_ref().iter().enumerate() {
                input_ids[start + k] = i64::from(id);
                attention_mask[start + k] = 1;
            }
        }
        // Single-segment input: every token type is 0.
        let token_type_ids = vec![0i64; rows * seq_len];
        TokenBatch {
            rows,
            seq_len,
            input_ids,
            attention_mask,
            token_type_ids,
        }
    }

    /// Number of real (non-padding) tokens in `row`.
    pub fn tokens_in_row(&self, row: usize) -> usize {
        self.attention_mask[row * self.seq_len..(row + 1) * self.seq_len]
            .iter()
            .filter(|&&m| m != 0)
            .count()
    }
}

/// The characters of a text the tokenizer reads; the rest is ignored.
/// The tokenizer normalises and splits a whole text before it truncates to
/// the encoder's limit (at most 512 tokens, 128 by default), so a 20 MB
/// paste kept a page busy for seconds; every token takes at least one
/// character, so 8,192 characters hold the tokens the encoder reads unless
/// the text is mostly whitespace or control characters.
pub const MAX_TEXT_CHARS: usize = 8_192;

/// `text` up to its first [`MAX_TEXT_CHARS`] characters.
pub fn capped(text: &str) -> &str {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// `tokenizer.json` read as the `tokenizers` crate reads it (its
/// `TokenizerVisitor`, 0.22: the same builder, the same `add_tokens` of the
/// added tokens against the model), except for the model: a WordPiece
/// vocabulary is parsed once, straight into the model. The crate's own
/// `ModelWrapper` parse goes through two generic trees first (an untagged
/// enum, then a flattened `serde_json::Value`): 30,522 entries three times,
/// ~75 ms of a 0.5 s encoder load in a browser. Other models take the
/// crate's path; `tests/parity.rs` checks that both readers tokenize alike.
#[doc(hidden)]
pub fn read_tokenizer_json(json: &[u8]) -> std::result::Result<Tokenizer, String> {
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::{
        AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
        PreTokenizerWrapper, TokenizerBuilder,
    };

    #[derive(Deserialize)]
    struct AddedTokenWithId {
        // The crate only warns when the model gives a token another id.
        #[allow(dead_code)]
        id: u32,
        #[serde(flatten)]
        token: AddedToken,
    }
    #[derive(Deserialize)]
    struct Parts<'a> {
        version: Option<String>,
        truncation: Option<TruncationParams>,
        padding: Option<PaddingParams>,
        #[serde(default)]
        added_tokens: Vec<AddedTokenWithId>,
        normalizer: Option<NormalizerWrapper>,
        pre_tokenizer: Option<PreTokenizerWrapper>,
        #[serde(borrow)]
        model: Option<&'a RawValue>,
        decoder: Option<DecoderWrapper>,
        post_processor: Option<PostProcessorWrapper>,
    }
    #[derive(Deserialize)]
    struct ModelType<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
    }

    let json = std::str::from_utf8(json).map_err(|e| e.to_string())?;
    let parts: Parts = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if let Some(version) = parts.version.filter(|v| v != "1.0") {
        return Err(format!("Unknown tokenizer version '{version}'"));
    }
    let model = parts.model.ok_or("Model missing.")?.get();
    let model: ModelWrapper = match serde_json::from_str::<ModelType>(model) {
        Ok(ModelType {
            kind: Some("WordPiece"),
        }) => serde_json::from_str::<WordPiece>(model)
            .map_err(|e| e.to_string())?
            .into(),
        _ => serde_json::from_str(model).map_err(|e| e.to_string())?,
    };
    let builder = TokenizerBuilder::new()
        .with_truncation(parts.truncation)
        .with_padding(parts.padding)
        .with_normalizer(parts.normalizer)
        .with_pre_tokenizer(parts.pre_tokenizer)
        .with_model(model)
        .with_decoder(parts.decoder)
        .with_post_processor(parts.post_processor);
    let mut tokenizer = Tokenizer::from(builder.build().map_err(|e| e.to_string())?);
    let added: Vec<AddedToken> = parts.added_tokens.into_iter().map(|t| t.token).collect();
    tokenizer.add_tokens(&added);
    Ok(tokenizer)
}

/// The `tokenizers` tokenizer, configured to truncate at the encoder's limit
/// and never pad (padding is per batch, in [`TokenBatch`]).
pub(crate) struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    pub fn from_bytes(tokenizer_json: &[u8], max_seq_len: usize) -> Result<Self> {
        let mut inner = read_tokenizer_json(tokenizer_json)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json could not be read: {e}")))?;
        // The shipped tokenizer.json pads every input to 128 tokens; padding
        // to the batch's own longest text is ~5× faster on short texts.
        inner.with_padding(None::<PaddingParams>);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(format!("truncation could not be set: {e}")))?;
        Ok(TextTokenizer { inner })
    }

    /// Token ids of one text (its first [`MAX_TEXT_CHARS`] characters),
    /// with the special tokens, truncated.
    pub fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(capped(text), true)
            .map_err(|e| Error::Tokenizer(format!("text could not be tokenized: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Tokenizes `texts` one by one (`encode_batch` would go through rayon,
    /// which has no threads in the browser) and pads them into one batch.
    pub fn batch(&self, texts: &[&str]) -> Result<TokenBatch> {
        let ids = texts
            .iter()
            .map(|t| self.ids(t))
            .collect::<Result<Vec<_>>>()?;
        Ok(TokenBatch::from_ids(&ids))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_longest_row_with_zero_mask() {
        let batch = TokenBatch::from_ids(&[vec![101, 7, 102], vec![101, 102]]);
        assert_eq!(batch.seq_len, 3);
        assert_eq!(batch.input_ids, vec![101, 7, 102, 101, 102, 0]);
        assert_eq!(batch.attention_mask, vec![1, 1, 1, 1, 1, 0]);
        assert_eq!(batch.token_type_ids, vec![0; 6]);
        assert_eq!(batch.tokens_in_row(0), 3);
        assert_eq!(batch.tokens_in_row(1), 2);
    }

    #[test]
    fn empty_batch_has_no_rows() {
        let batch = TokenBatch::from_ids(&[]);
        assert_eq!((batch.rows, batch.seq_len), (0, 0));
    }
}
