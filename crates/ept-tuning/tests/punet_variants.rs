//! PUNet adaptation variants: trainable-parameter counts at the reference size, and one
//! optimizer step (AdamW with weight decay, the reference's optimizer) in `prompting`
//! mode changes only the new class's prompt tensors — every body tensor, every other
//! class's prompts and the BatchNorm statistics stay bit-identical.

use std::collections::BTreeMap;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use burn_store::{ModuleSnapshot, bridge};
use ept_backbones::unet::{PunetConfig, WindowLayout};
use ept_tuning::{SegMethodConfig, TunedPunet};

fn tuned(config: &PunetConfig, method: &SegMethodConfig, classes: Vec<usize>, device: &Device) -> TunedPunet {
    let config = PunetConfig {
        head: method.head(),
        fixed_outputs: classes.len() + 1,
        ..config.clone()
    };
    TunedPunet::new(config.init(device).unwrap(), method, classes, device).unwrap()
}

#[test]
fn trainable_counts_at_the_reference_size() {
    let device = Device::flex();
    let reference = PunetConfig::reference_2d();
    let body_biases = 15_392; // the reference's name rule gives 15,488 (+ the stem's 96 BN scales)
    let cases = [
        (SegMethodConfig::Prompting, 57_344),
        (SegMethodConfig::BiasPrompting, 57_344 + body_biases),
        (SegMethodConfig::Ept { length: 16 }, 57_344 + 18 * 64 * 16),
        (SegMethodConfig::Fixed, 130),
        (SegMethodConfig::Decoder, 2_948_642),
        (SegMethodConfig::Bias, body_biases + 130),
        (SegMethodConfig::Adapter { reduction: 4 }, 325_026),
    ];
    for (method, expected) in cases {
        let model = tuned(&reference, &method, vec![3], &device);
        let count = model.param_count();
        assert_eq!(count.trainable, expected, "{}", method.name());
    }
    let full = tuned(&reference, &SegMethodConfig::Full, vec![3], &device).param_count();
    assert_eq!((full.trainable, full.frozen), (7_290_272, 0));
}

fn small() -> PunetConfig {
    PunetConfig {
        channels: vec![8, 16, 16],
        heads: 2,
        window: Some([4, 4, 1]),
        window_layout: WindowLayout::Contiguous,
        tokens_per_class: 3,
        class_slots: 5,
        ..PunetConfig::default()
    }
}

fn snapshot(model: &TunedPunet) -> BTreeMap<String, TensorData> {
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), bridge::into_data(t).unwrap()))
        .collect()
}

fn one_step(model: TunedPunet, device: &Device) -> TunedPunet {
    let images = Tensor::<5>::random([2, 1, 24, 20, 1], Distribution::Normal(0.0, 1.0), device);
    let labels: Vec<i64> = (0..2 * 24 * 20).map(|i| ((i / 7) % 2) as i64).collect();
    let labels = Tensor::<4, Int>::from_data(TensorData::new(labels, [2, 24, 20, 1]), device);
    let logits = model.forward(images);
    let loss = voxel_cross_entropy(logits, labels);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = AdamWConfig::new().with_weight_decay(1e-2).init();
    optim.step(1e-2, model, grads)
}

/// Cross-entropy over the class axis (the loss itself is tested in ept-train).
fn voxel_cross_entropy(logits: Tensor<5>, labels: Tensor<4, Int>) -> Tensor<1> {
    let [b, k, x, y, z] = logits.dims();
    let flat = logits.permute([0, 2, 3, 4, 1]).reshape([b * x * y * z, k]);
    let target = labels.reshape([b * x * y * z]).one_hot::<2>(k).float();
    burn::tensor::loss::cross_entropy_with_logits(flat, target)
}

#[test]
fn prompting_step_changes_only_the_new_class_prompts() {
    let device = Device::flex().autodiff();
    let model = tuned(&small(), &SegMethodConfig::Prompting, vec![3], &device);
    let before = snapshot(&model);
    let after = snapshot(&one_step(model, &device));
    let mut changed = Vec::new();
    for (name, old) in &before {
        if old.as_bytes() != after[name].as_bytes() {
            changed.push(name.clone());
        }
    }
    assert!(!changed.is_empty());
    for name in &changed {
        let class_slot = name.ends_with(".slots.3");
        let shared_bias_head = name.contains(".prompts.bias.") && name.ends_with(".weights");
        assert!(class_slot || shared_bias_head, "{name} changed in prompting mode");
    }
    // every prompt tensor of class 3 trained: 2 pools + 2 biases per SIA block (5 blocks) + the head pool
    let slots = changed.iter().filter(|n| n.ends_with(".slots.3")).count();
    assert_eq!(slots, 5 * 4 + 1, "{changed:#?}");
}

#[test]
fn every_variant_trains_and_runs() {
    let device = Device::flex().autodiff();
    for method in [
        SegMethodConfig::Full,
        SegMethodConfig::Fixed,
        SegMethodConfig::Decoder,
        SegMethodConfig::Bias,
        SegMethodConfig::BiasPrompting,
        SegMethodConfig::Adapter { reduction: 4 },
        SegMethodConfig::Ept { length: 4 },
    ] {
        let model = tuned(&small(), &method, vec![2], &device);
        let trainable: Vec<(String, bool)> = snapshot(&model)
            .keys()
            .map(|k| (k.clone(), model.is_trainable(k)))
            .collect();
        let before = snapshot(&model);
        let after = snapshot(&one_step(model, &device));
        for (name, trains) in trainable {
            let same = before[&name].as_bytes() == after[&name].as_bytes();
            if !trains {
                assert!(same, "{}: frozen {name} changed", method.name());
            }
        }
        assert!(
            before.iter().any(|(n, t)| t.as_bytes() != after[n].as_bytes()),
            "{}",
            method.name()
        );
    }
}

#[test]
fn mismatched_head_and_classes_are_errors() {
    let device = Device::flex();
    let punet = small().init(&device).unwrap();
    let err = TunedPunet::new(punet, &SegMethodConfig::Fixed, vec![1], &device).unwrap_err();
    assert!(err.to_string().contains("Fixed"), "{err}");
    let punet = small().init(&device).unwrap();
    let err = TunedPunet::new(punet, &SegMethodConfig::Prompting, vec![7], &device).unwrap_err();
    assert!(err.to_string().contains("class 7"), "{err}");
}
