"""Generates the tiny encoder the fast unit tests use (tests/fixtures/tiny/).

The tiny encoder has the same interface as the real one (inputs input_ids,
attention_mask, token_type_ids: int64 [batch, sequence]; output
last_hidden_state: float32 [batch, sequence, 8]) and the same int8 storage of
its word-embedding table (Cast + per-row scale Mul feeding a Gather), so tests
of tokenization, padding, pooling, shape validation and the gather-first graph
rewrite run in milliseconds. Its output is simple enough to recompute by hand
in a test: last_hidden_state[b, s] = word_emb[input_ids[b, s]] + type_emb[token_type_ids[b, s]].

Also writes wrong-io.onnx, a valid ONNX model whose interface does not fit
an encoder, for the error-message tests.

Deterministic: run it again and the files are byte-identical.
Needs: pip install -r tools/requirements.txt
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tiny")
HIDDEN = 8

WORDS = (
    "the a an is are was to of and in on for it this that with turn off lights light kitchen "
    "living room bedroom set temperature degrees what time weather today tomorrow play music "
    "stop pause open close door garage window lock unlock good morning night hello world "
    "how do you add milk shopping list timer minutes cancel volume up down"
).split()
PIECES = ["##s", "##ed", "##ing", "##er", "##ly"] + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")


def build_tokenizer():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {}
    for tok in specials + CHARS + WORDS + PIECES:
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    # Like the real tokenizer.json: fixed padding and truncation that the
    # encoder must override (it pads per batch and truncates to its own limit).
    tok.enable_truncation(max_length=128)
    tok.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    return tok, len(vocab)


def build_model(vocab_size, path):
    """Writes the model and returns its (word table, type table) as float32 for the references."""
    rng = np.random.default_rng(20261128)
    word_q = rng.integers(-127, 128, size=(vocab_size, HIDDEN), dtype=np.int8)
    word_scale = (rng.random((vocab_size, 1), dtype=np.float32) * 0.01 + 0.001).astype(np.float32)
    type_emb = (rng.standard_normal((2, HIDDEN)) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["word_q"], ["word_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["word_f", "word_scale"], ["word_emb"]),
        helper.make_node("Gather", ["word_emb", "input_ids"], ["words"], axis=0),
        helper.make_node("Gather", ["type_emb", "token_type_ids"], ["types"], axis=0),
        helper.make_node("Add", ["words", "types"], ["sum"]),
        # attention_mask is part of the interface; it scales nothing here but
        # must stay a real input: multiply by 1 via Cast(mask >= 0).
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axes"], ["mask_3d"]),
        helper.make_node("Mul", ["mask_3d", "zero"], ["mask_zero"]),
        helper.make_node("Add", ["sum", "mask_zero"], ["last_hidden_state"]),
    ]
    ids = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
    graph = helper.make_graph(
        nodes,
        "tiny-encoder",
        [ids("input_ids"), ids("attention_mask"), ids("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN])],
        initializer=[
            numpy_helper.from_array(word_q, "word_q"),
            numpy_helper.from_array(word_scale, "word_scale"),
            numpy_helper.from_array(type_emb, "type_emb"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="localtune-tiny")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return word_q.astype(np.float32) * word_scale, type_emb


# Reference embeddings of the tiny encoder, computed here with numpy so the
# Rust tests compare against an independent implementation. Each entry: text,
# max_seq_len, expected token ids, expected embedding.
REFERENCE_TEXTS = [
    ("turn off the kitchen lights", 128),
    ("", 128),
    ("   ", 128),
    ("Hello, World!", 128),
    ("how do you play music tomorrow", 6),
    ("zzz unknownword 🔥 客厅", 128),
]


def build_references(tok, word, types):
    refs = []
    for text, max_len in REFERENCE_TEXTS:
        tok.no_padding()
        tok.enable_truncation(max_length=max_len)
        ids = tok.encode(text).ids
        hidden = word[ids] + types[0]
        pooled = hidden.mean(axis=0)
        emb = pooled / max(np.linalg.norm(pooled), 1e-12)
        refs.append({"text": text, "max_seq_len": max_len, "token_ids": ids,
                     "embedding": [float(f"{x:.8g}") for x in emb]})
    return refs


def build_wrong_io(path):
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "not-an-encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="localtune-tiny")
    model.ir_version = 8
    onnx.save(model, path)


def main():
    os.makedirs(OUT, exist_ok=True)
    tok, vocab_size = build_tokenizer()
    # Sorted keys so the file is byte-stable across runs.
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump(json.loads(tok.to_str()), f, sort_keys=True, indent=1)
        f.write("\n")
    word, types = build_model(vocab_size, os.path.join(OUT, "encoder.onnx"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(build_references(tok, word, types), f, ensure_ascii=False, indent=1)
        f.write("\n")
    build_wrong_io(os.path.join(OUT, "wrong-io.onnx"))
    print(f"wrote {OUT}: vocab {vocab_size}, hidden {HIDDEN}")


if __name__ == "__main__":
    main()
