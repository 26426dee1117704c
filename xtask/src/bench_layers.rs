//! `cargo xtask bench --groups layers`: where a ViT block's time goes. Each component of
//! one block of the benchmarked model (batch × tokens rows, the shapes of the `vit` and
//! `methods` groups) is timed on its own, forward only (`layer_fwd`) and forward +
//! backward to its input with frozen weights (`layer_fwd_bwd`, loss = sum of the output,
//! as the `vit` group; one element of each result is read back), one JSON line each with `"method"` = the component:
//! `layer_norm`, `qkv`, `attention_core` (softmax(q·kᵀ·scale)·v with the heads merged,
//! gradients to q, k and v), `proj`, `fc1`, `gelu`, `fc2`, and the whole `block`.
//! The PyTorch peer times the same components of a timm block (`--compare` pairs them).

use burn::module::Module;
use burn::tensor::{Distribution, Tensor, activation::gelu, activation::softmax};
use ept_backbones::VitConfig;
use ept_backbones::vit::Block;

use crate::bench::{Run, median_seconds};

/// At least this many timed repetitions: the components take milliseconds.
const MIN_REPS: usize = 10;

/// A tensor of `dims` with standard-normal entries on `device`.
fn normal<const D: usize>(dims: [usize; D], device: &burn::tensor::Device) -> Tensor<D> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
}

/// Read one element of `t` back: waits for the work (lazy backends) without timing a
/// copy of the whole tensor, as PyTorch's `.cpu()` of a CPU tensor copies nothing.
fn touch<const D: usize>(t: Tensor<D>) {
    let _ = t.flatten::<1>(0, D - 1).narrow(0, 0, 1).into_data();
}

/// Time `f` forward only, then forward + backward to each of `inputs`.
fn time_component<const D: usize, const O: usize>(
    run: &Run,
    name: &str,
    inputs: &[Tensor<D>],
    f: impl Fn(&[Tensor<D>]) -> Tensor<O>,
) {
    let reps = run.reps.max(MIN_REPS);
    let seconds = median_seconds(reps, || {
        touch(f(inputs));
    });
    run.report("layer_fwd", Some(name), seconds);
    let seconds = median_seconds(reps, || {
        let tracked: Vec<Tensor<D>> = inputs.iter().map(|x| x.clone().require_grad()).collect();
        let grads = f(&tracked).sum().backward();
        for x in &tracked {
            if let Some(grad) = x.grad(&grads) {
                touch(grad);
            }
        }
    });
    run.report("layer_fwd_bwd", Some(name), seconds);
}

pub(crate) fn layer_benches(run: &Run) -> anyhow::Result<()> {
    let device = run.spec.autodiff_device();
    let config = &run.config;
    // One block of the benchmarked shape, without initialising the other layers.
    let single = VitConfig {
        depth: 1,
        ..config.clone()
    };
    let block: Block = single.init(&device)?.no_grad().blocks.swap_remove(0);
    let (batch, tokens, dim) = (run.args.batch, config.num_tokens(), config.embed_dim);
    let (heads, hidden) = (config.num_heads, config.mlp_hidden());
    let head_dim = dim / heads;

    let x = [normal([batch, tokens, dim], &device)];
    let wide = [normal([batch, tokens, hidden], &device)];
    time_component(run, "layer_norm", &x, |x| block.norm1.forward(x[0].clone()));
    time_component(run, "qkv", &x, |x| block.attn.qkv.forward(x[0].clone()));
    let qkv: Vec<Tensor<4>> = (0..3)
        .map(|_| normal([batch, heads, tokens, head_dim], &device))
        .collect();
    time_component(run, "attention_core", &qkv, |t| {
        let weights = softmax(block.attn.logits(t[0].clone(), t[1].clone()), 3);
        weights
            .matmul(t[2].clone())
            .swap_dims(1, 2)
            .reshape([batch, tokens, dim])
    });
    time_component(run, "proj", &x, |x| block.attn.proj.forward(x[0].clone()));
    time_component(run, "fc1", &x, |x| block.mlp.fc1.forward(x[0].clone()));
    time_component(run, "gelu", &wide, |h| gelu(h[0].clone()));
    time_component(run, "fc2", &wide, |h| block.mlp.fc2.forward(h[0].clone()));
    time_component(run, "block", &x, |x| block.forward(x[0].clone()));
    Ok(())
}
