"""Computes reference sentence embeddings with onnxruntime for the parity tests.

Writes tests/fixtures/parity.json: for each text, the token ids (from the
Python `tokenizers` package reading the same tokenizer.json) and the
embedding onnxruntime gives for the same int8 model, pooled as
sentence-transformers defines it for all-MiniLM-L6-v2 (mean over the
attention mask, then L2-normalise). Each text is run alone (batch 1), so the
reference is independent of padding; the Rust tests run them batched.

Run after scripts/fetch-model.sh:
    pip install -r tools/requirements.txt
    python3 tools/make_parity_fixture.py
"""
import hashlib
import json
import os

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL_DIR = os.path.join(ROOT, "models", "all-minilm-l6-v2-int8")
OUT = os.path.join(ROOT, "tests", "fixtures", "parity.json")
MAX_SEQ_LEN = 128

LONG = (
    "The quick brown fox jumps over the lazy dog while the kitchen lights dim slowly, "
    "and somewhere a thermostat decides that twenty-one degrees is exactly right for "
    "a quiet Sunday afternoon spent reading about distributed systems and sourdough. "
)

# (label, text) pairs; `repeat` entries are expanded so the fixture stays small.
TEXTS = [
    ("empty", ""),
    ("whitespace", "   \t\n  "),
    ("one word", "hello"),
    ("short command", "turn off the kitchen lights"),
    ("question", "What's the weather like tomorrow in Paris?"),
    ("mixed case", "Set The TEMPERATURE to 21 Degrees"),
    ("punctuation only", "?!... ,;: -- ()[]{}"),
    ("heavy punctuation", "wait... what?!?! no -- really??? (seriously) [ok] {fine}"),
    ("numbers", "add 3 eggs, 250g flour and 1.5 l of milk at 18:45 on 2026-11-28"),
    ("url and email", "mail me at someone@example.org or see https://example.org/a?b=c#d"),
    ("code", "fn main() { println!(\"{}\", x.iter().map(|v| v * 2).sum::<i32>()); }"),
    ("accents", "Crème brûlée à la façon de Noël, s'il vous plaît — déjà vu"),
    ("german", "Schalte bitte das Licht im Wohnzimmer aus, es ist schon spät"),
    ("spanish", "¿Podrías poner música tranquila en el dormitorio, por favor?"),
    ("chinese", "请把客厅的灯关掉，然后把空调温度调到二十一度"),
    ("japanese", "明日の天気はどうですか？東京は雨が降りますか"),
    ("korean", "거실 불 좀 꺼 줄래? 고마워"),
    ("russian", "Включи, пожалуйста, свет на кухне и поставь таймер на десять минут"),
    ("arabic", "أطفئ الأنوار في المطبخ من فضلك"),
    ("hindi", "कृपया रसोई की बत्ती बंद कर दो"),
    ("greek", "Άνοιξε το παράθυρο στο υπνοδωμάτιο"),
    ("hebrew", "תדליק את האור בסלון בבקשה"),
    ("thai", "ช่วยเปิดไฟในห้องนั่งเล่นหน่อย"),
    ("emoji only", "🔥🔥🔥 😂👍"),
    ("emoji in text", "good morning ☀️ let's make coffee ☕ and play music 🎶"),
    ("zwj emoji", "family 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵"),
    ("mixed scripts", "Play 周杰伦 on Spotify, then lights → 50% and ✓ done"),
    ("control chars", "line one\nline two\ttabbed\r\nend\u0007bell"),
    ("long word", "supercalifragilisticexpialidocious" * 4),
    ("repeated char", "a" * 300),
    ("medium", LONG[:200]),
    ("exactly long", LONG),
    ("truncated", LONG * 3),
    ("very long words", " ".join(["antidisestablishmentarianism"] * 60)),
    ("100 KB", {"repeat": "lorem ipsum dolor sit amet ", "times": 3800}),
]


def expand(text):
    if isinstance(text, dict):
        return text["repeat"] * text["times"]
    return text


def main():
    model_path = os.path.join(MODEL_DIR, "model.onnx")
    tok = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LEN)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in sess.get_inputs()]

    cases = []
    for label, spec in TEXTS:
        text = expand(spec)
        enc = tok.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.ones_like(ids)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = sess.run(["last_hidden_state"], {k: feeds[k] for k in input_names})[0][0]
        pooled = hidden.mean(axis=0)
        emb = pooled / max(np.linalg.norm(pooled), 1e-12)
        cases.append(
            {
                "label": label,
                "text": spec,
                "token_ids": enc.ids,
                "embedding": [float(f"{x:.8g}") for x in emb.astype(np.float32)],
            }
        )

    with open(model_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    fixture = {
        "about": "Reference embeddings from onnxruntime for tests/parity*.rs; regenerate with tools/make_parity_fixture.py",
        "model_sha256": sha,
        "onnxruntime": ort.__version__,
        "max_seq_len": MAX_SEQ_LEN,
        "dim": len(cases[0]["embedding"]),
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} texts, onnxruntime {ort.__version__}")


if __name__ == "__main__":
    main()
