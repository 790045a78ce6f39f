// The measurement of bench/int-kernels/ (one encoder layer's weight
// products, f32 against 12-bit activations × int8 weights), shared by Node
// (bench/int-kernels.mjs) and the page every browser engine runs
// (bench/int-kernels.html): the same rounds, alternating, paired ratios.

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Multiply-adds of one layer's six weight products for `tokens` rows. */
const layerMacs = (tokens) => tokens * (4 * 384 * 384 + 2 * 384 * 1536);

/**
 * Times the module's `layer_f32` and `layer_i16` at 8, 32 and 128 tokens:
 * median ms of each, the paired median of integer ÷ f32, GMAC/s, and how far
 * the two outputs are apart (relative to the largest output).
 */
export async function measureKernels(bytes, now) {
  const { instance } = await WebAssembly.instantiate(bytes, {});
  const k = instance.exports;
  const rows = [];
  for (const tokens of [8, 32, 128]) {
    k.setup(tokens);
    // Both paths into the optimizing tier first.
    for (let i = 0; i < 20; i++) {
      k.layer_f32();
      k.layer_i16();
    }
    const f32 = [];
    const int = [];
    const ratios = [];
    const rounds = tokens === 128 ? 40 : 120;
    for (let i = 0; i < rounds; i++) {
      const t0 = now();
      k.layer_f32();
      const t1 = now();
      k.layer_i16();
      const t2 = now();
      f32.push(t1 - t0);
      int.push(t2 - t1);
      ratios.push((t2 - t1) / (t1 - t0));
    }
    const gmacs = (ms) => layerMacs(tokens) / ms / 1e6;
    rows.push({
      tokens,
      rounds,
      f32: median(f32),
      int: median(int),
      ratio: median(ratios),
      f32Gmacs: gmacs(median(f32)),
      intGmacs: gmacs(median(int)),
      difference: k.relative_difference(),
    });
  }
  return rows;
}
