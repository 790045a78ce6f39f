#!/usr/bin/env python3
"""Builds the labelled English intent dataset for the head-quality benchmark.

Source: the sentence templates of home-assistant-intents (data/en.json),
parsed with hassil. Each template is expanded to a bounded number of concrete
sentences and every template goes wholly to train or to test, so a test
sentence never comes from a template seen in training.

Output: bench/data/home-assistant-intents-en.csv (text,intent,template,split),
byte-for-byte identical across runs. Pinned inputs: tools/bench-requirements.txt.

    python3 tools/make_intents_dataset.py
"""

import argparse
import csv
import json
import math
import random
import time
from collections import Counter, defaultdict
from importlib import metadata, resources
from pathlib import Path

from hassil import (
    Alternative,
    Intents,
    ListReference,
    Permutation,
    RangeSlotList,
    RuleReference,
    Sequence,
    TextChunk,
    TextSlotList,
    WildcardSlotList,
    normalize_whitespace,
    parse_sentence,
)
from hassil.numbers import get_rbnf_engine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench/data/home-assistant-intents-en.csv"

SEED = 20261027
TEST_FRACTION = 0.3
# Sentences per template = TARGET_PER_INTENT / templates of the intent, within
# [MIN_PER_TEMPLATE, MAX_PER_TEMPLATE]: intents with 100 templates would
# otherwise swamp those with 3, and 2-template intents still reach MIN_TRAIN.
TARGET_PER_INTENT = 200
MIN_PER_TEMPLATE = 2
MAX_PER_TEMPLATE = 40
# Random draws per wanted sentence before giving up on a small template.
DRAWS_PER_SENTENCE = 30
MIN_TRAIN = 25
MIN_TEST = 5

# Fixed fillers. en.json defines wildcard lists without values, and {name},
# {area} and {floor} not at all: Home Assistant fills those from the user's
# devices at run time. Shared by all intents, except that {name} follows the
# entity domain that the template's block requires (a todo list is not called
# "desk lamp"): realistic, though a name can hint at the label (only HassTurnOn
# activates a scene).
FILLERS = {
    "area": ["kitchen", "living room", "bedroom", "bathroom", "office",
             "garage", "hallway", "dining room"],
    "floor": ["upstairs", "downstairs", "first floor", "ground floor",
              "basement", "attic"],
    "message": ["dinner is ready", "time to leave", "the laundry is done"],
    "search_query": ["jazz", "the beatles", "taylor swift",
                     "relaxing piano music", "abbey road", "the news"],
    "zone": ["home", "work", "school", "the gym"],
    "timer_name": ["pizza", "laundry", "pasta", "tea", "bread"],
    "timer_command": ["turn off the lights", "open the blinds",
                      "start the vacuum"],
    "shopping_list_item": ["milk", "eggs", "bread", "apples", "coffee",
                           "paper towels"],
    "todo_list_item": ["call mom", "pay the bills", "water the plants",
                       "book a dentist appointment"],
}
NAMES_BY_DOMAIN = {
    "binary_sensor": ["hallway motion sensor", "window sensor"],
    "button": ["doorbell", "restart button"],
    "climate": ["thermostat", "heat pump"],
    "cover": ["garage door", "living room blinds"],
    "fan": ["ceiling fan", "desk fan"],
    "input_boolean": ["guest mode", "vacation mode"],
    "input_button": ["doorbell", "restart button"],
    "lawn_mower": ["lawn mower", "robot mower"],
    "light": ["ceiling light", "desk lamp", "porch light"],
    "lock": ["front door", "back door"],
    "media_player": ["living room tv", "kitchen speaker"],
    "person": ["sarah", "david"],
    "scene": ["movie night", "good morning"],
    "script": ["bedtime routine", "morning routine"],
    "sensor": ["outdoor temperature", "humidity sensor"],
    "switch": ["coffee maker", "christmas tree"],
    "todo": ["groceries", "chores"],
    "vacuum": ["robot vacuum", "roomba"],
    "valve": ["water valve", "sprinkler"],
    "weather": ["home forecast", "weather station"],
}
DEFAULT_NAMES = ["ceiling light", "coffee maker", "living room tv"]


