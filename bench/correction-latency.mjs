// Correction latency: what a person waits for between correcting a
// prediction and seeing the correction honoured, in headless Chromium,
// Firefox and WebKit (`--engines chromium,…` picks), through the Web Worker
// client (bench/correction-latency.html), with 50 and 5,000 stored
// corrections; how long the working head relearns after a correction and
// what a `predict` sent meanwhile waits; and `predict` with 5,000 stored
// against an empty store, paired in alternation. Prints Markdown tables;
// --update-readme writes it into README.md between the correction-latency
// markers.
//
// Run: bash bench/correction-latency.sh   (builds pkg/ and the default bundle first)
import { ENGINE_NAMES, benchEngines, runBenchPage, updateBenchmarks } from './report.mjs';

const engines = benchEngines(['chromium', 'firefox', 'webkit']);
const ms = (x) => x.toFixed(1);
const tables = [];
let trials;
for (const engine of engines) {
  const result = await runBenchPage('bench/correction-latency.html', { engine, timeoutMs: 1_800_000 });
  trials = result.trials;
  const rows = result.conditions.flatMap((c) => [['back to back', c.backToBack], ['each after the last settled', c.settled]].map(([mode, t]) => `\
| ${c.stored.toLocaleString('en')} | ${mode} | ${ms(t.feedback.median)} / ${ms(t.feedback.p95)} \
| **${ms(t.reflected.median)} / ${ms(t.reflected.p95)}** | ${t.maxPredictsUntilReflected} \
| ${ms(c.relearning.median)} / ${ms(c.relearning.p95)} | ${ms(c.predictWhileRelearning.median)} / ${ms(c.predictWhileRelearning.p95)} \
| ${ms(c.predictEmpty.median)} / ${ms(c.predictStored.median)} | ${c.predictRatio.median.toFixed(2)}× (${c.predictRatio.p05.toFixed(2)}–${c.predictRatio.p95.toFixed(2)}) |`));
  tables.push(`${ENGINE_NAMES[engine]} ${result.version}:

| stored corrections | corrections | \`addFeedback\` resolves | correction → reflected prediction | predicts needed | relearning | \`predict\` meanwhile | \`predict\`: empty store / this store (median) | predict ratio, paired |
|---:|---|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}`);
}
const report = `Measured ${new Date().toISOString().slice(0, 10)} by \`bash bench/correction-latency.sh\` (headless, ${engines.map((e) => ENGINE_NAMES[e]).join(', ')}), \
through \`WorkerClassifier\`: ${trials} corrections of each kind (each a test-split sentence not sent before, to a label of the user's own), \
each timed from \`addFeedback\` until \`predict\` of the sentence answers with the new label; times in ms (median / p95). \
*Back to back*: each correction as soon as the one before is predicted, while the working head still learns it (the worst case); \
*each after the last settled*: after \`whenIdle()\`, as when a person reads the answer before correcting the next. \
\`addFeedback\` runs the encoder; the predict after it reuses that vector (the classifier keeps the last 16 texts' vectors, \`RecentVectors::CAPACITY\`). \
*Relearning*: from \`addFeedback\` resolving until \`whenIdle()\` does (the working head has caught up, in slices between the worker's messages); \
*\`predict\` meanwhile*: a sentence not seen before, sent as soon as \`addFeedback\` resolves (${trials} each, apart from the other columns). \
The last two columns: sentences neither worker has seen, on a worker with an empty store and on this one, in alternation; the ratio is the \
median of the per-pair ratios (5th–95th percentile in brackets).

${tables.join('\n\n')}`;
console.log(report);
if (process.argv.includes('--update-readme')) {
  await updateBenchmarks('correction-latency', report, new URL('../README.md', import.meta.url));
}
