//! Per-parameter-group learning rates on top of burn's one-rate optimizers: the
//! gradients of a group (chosen by parameter path) are moved into their own
//! `GradientsParams` and stepped with their own rate, the rest with the base rate. Each
//! parameter keeps its own optimizer state, so two steps over disjoint groups equal one
//! step with two rates.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

/// Ids and ranks of the float parameters whose dotted path `predicate` accepts.
pub struct ParamGroup {
    members: Vec<(ParamId, usize)>,
}

struct Collect<'a> {
    path: Vec<String>,
    predicate: &'a dyn Fn(&str) -> bool,
    members: Vec<(ParamId, usize)>,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if (self.predicate)(&self.path.join(".")) {
            self.members.push((param.id, D));
        }
    }
}

impl ParamGroup {
    pub fn new<M: Module>(module: &M, predicate: &dyn Fn(&str) -> bool) -> Self {
        let mut visitor = Collect {
            path: Vec::new(),
            predicate,
            members: Vec::new(),
        };
        module.visit(&mut visitor);
        ParamGroup {
            members: visitor.members,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Move this group's gradients out of `grads`.
    pub fn take(&self, grads: &mut GradientsParams) -> GradientsParams {
        let mut taken = GradientsParams::new();
        for &(id, rank) in &self.members {
            match rank {
                1 => move_grad::<1>(grads, &mut taken, id),
                2 => move_grad::<2>(grads, &mut taken, id),
                3 => move_grad::<3>(grads, &mut taken, id),
                4 => move_grad::<4>(grads, &mut taken, id),
                5 => move_grad::<5>(grads, &mut taken, id),
                _ => {}
            }
        }
        taken
    }
}

fn move_grad<const D: usize>(from: &mut GradientsParams, to: &mut GradientsParams, id: ParamId) {
    if let Some(g) = from.remove::<D>(id) {
        to.register(id, g);
    }
}

/// One optimizer step with `lr` for everything and `group_lr` for `group`.
pub fn step_with_group<M: Module>(
    optim: &mut ModuleOptimizer,
    model: M,
    mut grads: GradientsParams,
    lr: f64,
    group: &ParamGroup,
    group_lr: f64,
) -> M {
    let group_grads = group.take(&mut grads);
    let model = optim.step(lr, model, grads);
    optim.step(group_lr, model, group_grads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::SgdConfig;
    use burn::tensor::{Device, Distribution};

    #[derive(Module, Debug)]
    struct Two {
        body: Linear,
        prompt: Linear,
    }

    /// Plain SGD: every parameter moves by `−rate · gradient`, with the group's rate for
    /// the group (checked on the bias, whose gradient is the same for both layers here).
    #[test]
    fn each_group_steps_with_its_own_rate() {
        let device = Device::flex().autodiff();
        let model = Two {
            body: LinearConfig::new(3, 3).init(&device),
            prompt: LinearConfig::new(3, 3).init(&device),
        };
        let before = |m: &Two| {
            (
                m.body.bias.as_ref().unwrap().val().into_data(),
                m.prompt.bias.as_ref().unwrap().val().into_data(),
            )
        };
        let (body0, prompt0) = before(&model);
        let x = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 1.0), &device);
        // loss = sum(body(x)) + sum(prompt(x)): each bias gets gradient 4 per element
        let loss = model.body.forward(x.clone()).sum() + model.prompt.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let group = ParamGroup::new(&model, &|path| path.starts_with("prompt."));
        assert_eq!(group.len(), 2);
        let mut optim = SgdConfig::new().init();
        let model = step_with_group(&mut optim, model, grads, 0.1, &group, 0.01);
        let (body1, prompt1) = before(&model);
        let delta = |a: burn::tensor::TensorData, b: burn::tensor::TensorData| -> Vec<f32> {
            a.try_to_vec::<f32>()
                .unwrap()
                .iter()
                .zip(b.try_to_vec::<f32>().unwrap())
                .map(|(a, b)| a - b)
                .collect()
        };
        for d in delta(body0, body1) {
            assert!((d - 0.4).abs() < 1e-5, "{d}");
        }
        for d in delta(prompt0, prompt1) {
            assert!((d - 0.04).abs() < 1e-5, "{d}");
        }
    }
}
