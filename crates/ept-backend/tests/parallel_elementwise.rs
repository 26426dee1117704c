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
    let strided = op(view).into_data().try_to_vec::<f32>().unwrap();
    let contiguous = op(copy).into_data().try_to_vec::<f32>().unwrap();
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

/// The memory passes the burn-flex patch spreads over threads — zero-filled buffers,
/// `slice_assign`'s span writes, `cat` along an inner dimension, the row kernels of
/// softmax and layer norm — give exactly what a host loop (or the row-by-row sequential
/// path) gives, for plain, stepped and reversed slices.
#[test]
fn parallel_memory_passes_match_host_loops() {
    use burn::tensor::{activation::softmax, module::layer_norm, s};
    let device = device();
    let host = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();

    let zeros = Tensor::<3>::zeros([4, 300, 200], &device);
    assert!(host(zeros.clone()).iter().all(|&v| v.to_bits() == 0));

    // slice_assign: rows 50..250 reversed, every other column from 10, into zeros.
    let values = Tensor::<3>::random([4, 200, 90], Distribution::Normal(0.0, 1.0), &device);
    let written = host(zeros.slice_assign(s![.., 50..250;-1, 10..190;2], values.clone()));
    let values = host(values);
    let mut expected = vec![0f32; 4 * 300 * 200];
    for b in 0..4 {
        for r in 0..200 {
            for c in 0..90 {
                let (row, col) = (249 - r, 10 + 2 * c);
                expected[(b * 300 + row) * 200 + col] = values[(b * 200 + r) * 90 + c];
            }
        }
    }
    assert_eq!(
        written, expected,
        "slice_assign with reversed rows and stepped columns"
    );
    // Spans of whole rows (the q/k/v gradient scatter of attention's slice backward).
    let grad = Tensor::<3>::random([8, 12, 640], Distribution::Normal(0.0, 1.0), &device);
    let scattered =
        host(Tensor::<3>::zeros([8, 36, 640], &device).slice_assign(s![.., 12..24, ..], grad.clone()));
    let grad = host(grad);
    for (i, &v) in scattered.iter().enumerate() {
        let (b, h, c) = (i / (36 * 640), i / 640 % 36, i % 640);
        let want = if (12..24).contains(&h) {
            grad[(b * 12 + h - 12) * 640 + c]
        } else {
            0.0
        };
        assert_eq!(v.to_bits(), want.to_bits(), "head scatter at {b},{h},{c}");
    }

    // cat along the middle dimension (EPT's sink column before the logits).
    let parts: Vec<Tensor<3>> = [1usize, 197, 30]
        .iter()
        .map(|&w| Tensor::<3>::random([96, w, 197], Distribution::Normal(0.0, 1.0), &device))
        .collect();
    let joined = host(Tensor::cat(parts.clone(), 1));
    let parts: Vec<Vec<f32>> = parts.into_iter().map(host).collect();
    let mut expected = Vec::with_capacity(joined.len());
    for b in 0..96 {
        for (part, w) in parts.iter().zip([1usize, 197, 30]) {
            expected.extend_from_slice(&part[b * w * 197..(b + 1) * w * 197]);
        }
    }
    assert_eq!(joined, expected, "cat along dim 1");

    // Row kernels writing into freshly zeroed blocks: whole tensor vs one row at a time.
    let x = random(&device, [ROWS, COLS]);
    same_as_row_by_row("softmax", x.clone(), |t, _| softmax(t, 1));
    let gamma = Tensor::<1>::random([COLS], Distribution::Normal(1.0, 0.1), &device);
    let beta = Tensor::<1>::random([COLS], Distribution::Normal(0.0, 0.1), &device);
    same_as_row_by_row("layer_norm", x, |t, _| {
        layer_norm(t, gamma.clone(), Some(beta.clone()), 1e-6)
    });
}
