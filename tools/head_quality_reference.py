#!/usr/bin/env python3
"""Reference side of the head-quality benchmark.

For every run in runs.json (written by the benchmark, together with the
encoder's features of every CSV row), fits scikit-learn's LogisticRegression
on the same train rows, with C chosen by cross-validation on those rows only,
and compares its test accuracy with the accuracy our head reached. Prints a
markdown table per setting; optionally writes it into docs/benchmarks.md
(or another Markdown file) between markers and the aggregated numbers as
JSON.

    "$PYTHON" tools/head_quality_reference.py [--update-readme [docs/benchmarks.md]]

Packages: tools/bench-requirements.txt (scripts/python-bench-env.sh).
"""

import single_thread_blas  # noqa: F401  (first: before numpy is imported)

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench/results/head-quality"
DEFAULT_CSV = ROOT / "bench/data/home-assistant-intents-en.csv"

C_GRID_TEXT = "logspace(-2, 3, 11)"  # for the footnote
C_GRID = np.logspace(-2, 3, 11)
MAX_FOLDS = 5
FALLBACK_C = 10.0  # when a class has a single training row, so no stratified CV
MAX_ITER = 10_000  # lbfgs stops far earlier at the tolerance; this only bounds it
START_MARKER = "<!-- bench:head-quality:start -->"
END_MARKER = "<!-- bench:head-quality:end -->"


def fail(message):
    print(f"head_quality_reference: {message}", file=sys.stderr)
    sys.exit(2)


def load_inputs(features_path, runs_path, csv_path):
    runs = json.loads(Path(runs_path).read_text(encoding="utf-8"))
    dim = int(runs["dim"])
    with open(csv_path, encoding="utf-8", newline="") as f:
        labels = np.array([row["intent"] for row in csv.DictReader(f)])
    features = np.fromfile(features_path, dtype="<f4")
    if features.size != len(labels) * dim:
        fail(f"{features_path} holds {features.size} floats; "
             f"{len(labels)} CSV rows x dim {dim} = {len(labels) * dim} expected")
    features = features.reshape(len(labels), dim).astype(np.float64)
    for run in runs["runs"]:
        for part in ("train", "test"):
            idx = run[part]
            if not idx or min(idx) < 0 or max(idx) >= len(labels):
                fail(f"run {run['setting']} seed {run['seed']}: {part} indices "
                     f"empty or outside 0..{len(labels) - 1}")
    return features, labels, runs


def fit_reference(x, y, seed):
    """LogisticRegression with C by stratified k-fold CV on (x, y).

    Returns (model or None, C, how C was chosen, number of convergence warnings).
    """
    counts = Counter(y)
    if len(counts) < 2:
        return None, None, "one class in train: predicts it", 0
    smallest = min(counts.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if smallest < 2:
            c, how = FALLBACK_C, f"fixed C={FALLBACK_C:g}, a class has 1 train row"
        else:
            folds = min(MAX_FOLDS, smallest)
            search = GridSearchCV(
                LogisticRegression(solver="lbfgs", max_iter=MAX_ITER),
                {"C": C_GRID},
                cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                n_jobs=1,
            )
            search.fit(x, y)
            c, how = float(search.best_params_["C"]), f"stratified {folds}-fold CV over {C_GRID_TEXT}"
        # Multinomial: lbfgs fits the softmax model whenever there are >2 classes.
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER).fit(x, y)
    n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, c, how, n_warn


