#!/usr/bin/env python3
"""Reference side of the personalization benchmark.

Replays every stream of bench/results/personalization/streams.json (written
by `cargo bench --bench personalization`, with the classifier's own figures)
with the reference learner: scikit-learn's LogisticRegression, refitted
after every correction on what the device has — the bundle's rehearsal
vectors and the corrections so far — predicting any label it has seen. Its
C is picked per scenario in hindsight from a grid (the reference at its
best, on the very streams it is scored on). Prints the table, with every
ratio taken against figures of the same run; optionally writes it between
markers into README.md and the aggregated numbers as JSON.

    "$PYTHON" tools/personalization_reference.py [--update-readme [README.md]]

Packages: tools/bench-requirements.txt (scripts/python-bench-env.sh).
"""

import single_thread_blas  # noqa: F401  (first: before numpy is imported)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench/results/personalization"
FEATURES = ROOT / "bench/results/features/features.f32"
C_GRID = (1.0, 10.0, 100.0)
MAX_ITER = 5_000
WINDOW = 50  # queries per column of the per-50 table
SCENARIOS = {"new": "new intents", "renamed": "renamed intents", "split": "split intent"}
OURS, TODAY = "classifier", "batch of 50"
START_MARKER = "<!-- bench:personalization:start -->"
END_MARKER = "<!-- bench:personalization:end -->"


def fail(message):
    print(f"personalization_reference: {message}", file=sys.stderr)
    sys.exit(2)


class Reference:
    """Logistic regression on the rehearsal vectors plus the corrections."""

    def __init__(self, x, y, c):
        self.x, self.y, self.c = list(x), list(y), c
        self.fit()

    def fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model = LogisticRegression(C=self.c, max_iter=MAX_ITER)
            self.model.fit(np.asarray(self.x), np.asarray(self.y))

    def predict(self, x):
        return self.model.predict(np.asarray(x).reshape(len(x), -1))

    def correct(self, x, label):
        self.x.append(x)
        self.y.append(label)
        self.fit()


def rehearsal_of(stream, dim):
    values = np.fromfile(RESULTS / stream["rehearsal"]["file"], dtype="<f4")
    labels = stream["rehearsal"]["labels"]
    if values.size != len(labels) * dim:
        fail(f"{stream['rehearsal']['file']} holds {values.size} floats, "
             f"not {len(labels)} × {dim}")
    return values.reshape(len(labels), dim).astype(np.float64), labels


def untouched_accuracy(learner, stream, features, only_label=None):
    """The learner's accuracy on the test rows of the intents the user never
    touches (or of one of them)."""
    untouched = [u for u in stream["untouched"] if only_label in (None, u["label"])]
    predicted = learner.predict(features[[u["row"] for u in untouched]])
    return float(np.mean([p == u["label"] for p, u in zip(predicted, untouched)]))


def kept_half_label(stream):
    """The split stream's shipped label, whose other half the user named anew."""
    merged = stream.get("merged") or []
    return merged[0][1] if merged else None


def replay(stream, features, dim, c):
    """The reference's mistakes on the stream, one flag per query, and its
    accuracy on the untouched intents at the start and at the end."""
    x0, y0 = rehearsal_of(stream, dim)
    learner = Reference(x0, y0, c)
    untouched_start = untouched_accuracy(learner, stream, features)
    kept = kept_half_label(stream)
    kept_start = untouched_accuracy(learner, stream, features, kept) if kept else None
    mistakes = []
    after_correction = []
    for q in stream["queries"]:
        x = features[q["row"]]
        wrong = learner.predict([x])[0] != q["label"]
        mistakes.append(wrong)
        if wrong:
            learner.correct(x, q["label"])
            after_correction.append(untouched_accuracy(learner, stream, features))
    return {
        "mistakes": mistakes,
        "untouched_start": untouched_start,
        "untouched_end": untouched_accuracy(learner, stream, features),
        "worst_correction_drop": worst_drop(untouched_start, after_correction),
        "kept_half": {
            "start": kept_start,
            "end": untouched_accuracy(learner, stream, features, kept),
        } if kept else None,
    }


def worst_drop(start, after_each):
    """The most the untouched intents' accuracy fell with one correction
    (0 if it never fell)."""
    before = [start] + after_each[:-1]
    return max([b - a for b, a in zip(before, after_each)], default=0.0)


