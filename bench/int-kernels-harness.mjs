// The measurement of bench/int-kernels/ (one encoder layer's weight
// products, f32 against 12-bit activations × int8 weights), shared by Node
// (bench/int-kernels.mjs) and the page every browser engine runs
// (bench/int-kernels.html): the same rounds, alternating, paired ratios.

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Multiply-adds of one layer's six weight products for `tokens` rows. */
const layerMacs = (tokens) => tokens * (4 * 384 * 384 + 2 * 384 * 1536);

/**
 * Times the module's `layer_f32`, `layer_i16` and `layer_i8` (integer, the
 * weights as i16 or int8 in memory) at 8, 32 and 128 tokens, in turn: median
 * ms of each, the paired medians of each integer one ÷ f32, GMAC/s, and how
 * far the outputs are apart (relative to the largest output).
 */
export async function measureKernels(bytes, now) {
  const { instance } = await WebAssembly.instantiate(bytes, {});
  const k = instance.exports;
  const rows = [];
  for (const tokens of [8, 32, 128]) {
    k.setup(tokens);
    // Every path into the optimizing tier first.
    for (let i = 0; i < 20; i++) {
      k.layer_f32();
      k.layer_i16();
      k.layer_i8();
    }
    const times = { f32: [], i16: [], i8: [] };
    const ratios = { i16: [], i8: [] };
    const rounds = tokens === 128 ? 40 : 120;
    for (let i = 0; i < rounds; i++) {
      const t0 = now();
      k.layer_f32();
      const t1 = now();
      k.layer_i16();
      const t2 = now();
      k.layer_i8();
      const t3 = now();
      times.f32.push(t1 - t0);
      times.i16.push(t2 - t1);
      times.i8.push(t3 - t2);
      ratios.i16.push((t2 - t1) / (t1 - t0));
      ratios.i8.push((t3 - t2) / (t1 - t0));
    }
    const gmacs = (ms) => layerMacs(tokens) / ms / 1e6;
    rows.push({
      tokens,
      rounds,
      ms: { f32: median(times.f32), i16: median(times.i16), i8: median(times.i8) },
      ratio: { i16: median(ratios.i16), i8: median(ratios.i8) },
      gmacs: { f32: gmacs(median(times.f32)), i16: gmacs(median(times.i16)), i8: gmacs(median(times.i8)) },
      difference: k.relative_difference(),
    });
  }
  return rows;
}
