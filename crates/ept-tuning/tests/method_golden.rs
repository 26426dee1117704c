//! Parity of every tuning method with an independent PyTorch implementation
//! (`tools/golden/make_method_golden.py`, pinned torch/timm): logits, CLS features and
//! the gradient of `sum(logits ⊙ W)` w.r.t. each method parameter, on the tiny ViT.

mod common;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use common::*;
use ept_backend::DeviceSpec;
use ept_tuning::{EmbedWay, EptConfig, MethodConfig, PromptInit, TunedVit};

/// Fixture parameter name → (our module path in PyTorch convention, is a linear weight).
fn our_path(method: &str, name: &str) -> (String, bool) {
    match method {
        "lora" => (format!("lora.{name}.weight"), true),
        "adapter" => {
            let path = name.replace(".adapter.", ".");
            (format!("adapter.{path}"), path.ends_with(".weight"))
        }
        "vp" => (format!("vp.{name}"), false),
        "vpt" => (format!("vpt.{name}"), false),
        _ => (format!("ept.{name}"), false),
    }
}

/// Our gradient for the parameter at `path` (burn layout).
fn grad_of(model: &TunedVit, path: &str, grads: &burn::tensor::Gradients) -> TensorData {
    let g2 = |p: &Param<Tensor<2>>| p.val().grad(grads).expect("gradient").into_data();
    let g3 = |p: &Param<Tensor<3>>| p.val().grad(grads).expect("gradient").into_data();
    let g4 = |p: &Param<Tensor<4>>| p.val().grad(grads).expect("gradient").into_data();
    let g1 = |p: &Param<Tensor<1>>| p.val().grad(grads).expect("gradient").into_data();
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["ept", "prompt"] => g3(&model.ept.as_ref().unwrap().prompt),
        ["vpt", "prompt"] => g3(&model.vpt.as_ref().unwrap().prompt),
        ["vp", pad] => {
            let vp = model.vp.as_ref().unwrap();
            g4(match *pad {
                "pad_up" => &vp.pad_up,
                "pad_down" => &vp.pad_down,
                "pad_left" => &vp.pad_left,
                _ => &vp.pad_right,
            })
        }
        ["lora", "blocks", i, which, ab, "weight"] => {
            let block = &model.lora.as_ref().unwrap().blocks[i.parse::<usize>().unwrap()];
            let pair = if *which == "lora_q" {
                &block.lora_q
            } else {
                &block.lora_v
            };
            g2(&if *ab == "a" { &pair.a } else { &pair.b }.weight)
        }
        ["adapter", "blocks", i, layer, kind] => {
            let block = &model.adapter.as_ref().unwrap().blocks[i.parse::<usize>().unwrap()];
            let linear = if *layer == "down" { &block.down } else { &block.up };
            if *kind == "weight" {
                g2(&linear.weight)
            } else {
                g1(linear.bias.as_ref().unwrap())
            }
        }
        other => panic!("no gradient accessor for {other:?}"),
    }
}

/// Gradient tolerance relative to max(1, max |grad|): the goldens are float64-exact and
/// f32 backends accumulate differently (ndarray reaches 1.8e-4 on the adapter's biases).
const GRAD_TOLERANCE: f32 = 5e-4;

/// Check `method` against its fixture on every compiled-in backend that can run here
/// (CUDA only where built with `--features cuda` and a GPU is present).
fn check(file: &str, method: MethodConfig, family: &str, grad_tolerance: f32) {
    for spec in DeviceSpec::usable_devices() {
        check_on(&spec, file, &method, family, grad_tolerance);
    }
}