def taught_after_50(stream, features, dim, c, first_50):
    """The reference's accuracy on the taught labels after the classifier's
    own first 50 corrections."""
    x0, y0 = rehearsal_of(stream, dim)
    learner = Reference(x0, y0, c)
    for item in first_50:
        learner.x.append(features[item["row"]])
        learner.y.append(item["label"])
    learner.fit()
    rows = [t["row"] for t in stream["taught_eval"]]
    predicted = learner.predict(features[rows])
    return float(np.mean([p == t["label"] for p, t in zip(predicted, stream["taught_eval"])]))


def mean(values):
    return float(np.mean(values)) if values else float("nan")


def summarize(data, features, dim):
    dim = data["dim"]
    out = {}
    for scenario in SCENARIOS:
        streams = [s for s in data["streams"] if s["scenario"] == scenario]
        if not streams:
            continue
        # The reference at its best C on these streams.
        best = None
        for c in C_GRID:
            runs = [replay(s, features, dim, c) for s in streams]
            total = mean([sum(r["mistakes"]) for r in runs])
            print(f"  reference C={c:g} on {scenario}: {total:.1f} corrections", file=sys.stderr)
            if best is None or total < best[1]:
                best = (c, total, runs)
        c, _, reference_runs = best
        row = {"c": c, "seeds": len(streams), "learners": {}}
        learners = {"reference": [r["mistakes"] for r in reference_runs]}
        for name in (OURS, TODAY):
            learners[name] = [s["variants"][name]["mistakes"] for s in streams]
        for name, runs in learners.items():
            windows = len(runs[0]) // WINDOW
            row["learners"][name] = {
                "total": mean([sum(r) for r in runs]),
                "per_seed": [int(sum(r)) for r in runs],
                "per_window": [mean([sum(r[w * WINDOW:(w + 1) * WINDOW]) for r in runs])
                               for w in range(windows)],
            }
        ours = [s["variants"][OURS] for s in streams]
        drops = [u["untouched_before"] - u["untouched_after"] for v in ours for u in v["updates"]]
        row["untouched"] = {
            "start": mean([v["untouched_at_start"] for v in ours]),
            "end": mean([v["untouched_at_end"] for v in ours]),
            "worst_update_drop": max(drops) if drops else 0.0,
            "updates": len(drops),
            "rejected": sum(not u["accepted"] for v in ours for u in v["updates"]),
        }
        row["untouched"]["worst_correction_drop"] = max(
            worst_drop(v["untouched_at_start"], v["untouched_after_correction"]) for v in ours)
        row["untouched_reference"] = {
            "start": mean([r["untouched_start"] for r in reference_runs]),
            "end": mean([r["untouched_end"] for r in reference_runs]),
            "worst_correction_drop": max(r["worst_correction_drop"] for r in reference_runs),
        }
        today = [s["variants"][TODAY] for s in streams]
        today_drops = [u["untouched_before"] - u["untouched_after"]
                       for v in today for u in v["updates"]]
        row["untouched_today"] = {
            "end": mean([v["untouched_at_end"] for v in today]),
            "worst_update_drop": max(today_drops) if today_drops else 0.0,
        }
        row["taught_after_50"] = {
            "classifier": mean([v["taught_after_50"] for v in ours]),
            "reference": mean([taught_after_50(s, features, dim, c, v["first_50"])
                               for s, v in zip(streams, ours)]),
        }
        if all(v.get("kept_half") for v in ours):
            row["kept_half"] = {
                "classifier": {key: mean([v["kept_half"][key] for v in ours])
                               for key in ("start", "end", "lowest")},
                "reference": {key: mean([r["kept_half"][key] for r in reference_runs])
                              for key in ("start", "end")},
            }
        for key in ("feedback", "relearn"):
            millis = [m for v in ours for m in v[f"{key}_millis"]]
            row[f"{key}_p95_ms_native"] = float(np.percentile(millis, 95)) if millis else None
        out[scenario] = row
    return out


def updates(u):
    correction = f"worst correction {-100 * u['worst_correction_drop']:+.1f} pts"
    if not u["updates"]:
        return f"{correction}; no update ran"
    plural = "" if u["updates"] == 1 else "s"
    return (f"{correction}; worst update {-100 * u['worst_update_drop']:+.1f} pts; "
            f"{u['updates']} update{plural}, {u['rejected']} rejected")


