// The parity fixture (tests/fixtures/parity.json: onnxruntime's embeddings
// of 35 varied texts) and its check, shared by the Node and Chromium tests.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

export const fixture = JSON.parse(await readFile(new URL('../fixtures/parity.json', import.meta.url)));

/** The fixture's texts, long ones expanded. */
export const fixtureTexts = () => fixture.cases.map((c) => (typeof c.text === 'string' ? c.text : c.text.repeat.repeat(c.text.times)));

/**
 * Asserts cosine ≥ 0.9999 and max abs diff ≤ 0.003 for every text; `flat`
 * holds the texts' vectors in order. (The bounds of tests/common/mod.rs:
 * the integer weight products move a component by up to 0.0016.)
 */
export function assertMatchesOnnxruntime(flat, which = 'tract') {
  assert.equal(flat.length, fixture.cases.length * 384);
  fixture.cases.forEach((c, i) => {
    let dot = 0, na = 0, nb = 0, maxDiff = 0;
    for (let k = 0; k < 384; k++) {
      const got = flat[i * 384 + k];
      dot += got * c.embedding[k];
      na += got ** 2;
      nb += c.embedding[k] ** 2;
      maxDiff = Math.max(maxDiff, Math.abs(got - c.embedding[k]));
    }
    const cos = dot / Math.sqrt(na * nb);
    assert.ok(cos >= 0.9999 && maxDiff <= 3e-3, `${which}, ${c.label}: cosine ${cos}, max diff ${maxDiff}`);
  });
}