def evaluate(features, labels, runs):
    results = []
    for run in runs["runs"]:
        started = time.perf_counter()
        train, test = np.array(run["train"]), np.array(run["test"])
        y_train = labels[train]
        model, c, how, n_warn = fit_reference(features[train], y_train, int(run["seed"]))
        if model is None:
            predicted = np.full(len(test), y_train[0])
        else:
            predicted = model.predict(features[test])
        accuracy = float(np.mean(predicted == labels[test]))
        ours = run.get("ours", {})
        results.append({
            "setting": run["setting"],
            "seed": run["seed"],
            "train_size": len(train),
            "test_size": len(test),
            "ours_accuracy": ours.get("accuracy"),
            "ours_steps": ours.get("steps"),
            "ours_millis": ours.get("millis"),
            "reference_accuracy": accuracy,
            "reference_C": c,
            "reference_C_from": how,
            "convergence_warnings": n_warn,
        })
        c_text = "-" if c is None else f"{c:.3g}"
        ours_text = "-" if ours.get("accuracy") is None else f"{100 * ours['accuracy']:.1f}%"
        print(f"{run['setting']} seed {run['seed']}: train {len(train)}, test {len(test)}, "
              f"C={c_text} ({how}), LR {100 * accuracy:.1f}%, ours {ours_text} "
              f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return results


def mean_std(values):
    """Mean and sample standard deviation (ddof=1; None for one value)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std


def aggregate(results):
    settings = list(dict.fromkeys(r["setting"] for r in results))
    rows = []
    for setting in settings:
        runs = [r for r in results if r["setting"] == setting]
        ours_mean, ours_std = mean_std([r["ours_accuracy"] for r in runs])
        ref_mean, ref_std = mean_std([r["reference_accuracy"] for r in runs])
        rows.append({
            "setting": setting,
            "seeds": len(runs),
            "train_size_mean": float(np.mean([r["train_size"] for r in runs])),
            "ours_accuracy_mean": ours_mean,
            "ours_accuracy_std": ours_std,
            "reference_accuracy_mean": ref_mean,
            "reference_accuracy_std": ref_std,
            "difference_points": (None if ours_mean is None
                                  else 100 * (ours_mean - ref_mean)),
            "ours_steps_mean": mean_std([r["ours_steps"] for r in runs])[0],
            "ours_millis_mean": mean_std([r["ours_millis"] for r in runs])[0],
            "reference_C": [r["reference_C"] for r in runs],
        })
    return rows


def percent(mean, std):
    if mean is None:
        return "—"
    return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def number(value, fmt):
    return "—" if value is None else format(value, fmt)


def flatten(config, prefix=""):
    """{"a": {"b": 1}} -> ["a.b=1"]: a one-line summary of any JSON object."""
    if isinstance(config, dict):
        return [item for key, value in config.items()
                for item in flatten(value, f"{prefix}{key}.")]
    if isinstance(config, float):
        # f32 settings arrive widened (0.01 -> 0.009999999776...): show the
        # value that was configured.
        config = float(f"{config:.6g}")
    return [f"{prefix.rstrip('.')}={json.dumps(config)}"]


def markdown(rows, results, runs, today):
    lines = [
        "| setting | seeds | train rows | ours (%) | LogisticRegression (%) "
        "| ours − LR (points) | ours steps | ours ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['seeds']} | {r['train_size_mean']:.0f} "
            f"| {percent(r['ours_accuracy_mean'], r['ours_accuracy_std'])} "
            f"| {percent(r['reference_accuracy_mean'], r['reference_accuracy_std'])} "
            f"| {number(r['difference_points'], '+.1f')} "
            f"| {number(r['ours_steps_mean'], '.0f')} "
            f"| {number(r['ours_millis_mean'], '.1f')} |")
    config = ", ".join(flatten(runs.get("default_config", {}))) or "—"
    n_warn = sum(r["convergence_warnings"] for r in results)
    settings_by_how = {}
    for r in results:
        settings_by_how.setdefault(r["reference_C_from"], {})[r["setting"]] = None
    hows = "; ".join(f"{how} ({', '.join(settings)})"
                     for how, settings in settings_by_how.items())
    lines += [
        "",
        "Test accuracy, mean ± sample standard deviation (ddof=1) over seeds; "
        "train rows, steps and ms are means over seeds; ours ms is the native update on one thread "
        "(wasm timings: the speed benchmark).",
        f"LogisticRegression: scikit-learn {sklearn.__version__}, lbfgs, "
        f"multinomial; C from the train rows only: {hows}"
        + (f"; {n_warn} convergence warnings" if n_warn else "") + ".",
        f"Run {today}, encoder sha256 `{str(runs.get('encoder_sha256', '?'))[:12]}…`, "
        f"features dim {runs['dim']}; ours default config: {config}.",
    ]
    return "\n".join(lines)


def readme_parts(path):
    """(text up to and including the start marker, text from the end marker)."""
    text = Path(path).read_text(encoding="utf-8")
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if (start < 0 or end < start
            or text.count(START_MARKER) != 1 or text.count(END_MARKER) != 1):
        fail(f"{path} needs exactly one {START_MARKER} followed by one {END_MARKER}")
    return text[:start + len(START_MARKER)], text[end:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", default=ROOT / "bench/results/features/features.f32", type=Path,
                        help="little-endian float32 (rows, dim), rows in CSV order")
    parser.add_argument("--runs", default=RESULTS / "runs.json", type=Path)
    parser.add_argument("--csv", default=DEFAULT_CSV, type=Path,
                        help="labels: its intent column")
    # The flag keeps its name from when the table lived in the README.
    parser.add_argument("--update-readme", type=Path, metavar="MARKDOWN", nargs="?",
                        const=Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md",
                        help=f"replace the text between {START_MARKER} and {END_MARKER} "
                             "(default file: the repository's docs/benchmarks.md)")
    parser.add_argument("--json-out", type=Path, help="write the aggregated numbers here")
    args = parser.parse_args()

    if args.update_readme:
        readme_parts(args.update_readme)  # fail now, not after minutes of fitting
    features, labels, runs = load_inputs(args.features, args.runs, args.csv)
    results = evaluate(features, labels, runs)
    rows = aggregate(results)
    today = datetime.date.today().isoformat()
    table = markdown(rows, results, runs, today)
    print(table)

    if args.update_readme:
        head, tail = readme_parts(args.update_readme)
        args.update_readme.write_text(f"{head}\n{table}\n{tail}", encoding="utf-8")
        print(f"updated {args.update_readme}", file=sys.stderr)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({
            "date": today,
            "sklearn_version": sklearn.__version__,
            "encoder_sha256": runs.get("encoder_sha256"),
            "dim": runs["dim"],
            "default_config": runs.get("default_config"),
            "std": "sample (ddof=1); null for a single seed",
            "c_grid": [float(c) for c in C_GRID],
            "settings": rows,
            "runs": results,
        }, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}", file=sys.stderr)


if __name__ == "__main__":
    main()