fn check_on(spec: &DeviceSpec, file: &str, method: &MethodConfig, family: &str, grad_tolerance: f32) {
    let device = spec.autodiff_device();
    let golden = read(&fixtures().join("methods").join(file));
    let io = read(&fixtures().join("vit_tiny/io.safetensors"));
    let params: Vec<(String, String, bool)> = golden
        .keys()
        .filter(|k| !k.starts_with("grad.") && !["W", "logits", "features"].contains(&k.as_str()))
        .map(|k| {
            let (path, linear) = our_path(family, k);
            (k.clone(), path, linear)
        })
        .collect();
    assert!(!params.is_empty(), "{file}: no parameters in fixture");
    let model = tuned(method, &device);
    let model = apply_pytorch(
        model,
        params
            .iter()
            .map(|(k, path, _)| (path.clone(), golden[k].clone()))
            .collect(),
    );

    let images = Tensor::<4>::from_data(io["input"].clone(), &device);
    let features = model.pre_logits(images.clone());
    let logits = model.head.forward(features.clone());
    let w = Tensor::<2>::from_data(golden["W"].clone(), &device);
    let grads = (logits.clone() * w).sum().backward();

    let dl = max_abs_diff(&logits.into_data(), &golden["logits"]);
    let df = max_abs_diff(&features.into_data(), &golden["features"]);
    assert!(dl < 1e-4, "{spec} {file}: logits differ by {dl}");
    assert!(df < 1e-4, "{spec} {file}: features differ by {df}");
    for (key, path, linear) in &params {
        let ours = grad_of(&model, path, &grads);
        let ours = if *linear { transpose(&ours) } else { ours };
        let want = &golden[&format!("grad.{key}")];
        let scale = max_abs(want).max(1e-12);
        let diff = max_abs_diff(&ours, want);
        assert!(
            diff < grad_tolerance * scale.max(1.0),
            "{spec} {file}: gradient of {key} differs by {diff} (max |grad| {scale})"
        );
    }
}

fn ept(way: EmbedWay, length: usize) -> EptConfig {
    EptConfig {
        length,
        layers: None,
        init: PromptInit::Normal,
        way,
    }
}

#[test]
fn ept_every_way_in_both_forms_matches_pytorch() {
    for (file, way, length) in [
        ("ept_pure_cat.safetensors", EmbedWay::PureCat, 4),
        ("ept_multi_cat.safetensors", EmbedWay::MultiCat, 4),
        ("ept_add.safetensors", EmbedWay::Add, 4),
        ("ept_multi.safetensors", EmbedWay::Multi, 4),
    ] {
        check(file, MethodConfig::Ept(ept(way, length)), "ept", GRAD_TOLERANCE);
        check(
            file,
            MethodConfig::EptReference(ept(way, length)),
            "ept",
            GRAD_TOLERANCE,
        );
    }
}

#[test]
fn ept_fast_form_stays_exact_at_length_1000() {
    // Gradients are ~1e-4 per element here, so they are compared relative to their size.
    let file = "ept_pure_cat_L1000.safetensors";
    let golden = read(&fixtures().join("methods").join(file));
    let scale = max_abs(&golden["grad.prompt"]);
    check(
        file,
        MethodConfig::Ept(ept(EmbedWay::PureCat, 1000)),
        "ept",
        1e-3 * scale,
    );
    check(
        file,
        MethodConfig::EptReference(ept(EmbedWay::PureCat, 1000)),
        "ept",
        1e-3 * scale,
    );
}

#[test]
fn vpt_deep_and_shallow_match_pytorch() {
    check(
        "vpt_deep.safetensors",
        MethodConfig::Vpt {
            length: 3,
            deep: true,
        },
        "vpt",
        GRAD_TOLERANCE,
    );
    check(
        "vpt_shallow.safetensors",
        MethodConfig::Vpt {
            length: 3,
            deep: false,
        },
        "vpt",
        GRAD_TOLERANCE,
    );
}

#[test]
fn lora_matches_pytorch() {
    check(
        "lora.safetensors",
        MethodConfig::Lora {
            rank: 2,
            alpha: Some(4.0),
            dropout: 0.0,
        },
        "lora",
        GRAD_TOLERANCE,
    );
}

#[test]
fn adapter_matches_pytorch() {
    // 48 / 6 = bottleneck 8, as the fixture; scale 0.1; the golden ran in eval mode (no dropout).
    check(
        "adapter.safetensors",
        MethodConfig::Adapter {
            reduction: 6,
            scale: 0.1,
            dropout: 0.0,
        },
        "adapter",
        GRAD_TOLERANCE,
    );
}

#[test]
fn vp_matches_pytorch() {
    check(
        "vp.safetensors",
        MethodConfig::Vp { pad: 4 },
        "vp",
        GRAD_TOLERANCE,
    );
}