class Sampler:
    """Draws random sentences from the templates of one intent data block.

    Mirrors hassil.sample.sample_expression, which enumerates the full
    Cartesian product instead: up to ~10^7 sentences for one template even with
    short lists, too many to enumerate and then subsample. Here every choice
    point (alternative, optional, list value, permutation order, number) is
    drawn uniformly from a seeded random.Random.
    """

    def __init__(self, slot_lists, rules, numbers):
        self.slot_lists = slot_lists
        self.rules = rules
        self.numbers = numbers  # hassil's RBNF engine: numbers as words

    def sentence(self, template, rng):
        return normalize_whitespace(self._walk(template.expression, rng)).strip()

    def _walk(self, e, rng):
        if isinstance(e, TextChunk):
            return e.original_text
        if isinstance(e, Alternative):  # (a|b) and [optional]
            return self._walk(rng.choice(e.items), rng)
        if isinstance(e, Permutation):  # (a;b): any order
            items = list(e.items)
            rng.shuffle(items)
            return " ".join(self._walk(item, rng) for item in items)
        if isinstance(e, Sequence):
            return "".join(self._walk(item, rng) for item in e.items)
        if isinstance(e, RuleReference):
            return self._walk(self.rules[e.rule_name].expression, rng)
        if isinstance(e, ListReference):
            return self._list_value(e.list_name, rng)
        raise ValueError(f"unexpected expression {e!r}")

    def _list_value(self, name, rng):
        slot_list = self.slot_lists[name]
        if isinstance(slot_list, TextSlotList):
            return self._walk(rng.choice(slot_list.values).text_in, rng)
        if isinstance(slot_list, RangeSlotList):
            number = rng.choice(list(slot_list.get_numbers()))
            forms = []
            if slot_list.digits:
                forms.append(str(number))
            if slot_list.words:
                # Sorted: hassil collects the spellings in a set, whose order
                # varies with PYTHONHASHSEED.
                spelled = self.numbers.format_number(number).text_by_ruleset
                forms.extend(sorted(set(spelled.values())))
            return rng.choice(forms)
        raise ValueError(f"list {{{name}}} has no values")


def load_templates():
    """intent -> [(template id, parsed template, Sampler)], in en.json order.

    Template ids are `Intent/index`, counting over all data blocks of the
    intent, so they stay stable as long as en.json does.
    """
    path = resources.files("home_assistant_intents") / "data" / "en.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    intents = Intents.from_dict(data)
    numbers = get_rbnf_engine(intents.language)

    slot_lists = {
        name: lst
        for name, lst in intents.slot_lists.items()
        if not isinstance(lst, WildcardSlotList)
    }
    for name, values in FILLERS.items():
        slot_lists[name] = TextSlotList.from_strings(values, name=name)

    out = {}
    for intent_name in sorted(intents.intents):
        templates = []
        for block in intents.intents[intent_name].data:
            domains = block.requires_context.get("domain") or []
            if isinstance(domains, str):
                domains = [domains]
            names = [n for d in sorted(domains) for n in NAMES_BY_DOMAIN[d]]
            names = sorted(set(names)) or DEFAULT_NAMES
            sampler = Sampler(
                {**slot_lists, "name": TextSlotList.from_strings(names, name="name")},
                {**intents.expansion_rules, **block.expansion_rules},
                numbers,
            )
            # block.sentence_texts, not block.sentences: the latter is re-sorted.
            for text in block.sentence_texts:
                template_id = f"{intent_name}/{len(templates)}"
                templates.append((template_id, parse_sentence(text), sampler))
        out[intent_name] = templates
    return out


def expand(sampler, template, cap, template_id):
    """Up to `cap` distinct sentences from one template, reproducibly."""
    # A str seed is hashed with SHA-512, so it does not depend on PYTHONHASHSEED.
    rng = random.Random(f"{SEED}/expand/{template_id}")
    found = set()
    for _ in range(cap * DRAWS_PER_SENTENCE):
        found.add(sampler.sentence(template, rng))
        if len(found) >= cap:
            break
    found.discard("")
    return sorted(found)


def split_templates(template_ids, intent_name):
    """Seeded choice of ~TEST_FRACTION of an intent's templates for test."""
    n = len(template_ids)
    if n < 2:
        return set()
    n_test = min(n - 1, max(1, round(TEST_FRACTION * n)))
    rng = random.Random(f"{SEED}/split/{intent_name}")
    return set(rng.sample(sorted(template_ids), n_test))


