"""Writes a copy of the encoder's ONNX file whose weight products see their
activations rounded as an integer kernel would round them: what the vectors
of an int8-activation path would be, before anyone writes that kernel
(issue 19, item 2: "integer kernels, decided by measurement").

The model's weights are int8 with one scale per output column
(`MatMul(X, Cast(Q) * s[1, n])`), so a kernel can multiply integers and
scale once per output: Y[m, n] = s_x[m] * s[n] * sum_k xq[m, k] * Q[k, n].
What it must choose is how X becomes xq. Here, as onnxruntime's dynamic
quantization does per tensor but finer: one symmetric scale per row of X
(per token), s_x = max|X[m, :]| / L, xq = round(X / s_x), L = 2^(bits-1) - 1.
Every one of the 36 weight products gets it; attention's two
activation-by-activation products stay f32 (onnxruntime's integer path
leaves them in floating point too).

Which `bits` a kernel can afford: wasm simd128's `i32x4.dot_i16x8_s` takes
16-bit lanes on both sides, so an int8 weight widened to i16 times an
activation of up to 12 bits sums 1,536 products without overflowing i32
(2047 * 127 * 1536 < 2^31); relaxed SIMD's 8-bit dot product takes 7-bit
activations (its i7 operand).

    python tools/int8_activations_model.py models/all-minilm-l6-v2-int8/model.onnx OUT.onnx --bits 8

Then `cargo bench --bench head_quality -- --encoder-variant NAME OUT.onnx`
compares its vectors and the head-quality benchmark with the shipped
encoder's. Needs the `onnx` package (tools/bench-requirements.txt).
"""

import argparse

import onnx
from onnx import TensorProto, helper


def weight_products(graph):
    """MatMul nodes whose second input is Mul(Cast(int8 initializer), scale)."""
    initializers = {t.name for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    found = []
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        mul = producer.get(node.input[1])
        if mul is None or mul.op_type != "Mul":
            continue
        cast = next(
            (producer[i] for i in mul.input if i in producer and producer[i].op_type == "Cast"),
            None,
        )
        if cast is not None and cast.input[0] in initializers:
            found.append(node)
    return found


def round_activations(model, bits):
    graph = model.graph
    levels = float(2 ** (bits - 1) - 1)
    constant = lambda name, value: helper.make_tensor(name, TensorProto.FLOAT, [], [value])
    graph.initializer.extend(
        [constant("q_levels", levels), constant("q_tiny", 1e-30)]
    )
    products = weight_products(graph)
    new_nodes = []
    for node in graph.node:
        if node in products:
            x = node.input[0]
            p = f"q_{node.name}"
            new_nodes += [
                helper.make_node("Abs", [x], [f"{p}_abs"]),
                helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_max"], axes=[-1], keepdims=1),
                helper.make_node("Max", [f"{p}_max", "q_tiny"], [f"{p}_maxpos"]),
                helper.make_node("Div", [f"{p}_maxpos", "q_levels"], [f"{p}_scale"]),
                helper.make_node("Div", [x, f"{p}_scale"], [f"{p}_scaled"]),
                helper.make_node("Round", [f"{p}_scaled"], [f"{p}_int"]),
                helper.make_node("Mul", [f"{p}_int", f"{p}_scale"], [f"{p}_x"]),
            ]
            node.input[0] = f"{p}_x"
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return len(products)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--bits", type=int, default=8, help="bits of a rounded activation, sign included (2-16)")
    args = parser.parse_args()
    if not 2 <= args.bits <= 16:
        parser.error("--bits must be 2-16")
    model = onnx.load(args.model)
    count = round_activations(model, args.bits)
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    print(f"{args.out}: activations of {count} weight products rounded to {args.bits} bits per row")


if __name__ == "__main__":
    main()
