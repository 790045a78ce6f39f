//! Keeps the encoder's tensors in the layout tract's fast element-wise
//! kernels require.
//!
//! tract 0.23.9 runs a reshape that only adds unit axes — `[tokens, 384]` back
//! to `[1, tokens, 384]` after each matrix product, whenever the batch holds
//! one text — as `insert_axis`, which gives the new axis the stride of the
//! next one (`[384, 384, 1]` where the natural strides are `[3840, 384, 1]`).
//! The data is the same contiguous block, but tract's SIMD element-wise ops
//! (`OptBinUnicast`, `OptBinByScalar`, `OptBinChain`: the residual additions,
//! layer norm, GELU) compare strides with the natural ones and, on any
//! difference, fall back to their generic broadcasting loop — a fifth of a
//! 128-token sentence in wasm.
//!
//! [`hand_on_natural_strides`] wraps each reshape of the optimised graph in
//! [`NaturalAxisOp`], which runs it and then restates the strides of the
//! result (metadata only: the data is neither moved nor copied).

use tract_nnef::prelude::*;
use tract_nnef::tract_core::internal::*;
use tract_nnef::tract_core::ops::change_axes::AxisOp;

/// An [`AxisOp`] whose output always carries the natural strides of its shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NaturalAxisOp(pub AxisOp);

impl Op for NaturalAxisOp {
    fn name(&self) -> StaticName {
        self.0.name()
    }

    op_as_typed_op!();
}

impl EvalOp for NaturalAxisOp {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut outputs = self.0.eval(ctx, inputs)?;
        for output in outputs.iter_mut() {
            if !has_natural_strides(output) {
                // The op's output is its own input tensor, uniquely held:
                // taking it out of the value does not copy it.
                let mut tensor =
                    std::mem::replace(output, Tensor::default().into_tvalue()).into_tensor();
                restate_natural_strides(&mut tensor)?;
                *output = tensor.into_tvalue();
            }
        }
        Ok(outputs)
    }

    fn forwards_input(&self) -> Option<usize> {
        self.0.forwards_input()
    }
}

impl TypedOp for NaturalAxisOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

fn has_natural_strides(tensor: &Tensor) -> bool {
    tensor.strides() == &*Tensor::natural_strides(tensor.shape())
}

/// Recomputes `tensor`'s strides from its shape. Only for a tensor whose
/// elements are stored contiguously in row-major order, as every reshape's
/// output is (a unit axis has no extent to be laid out along).
fn restate_natural_strides(tensor: &mut Tensor) -> TractResult<()> {
    let shape: TVec<usize> = tensor.shape().into();
    // `set_shape` recomputes the strides only when the shape changes.
    tensor.set_shape(&[tensor.len()])?;
    tensor.set_shape(&shape)
}

/// Wraps every reshape and unit-axis insertion of an optimised model in
/// [`NaturalAxisOp`]. Run after `optimize()`:
/// the wrapper is for evaluation only, and would hide the reshapes from
/// tract's graph rewrites.
pub fn hand_on_natural_strides(model: &mut TypedModel) {
    for node in model.nodes.iter_mut() {
        let Some(axis_op) = node.op.downcast_ref::<AxisOp>() else {
            continue;
        };
        if matches!(axis_op, AxisOp::Add(_) | AxisOp::Reshape(..)) {
            node.op = Box::new(NaturalAxisOp(axis_op.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_axis_insertion_hands_on_natural_strides() {
        let tensor =
            Tensor::from_shape(&[3, 4], &(0..12).map(|x| x as f32).collect::<Vec<_>>()).unwrap();
        // What tract does on its own: the stride of the next axis.
        let mut plain = tensor.clone();
        AxisOp::Add(0).change_tensor(&mut plain, false).unwrap();
        assert_eq!(plain.strides(), &[4, 4, 1]);

        let op = NaturalAxisOp(AxisOp::Add(0));
        let out = op
            .eval(&EvalContext::out_of_plan(), tvec!(tensor.into_tvalue()))
            .unwrap();
        assert_eq!(out[0].shape(), &[1, 3, 4]);
        assert_eq!(out[0].strides(), &[12, 4, 1]);
        let view = out[0].try_as_plain_ram().unwrap();
        let values = view.as_slice::<f32>().unwrap();
        assert_eq!(
            values,
            (0..12).map(|x| x as f32).collect::<Vec<_>>().as_slice()
        );
    }
}