def build_rows():
    dropped = []  # one line per dropped intent, for the summary and README

    candidates = []  # (intent, template index, template id, split, text)
    for intent_name, templates in load_templates().items():
        if len(templates) < 2:
            dropped.append(f"{intent_name} (1 template)")
            continue
        cap = min(MAX_PER_TEMPLATE,
                  max(MIN_PER_TEMPLATE, math.ceil(TARGET_PER_INTENT / len(templates))))
        test_ids = split_templates([t[0] for t in templates], intent_name)
        for index, (template_id, template, sampler) in enumerate(templates):
            split = "test" if template_id in test_ids else "train"
            for text in expand(sampler, template, cap, template_id):
                candidates.append((intent_name, index, template_id, split, text))

    # The same text under two intents has no single right label: drop it.
    intents_of = defaultdict(set)
    for intent_name, _, _, _, text in candidates:
        intents_of[text].add(intent_name)
    ambiguous = {text for text, names in intents_of.items() if len(names) > 1}

    # Keep the first copy (train before test, then template order), so a text
    # in both splits stays in train only.
    candidates.sort(key=lambda c: (c[3] != "train", c[0], c[1], c[4]))
    seen = set()
    rows = []
    for intent_name, index, template_id, split, text in candidates:
        if text in ambiguous or text in seen:
            continue
        seen.add(text)
        rows.append((intent_name, index, template_id, split, text))

    counts = Counter((r[0], r[3]) for r in rows)
    small = sorted({r[0] for r in rows
                    if counts[r[0], "train"] < MIN_TRAIN or counts[r[0], "test"] < MIN_TEST})
    for intent_name in small:
        dropped.append(f"{intent_name} ({counts[intent_name, 'train']} train, "
                       f"{counts[intent_name, 'test']} test sentences)")
    rows = [r for r in rows if r[0] not in small]

    rows.sort(key=lambda r: (r[0], r[1], r[4]))
    return [(text, intent, template_id, split)
            for intent, _, template_id, split, text in rows], dropped, len(ambiguous)


def write_csv(rows, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "intent", "template", "split"])
        writer.writerows(rows)


def write_readme(rows, dropped, n_ambiguous, path):
    versions = {p: metadata.version(p) for p in ("home-assistant-intents", "hassil")}
    licence = metadata.metadata("home-assistant-intents").get("License-Expression")
    split_rows = Counter(r[3] for r in rows)
    split_templates = Counter(split for _, split in {(r[2], r[3]) for r in rows})
    n_intents = len({r[1] for r in rows})
    dropped_list = "".join(f"\n  - {line}" for line in dropped)
    path.write_text(f"""# Benchmark data

<!-- Written by tools/make_intents_dataset.py: change the script, not this file. -->

## home-assistant-intents-en.csv

Labelled English voice-assistant commands for the head-quality benchmark
(`tools/head_quality_reference.py`). Columns: `text,intent,template,split`.

- **Source and licence**: derived from the English sentence templates
  (`home_assistant_intents/data/en.json`) of the Python package
  home-assistant-intents {versions['home-assistant-intents']} by the Home Assistant
  authors, licence {licence} as stated in the package metadata.
- **Generated by** `python3 tools/make_intents_dataset.py` (takes ~2 s), with
  the packages pinned in `tools/bench-requirements.txt`
  (`source scripts/python-bench-env.sh` installs them). Identical byte for
  byte on every run.
- **Expansion**: templates are parsed with hassil {versions['hassil']}. Each is
  expanded to at most N distinct sentences (N = {TARGET_PER_INTENT} / templates of
  the intent, within [{MIN_PER_TEMPLATE}, {MAX_PER_TEMPLATE}]) by a seeded random walk
  over its alternatives, optionals, permutations, lists and number ranges.
  Lists and ranges take their values from en.json. `{{area}}`, `{{floor}}`,
  `{{name}}` and the wildcard slots, which Home Assistant fills from the user's
  devices, take a few fixed values listed in the script (`{{name}}` per the
  entity domain the template's block requires).
- **Split by template**: about {TEST_FRACTION:.0%} of each intent's templates,
  chosen with a fixed seed, give the test rows, so no test sentence comes
  from a template seen in training. `template` is `Intent/index`, in en.json
  order. Duplicate texts are kept once, in train if they occur in both
  splits; texts that occur under two intents are dropped ({n_ambiguous} here).
- **Dropped intents**: those with a single template, fewer than {MIN_TRAIN} train
  or fewer than {MIN_TEST} test sentences:{dropped_list}
- **Counts**: {len(rows)} rows, {n_intents} intents; train {split_rows['train']} rows
  from {split_templates['train']} templates, test {split_rows['test']} rows from
  {split_templates['test']} templates.
""", encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--readme", type=Path, default=None,
                        help="default: README.md next to --out")
    args = parser.parse_args()

    started = time.perf_counter()
    rows, dropped, n_ambiguous = build_rows()
    write_csv(rows, args.out)
    write_readme(rows, dropped, n_ambiguous, args.readme or args.out.parent / "README.md")

    for line in dropped:
        print(f"dropped {line}")
    print(f"dropped {n_ambiguous} texts that occur under several intents")
    per_intent = Counter((r[1], r[3]) for r in rows)
    names = sorted({r[1] for r in rows})
    print(f"{'intent':32} {'train':>6} {'test':>6}")
    for name in names:
        print(f"{name:32} {per_intent[name, 'train']:6} {per_intent[name, 'test']:6}")
    n_train = sum(1 for r in rows if r[3] == "train")
    print(f"{len(names)} intents, {n_train} train, {len(rows) - n_train} test, "
          f"{len(rows)} rows -> {args.out} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
