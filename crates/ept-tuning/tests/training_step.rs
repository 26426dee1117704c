//! For every method: one SGD step (momentum, weight decay — the paper's optimizer)
//! changes only that method's parameters and the head, and leaves every frozen tensor
//! bit-identical. Also: parameter accounting for ViT-B/16 and method-only checkpoints.

mod common;

use std::collections::BTreeMap;

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig};
use burn::tensor::{Int, Tensor, TensorData, loss::cross_entropy_with_logits};
use burn_store::{ModuleSnapshot, bridge};
use common::*;
use ept_backbones::VitConfig;
use ept_backend::DeviceSpec;
use ept_tuning::checkpoint::{load_method, read_method_meta, save_method};
use ept_tuning::{EptConfig, MethodConfig, TunedVit};

/// Every method, sized for the tiny ViT (width 48, 2 blocks, 32 px).
fn tiny_methods() -> Vec<MethodConfig> {
    vec![
        MethodConfig::Full,
        MethodConfig::Linear,
        MethodConfig::Partial { blocks: 1 },
        MethodConfig::Mlp3,
        MethodConfig::Bitfit,
        MethodConfig::Lora {
            rank: 2,
            alpha: None,
            dropout: 0.1,
        },
        MethodConfig::Adapter {
            reduction: 6,
            scale: 0.1,
            dropout: 0.1,
        },
        MethodConfig::Vp { pad: 4 },
        MethodConfig::Vpt {
            length: 3,
            deep: true,
        },
        MethodConfig::Vpt {
            length: 3,
            deep: false,
        },
        MethodConfig::Ept(EptConfig {
            length: 4,
            ..EptConfig::default()
        }),
        MethodConfig::EptReference(EptConfig {
            length: 4,
            layers: Some(vec![1]),
            ..EptConfig::default()
        }),
    ]
}

fn snapshot(model: &TunedVit) -> BTreeMap<String, TensorData> {
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), bridge::into_data(t).unwrap()))
        .collect()
}

/// The tiny fixture's two images with labels 1 and 3, on the default autodiff device.
fn tiny_batch() -> (burn::tensor::Device, Tensor<4>, Tensor<1, Int>) {
    let device = DeviceSpec::default().autodiff_device();
    let io = read(&fixtures().join("vit_tiny/io.safetensors"));
    let images = Tensor::<4>::from_data(io["input"].clone(), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 3], [2]), &device);
    (device, images, labels)
}

/// Gradients of the cross-entropy of `logits` against `labels` (5 classes).
fn loss_gradients(model: &TunedVit, logits: Tensor<2>, labels: &Tensor<1, Int>) -> GradientsParams {
    let loss = cross_entropy_with_logits(logits, labels.clone().one_hot(5).float());
    GradientsParams::from_grads(loss.backward(), model)
}

fn sgd_step(model: TunedVit, images: &Tensor<4>, labels: &Tensor<1, Int>) -> TunedVit {
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9)))
        .with_weight_decay(Some(WeightDecayConfig::new(1e-4)))
        .init();
    let grads = loss_gradients(&model, model.forward(images.clone()), labels);
    optim.step(0.5, model, grads)
}

#[test]
fn one_step_changes_only_method_parameters_and_head() {
    let (device, images, labels) = tiny_batch();
    for method in tiny_methods() {
        let model = tuned(&method, &device);
        let before = snapshot(&model);
        let trainable: Vec<bool> = before.keys().map(|k| model.is_trainable(k)).collect();
        let after = snapshot(&sgd_step(model, &images, &labels));
        let mut changed_groups = std::collections::BTreeSet::new();
        for ((name, old), trains) in before.iter().zip(trainable) {
            let new = &after[name];
            let same = old.as_bytes() == new.as_bytes();
            if trains {
                if !same {
                    changed_groups.insert(name.split('.').next().unwrap().to_string());
                }
            } else {
                assert!(same, "{}: frozen tensor {name} changed", method.name());
            }
        }
        // The head trains for every method; method tensors (or unfrozen backbone parts) too.
        assert!(
            changed_groups.contains("head"),
            "{}: head did not change",
            method.name()
        );
        let expected_group = match &method {
            MethodConfig::Linear | MethodConfig::Mlp3 => "head",
            MethodConfig::Full | MethodConfig::Partial { .. } | MethodConfig::Bitfit => "backbone",
            other => match other.name() {
                "ept_reference" => "ept",
                name => name,
            },
        };
        // LoRA's B and the adapter's `up` start at zero, so in the first step only they move.
        assert!(
            changed_groups.contains(expected_group),
            "{}: no {expected_group} tensor changed ({changed_groups:?})",
            method.name()
        );
    }
}

/// One plain SGD step (lr 1, so parameters move by exactly their gradient) from the
/// logits that `logits_of` computes.
fn plain_step(
    model: TunedVit,
    images: &Tensor<4>,
    labels: &Tensor<1, Int>,
    logits_of: impl Fn(&TunedVit, Tensor<4>) -> Tensor<2>,
) -> BTreeMap<String, TensorData> {
    let grads = loss_gradients(&model, logits_of(&model, images.clone()), labels);
    snapshot(&SgdConfig::new().init().step(1.0, model, grads))
}

