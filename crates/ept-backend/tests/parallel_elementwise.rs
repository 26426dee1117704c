//! The vendored burn-flex patch (vendor/README.md) runs large element-wise kernels on
//! several threads. Results must be bit-identical to the single-threaded path: each
//! large tensor's result is compared with the same op applied to small slices of it,
//! which stay below the parallel threshold and run on the calling thread.

use burn::tensor::activation::gelu;
use burn::tensor::{Device, Distribution, Tensor};
use ept_backend::DeviceSpec;

/// Columns of the test tensors: 40 rows of this are far above the parallel threshold
/// (65,536 elements), one row far below it.
const COLS: usize = 4099;
const ROWS: usize = 40;

fn device() -> Device {
    // Several workers even on a one-core machine, so the chunked path really runs.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(4).build_global();
    "flex".parse::<DeviceSpec>().unwrap().device()
}

fn random(device: &Device, dims: [usize; 2]) -> Tensor<2> {
    Tensor::random(dims, Distribution::Normal(0.0, 2.0), device)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `op` on the whole tensor equals `op` row by row, bit for bit; `op` also gets the
/// index of the first row it is given.
fn same_as_row_by_row(name: &str, x: Tensor<2>, op: impl Fn(Tensor<2>, usize) -> Tensor<2>) {
    let whole = values(op(x.clone(), 0));
    let rows: Vec<f32> = (0..ROWS)
        .flat_map(|r| values(op(x.clone().narrow(0, r, 1), r)))
        .collect();
    assert_eq!(whole.len(), rows.len(), "{name}: length");
    let differing = whole
        .iter()
        .zip(&rows)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differing, 0,
        "{name}: {differing} elements differ from the sequential path"
    );
}

#[test]
fn large_elementwise_kernels_match_the_sequential_path_bit_for_bit() {
    let device = device();
    let x = random(&device, [ROWS, COLS]);
    let y = random(&device, [ROWS, COLS]);
    let bias = random(&device, [1, COLS]);

    // unary_op (in place and allocating), scalar_op, the erf-based GELU.
    same_as_row_by_row("exp", x.clone(), |t, _| t.exp());
    same_as_row_by_row("gelu", x.clone(), |t, _| gelu(t));
    same_as_row_by_row("mul_scalar", x.clone(), |t, _| t.mul_scalar(0.125));
    // binary_op with both operands dense (no SIMD hint: max_pair), in either operand.
    same_as_row_by_row("max_pair", x.clone(), |t, first| {
        let other = y.clone().narrow(0, first, t.dims()[0]);
        t.max_pair(other)
    });
    // Broadcast nests: in place into a unique operand, and allocating (shared operand).
    // (`x` itself stays alive, so `exp` makes the unique operand written in place.)
    same_as_row_by_row("bias add, in place", x.clone(), |t, _| t.exp() + bias.clone());
    same_as_row_by_row("bias sub, shared lhs", x.clone(), |t, _| {
        let kept = t.clone();
        let out = t - bias.clone();
        drop(kept);
        out
    });
    // A transposed (non-contiguous) operand goes through the general nest.
    let square = random(&device, [512, 512]);
    let whole = values(square.clone() + square.clone().transpose());
    let host = values(square);
    for (i, value) in whole.iter().enumerate() {
        let (r, c) = (i / 512, i % 512);
        assert_eq!(value.to_bits(), (host[r * 512 + c] + host[c * 512 + r]).to_bits());
    }
}

/// `op` on a strided view equals `op` on a contiguous copy of it, bit for bit.
fn same_as_contiguous_copy<const D: usize>(name: &str, view: Tensor<D>, op: impl Fn(Tensor<D>) -> Tensor<D>) {
    let copy = Tensor::<D>::from_data(view.clone().into_data(), &view.device());
    let strided = op(view).into_data().to_vec::<f32>().unwrap();
    let contiguous = op(copy).into_data().to_vec::<f32>().unwrap();
    assert_eq!(strided.len(), contiguous.len(), "{name}: length");
    let same = strided
        .iter()
        .zip(&contiguous)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "{name}: differs from the contiguous copy");
}

/// The strided paths of `scalar_op` and `unary_op` (a view that is neither contiguous nor
/// the whole buffer: runs of contiguous elements, filled in parallel).
#[test]
fn strided_views_match_their_contiguous_copies_bit_for_bit() {
    let device = device();
    // Column window: 40 runs of 2000 elements.
    let window = random(&device, [ROWS, COLS]).narrow(1, 3, 2000);
    same_as_contiguous_copy("window mul_scalar", window.clone(), |t| t.mul_scalar(0.125));
    same_as_contiguous_copy("window exp", window, |t| t.exp());
    // Attention's q: a head view of the fused qkv projection, runs of 64 elements.
    let q = Tensor::<3>::random([8, 197, 3 * 12 * 64], Distribution::Normal(0.0, 2.0), &device)
        .reshape([8, 197, 36, 64])
        .swap_dims(1, 2)
        .narrow(1, 0, 12);
    same_as_contiguous_copy("head view mul_scalar", q.clone(), |t| t.mul_scalar(0.125));
    same_as_contiguous_copy("head view exp", q, |t| t.exp());
}