def table(summary, queries, measured):
    lines = [
        f"Corrections a user makes on {queries} queries (mean of the seeds; per 50 queries in "
        "brackets), and what the updates did to the intents the user never touched:",
        "",
        "| stream | reference: logistic regression refitted per correction | classifier "
        "| ratio to reference | without memory and working head (the batch of 50) "
        "| ratio to that "
        "| untouched intents, classifier: start → end (the most one correction or "
        "update took) "
        "| untouched intents, reference: start → end (the most one correction took) "
        "| taught labels after 50 corrections: classifier / reference |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for scenario, row in summary.items():
        learners = row["learners"]

        def cell(name):
            per = " ".join(f"{v:.0f}" for v in learners[name]["per_window"])
            return f"{learners[name]['total']:.1f} ({per})"

        ref, ours, today = (learners[n]["total"] for n in ("reference", OURS, TODAY))
        u = row["untouched"]
        r = row["untouched_reference"]
        t = row["taught_after_50"]
        lines.append(
            f"| {SCENARIOS[scenario]} ({row['seeds']} seeds) | {cell('reference')} "
            f"| {cell(OURS)} | {ours / ref:.2f}× | {cell(TODAY)} | {ours / today:.2f}× "
            f"| {100 * u['start']:.1f}% → {100 * u['end']:.1f}% ({updates(u)}) "
            f"| {100 * r['start']:.1f}% → {100 * r['end']:.1f}% "
            f"({-100 * r['worst_correction_drop']:+.1f} pts) "
            f"| {100 * t['classifier']:.1f}% / {100 * t['reference']:.1f}% |")
    lines.append("")
    for scenario, row in summary.items():
        if "kept_half" in row:
            k, r = row["kept_half"]["classifier"], row["kept_half"]["reference"]
            lines.append(
                f"{SCENARIOS[scenario].capitalize()}: the half of the shipped label the user never "
                f"asked about (counted among the untouched intents above) went from "
                f"{100 * k['start']:.1f}% to {100 * k['end']:.1f}% (lowest after a correction "
                f"{100 * k['lowest']:.1f}%); the reference's from {100 * r['start']:.1f}% to "
                f"{100 * r['end']:.1f}%.")
    lines.append("The classifier's per-correction cost natively, p95: `add_feedback` (embedding, "
                 "storing, the memory) "
                 + ", ".join(f"{SCENARIOS[s]} {r['feedback_p95_ms_native']:.0f} ms"
                             for s, r in summary.items())
                 + "; the working head's relearning after it (run in slices between messages "
                 "in the browser) "
                 + ", ".join(f"{SCENARIOS[s]} {r['relearn_p95_ms_native']:.0f} ms"
                             for s, r in summary.items()) + ".")
    lines.append(measured)
    lines.append("Reference C (picked per stream kind from "
                 + ", ".join(f"{c:g}" for c in C_GRID) + "): "
                 + ", ".join(f"{SCENARIOS[s]} {r['c']:g}" for s, r in summary.items()) + ".")
    return "\n".join(lines)


def replace_between_markers(path, body):
    text = path.read_text(encoding="utf-8")
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if (start < 0 or end < start
            or text.count(START_MARKER) != 1 or text.count(END_MARKER) != 1):
        fail(f"{path} needs exactly one {START_MARKER} followed by one {END_MARKER}")
    path.write_text(text[:start + len(START_MARKER)] + "\n" + body + "\n" + text[end:],
                    encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default=RESULTS / "streams.json", type=Path)
    parser.add_argument("--features", default=FEATURES, type=Path)
    parser.add_argument("--update-readme", nargs="?", const=ROOT / "README.md", type=Path,
                        help=f"replace the text between {START_MARKER} and {END_MARKER}")
    parser.add_argument("--json-out", type=Path, help="write the aggregated numbers here")
    args = parser.parse_args()

    data = json.loads(args.streams.read_text(encoding="utf-8"))
    dim = data["dim"]
    features = np.fromfile(args.features, dtype="<f4")
    if features.size % dim:
        fail(f"{args.features} does not hold whole {dim}-value vectors")
    features = features.reshape(-1, dim).astype(np.float64)
    summary = summarize(data, features, dim)
    measured = (f"Measured {datetime.date.today().isoformat()} by `bash bench/personalization.sh`, "
                f"encoder sha256 {data['encoder_sha256'][:12]}….")
    text = table(summary, data["queries"], measured)
    print(text)
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if args.update_readme:
        replace_between_markers(args.update_readme, text)


if __name__ == "__main__":
    main()