#[test]
fn cls_only_last_block_trains_exactly_like_the_full_forward() {
    // `TunedVit::forward` runs the last block on the CLS row alone; every method's
    // gradients (backbone ones included: Full, Partial, BitFit) must equal those of the
    // forward that computes every token and then takes the CLS row.
    let (device, images, labels) = tiny_batch();
    for method in tiny_methods() {
        let method = match method {
            // Dropout draws differ between the two forwards; switch it off.
            MethodConfig::Lora { rank, alpha, .. } => MethodConfig::Lora {
                rank,
                alpha,
                dropout: 0.0,
            },
            MethodConfig::Adapter { reduction, scale, .. } => MethodConfig::Adapter {
                reduction,
                scale,
                dropout: 0.0,
            },
            other => other,
        };
        let model = tuned(&method, &device); // one random init for both forwards
        let cls_only = plain_step(model.clone(), &images, &labels, |m, x| m.forward(x));
        let full = plain_step(model, &images, &labels, |m, x| {
            m.head
                .forward(ept_backbones::Vit::pre_logits(m.forward_features(x)))
        });
        for (name, want) in &full {
            let (a, b) = (
                cls_only[name].try_to_vec::<f32>().unwrap(),
                want.try_to_vec::<f32>().unwrap(),
            );
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
                .fold(0.0, f32::max);
            assert!(
                worst < 1e-5,
                "{}: {name} differs by {worst} after one step",
                method.name()
            );
        }
    }
}

#[test]
fn vit_b16_trainable_parameters_per_method() {
    let device = DeviceSpec::default().device();
    let config = VitConfig::from_name("vit_base_patch16_224").unwrap();
    let count = |method: &MethodConfig| {
        let model = TunedVit::new(config.init(&device).unwrap(), method, 2, &device).unwrap();
        model.param_count()
    };
    let head = 768 * 2 + 2;
    let backbone = 86_567_656 - 769_000; // timm ViT-B/16 without its 1000-class head
    assert_eq!(count(&MethodConfig::Linear).trainable, head);
    assert_eq!(count(&MethodConfig::Linear).total(), backbone + head);
    assert_eq!(count(&MethodConfig::Full).trainable, backbone + head);
    // EPT, L = 100, 12 layers, 197 tokens: 236,400 prompt parameters + head (issue/paper).
    let ept = count(&MethodConfig::Ept(EptConfig::default()));
    assert_eq!(ept.trainable, 236_400 + head);
    // VPT deep, 10 tokens x 768 x 12 layers.
    assert_eq!(
        count(&MethodConfig::Vpt {
            length: 10,
            deep: true
        })
        .trainable,
        92_160 + head
    );
    // LoRA r = 8 on q and v: 12 x 2 x (768·8 + 8·768).
    let lora = count(&MethodConfig::Lora {
        rank: 8,
        alpha: None,
        dropout: 0.0,
    });
    assert_eq!(lora.trainable, 12 * 2 * 2 * 768 * 8 + head);
    // Partial-1: the last block (7,087,872) + final norm (1,536) + head.
    assert_eq!(
        count(&MethodConfig::Partial { blocks: 1 }).trainable,
        7_087_872 + 1_536 + head
    );
}

#[test]
fn method_checkpoint_round_trips_and_refuses_another_backbone() {
    let device = DeviceSpec::default().autodiff_device();
    let io = read(&fixtures().join("vit_tiny/io.safetensors"));
    let images = Tensor::<4>::from_data(io["input"].clone(), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 4], [2]), &device);
    let dir = std::env::temp_dir().join(format!("ept-method-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for method in tiny_methods() {
        let trained = sgd_step(tuned(&method, &device), &images, &labels);
        let path = dir.join(format!("{}.safetensors", method.name()));
        let bytes = save_method(&trained, "vit_golden_tiny", &path).unwrap();
        let trainable = trained.param_count().trainable;
        assert!(
            bytes as usize >= 4 * trainable,
            "{}: file too small",
            method.name()
        );
        assert!(
            bytes as usize <= 4 * trainable + 64 * 1024,
            "{}: file holds more than the method",
            method.name()
        );

        let meta = read_method_meta(&path).unwrap();
        assert_eq!(meta.method, method);
        let fresh = tuned(&method, &device);
        let (loaded, _) = load_method(fresh, "vit_golden_tiny", &path).unwrap();
        // Compare in validation mode (no dropout, no autodiff).
        let plain_images = Tensor::<4>::from_data(io["input"].clone(), &DeviceSpec::default().device());
        let want = trained.valid().forward(plain_images.clone()).into_data();
        let got = loaded.valid().forward(plain_images).into_data();
        assert_eq!(max_abs_diff(&want, &got), 0.0, "{}", method.name());
        assert_eq!(loaded.param_count(), trained.param_count());
    }
    // A prompt made for 32-px images (17 tokens) refuses a 48-px backbone (37 tokens).
    let method = MethodConfig::Ept(EptConfig {
        length: 4,
        ..EptConfig::default()
    });
    let path = dir.join("ept.safetensors");
    let vit48 = tiny_config().with_img_size(48).init(&device).unwrap();
    let other = TunedVit::new(vit48, &method, 5, &device).unwrap();
    let err = load_method(other, "vit_golden_tiny", &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("17 tokens") && err.contains("37 tokens"), "{err}");
    let err = load_method(tuned(&method, &device), "vit_base_patch16_224", &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("vit_base_patch16_224"), "{err}");
    // Another method's file names both methods as their config tables read.
    let err = load_method(tuned(&MethodConfig::Linear, &device), "vit_golden_tiny", &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds method { ") && err.contains("method = \"ept\"") && err.contains("length = 4"),
        "{err}"
    );
    assert!(err.contains("{ method = \"linear\" }"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
