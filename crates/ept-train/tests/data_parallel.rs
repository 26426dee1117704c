//! Data-parallel and micro-batched gradients equal the one-piece gradient of the whole
//! batch: shards on two and three devices (uneven), micro-batches on one, both at once —
//! for every trainable tensor of an EPT-tuned ViT, single- and multi-label losses.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use ept_backbones::VitConfig;
use ept_data::BatchTargets;
use ept_train::engine::loss;
use ept_train::parallel::{BatchSplit, batch_gradients};
use ept_tuning::{EptConfig, MethodConfig, TunedVit};

const CLASSES: usize = 5;

/// Dotted path, id and rank of every trainable float tensor.
#[derive(Default)]
struct Trainable {
    path: Vec<String>,
    found: Vec<(String, ParamId, usize)>,
}

impl ModuleVisitor for Trainable {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() {
            self.found.push((self.path.join("."), param.id, D));
        }
    }
}

fn grad_of<const D: usize>(grads: &GradientsParams, id: ParamId) -> Option<Vec<f32>> {
    grads
        .get::<D>(id)
        .map(|g| g.into_data().try_to_vec::<f32>().unwrap())
}

fn gradients_by_path(model: &TunedVit, grads: &GradientsParams) -> BTreeMap<String, Vec<f32>> {
    let mut visitor = Trainable::default();
    model.visit(&mut visitor);
    visitor
        .found
        .into_iter()
        .map(|(path, id, rank)| {
            let grad = match rank {
                1 => grad_of::<1>(grads, id),
                2 => grad_of::<2>(grads, id),
                3 => grad_of::<3>(grads, id),
                4 => grad_of::<4>(grads, id),
                _ => None,
            };
            (
                path.clone(),
                grad.unwrap_or_else(|| panic!("no gradient for {path}")),
            )
        })
        .collect()
}

fn model(device: &Device) -> TunedVit {
    let config = VitConfig::from_name("vit_micro_patch4_32").unwrap();
    let method = MethodConfig::Ept(EptConfig {
        length: 4,
        ..EptConfig::default()
    });
    TunedVit::new(config.init(device).unwrap(), &method, CLASSES, device).unwrap()
}

fn check(targets_of: &(dyn Fn(&[usize], &Device) -> BatchTargets + Sync)) {
    let device = Device::flex().autodiff();
    ept_backend::seed_everything(&device, 7);
    let model = model(&device);
    let len = 7;
    let images: Tensor<4> = Tensor::random([len, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<usize> = (0..len).map(|i| (i * 3) % CLASSES).collect();
    let piece_loss = |replica: &TunedVit, samples: std::ops::Range<usize>, on: &Device| {
        let piece = images.clone().slice([samples.clone()]).to_device(on).detach();
        let targets = targets_of(&labels[samples], on);
        loss(replica.forward(piece), &targets, CLASSES)
    };
    let (whole_loss, whole) = batch_gradients(&model, len, &BatchSplit::single(device.clone()), &piece_loss);
    let reference = gradients_by_path(&model, &whole);
    assert!(reference.len() >= 2, "EPT prompts and the head are trainable");

    for (devices, micro_batch) in [(2, None), (3, None), (1, Some(2)), (2, Some(3)), (3, Some(1))] {
        let split = BatchSplit {
            devices: vec![device.clone(); devices],
            micro_batch,
        };
        let (split_loss, grads) = batch_gradients(&model, len, &split, &piece_loss);
        let case = format!("{devices} devices, micro-batch {micro_batch:?}");
        assert!(
            (split_loss - whole_loss).abs() < 1e-5,
            "{case}: loss {split_loss} vs {whole_loss}"
        );
        let got = gradients_by_path(&model, &grads);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "{case}"
        );
        for (path, want) in &reference {
            let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = got[path]
                .iter()
                .zip(want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-5 * scale.max(1.0),
                "{case}: {path} differs by {worst} (scale {scale})"
            );
        }
    }
}

#[test]
fn shards_and_micro_batches_sum_to_the_whole_batch_gradient_single_label() {
    check(&|labels, device| {
        let data: Vec<i64> = labels.iter().map(|&c| c as i64).collect();
        BatchTargets::Classes(Tensor::<1, Int>::from_data(
            TensorData::new(data, [labels.len()]),
            device,
        ))
    });
}

#[test]
fn shards_and_micro_batches_sum_to_the_whole_batch_gradient_multi_label() {
    check(&|labels, device| {
        let mut flags = vec![0f32; labels.len() * CLASSES];
        for (i, &c) in labels.iter().enumerate() {
            flags[i * CLASSES + c] = 1.0;
            flags[i * CLASSES + (c + 2) % CLASSES] = 1.0;
        }
        BatchTargets::MultiHot(Tensor::<2>::from_data(
            TensorData::new(flags, [labels.len(), CLASSES]),
            device,
        ))
    });
}
