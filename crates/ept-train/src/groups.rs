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

/// One scheduled optimizer step: `lr` (the schedule's rate at this step, `base_lr` at its
/// peak) for everything, except `group` when the config gives it its own base rate
/// `group_base_lr` — which then follows the same schedule (`group_base_lr · lr / base_lr`).
pub fn scheduled_step<M: Module>(
    optim: &mut ModuleOptimizer,
    model: M,
    grads: GradientsParams,
    (lr, base_lr): (f64, f64),
    group: &ParamGroup,
    group_base_lr: Option<f64>,
) -> M {
    match group_base_lr {
        Some(group_base_lr) => step_with_group(optim, model, grads, lr, group, group_base_lr * lr / base_lr),
        None => optim.step(lr, model, grads),
    }
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

    /// How far plain SGD moved each layer's bias (per element) in one `step`, on a loss
    /// `sum(body(x)) + sum(prompt(x))` — every bias element has gradient 4, so the move is
    /// `4 · rate`. The group is the `prompt.` layer.
    fn bias_moves(
        step: impl FnOnce(&mut ModuleOptimizer, Two, GradientsParams, &ParamGroup) -> Two,
    ) -> (Vec<f32>, Vec<f32>) {
        let device = Device::flex().autodiff();
        let model = Two {
            body: LinearConfig::new(3, 3).init(&device),
            prompt: LinearConfig::new(3, 3).init(&device),
        };
        let biases = |m: &Two| {
            [&m.body, &m.prompt].map(|layer| {
                layer
                    .bias
                    .as_ref()
                    .unwrap()
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            })
        };
        let before = biases(&model);
        let x = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 1.0), &device);
        let loss = model.body.forward(x.clone()).sum() + model.prompt.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let group = ParamGroup::new(&model, &|path| path.starts_with("prompt."));
        assert_eq!(group.len(), 2);
        let mut optim = SgdConfig::new().init();
        let after = biases(&step(&mut optim, model, grads, &group));
        let [body, prompt] = [0, 1].map(|i| before[i].iter().zip(&after[i]).map(|(b, a)| b - a).collect());
        (body, prompt)
    }

    fn assert_all_near(moves: &[f32], expected: f32) {
        assert_eq!(moves.len(), 3);
        for &m in moves {
            assert!((m - expected).abs() < 1e-5, "moved {m}, expected {expected}");
        }
    }

    #[test]
    fn each_group_steps_with_its_own_rate() {
        let (body, prompt) =
            bias_moves(|optim, model, grads, group| step_with_group(optim, model, grads, 0.1, group, 0.01));
        assert_all_near(&body, 0.4);
        assert_all_near(&prompt, 0.04);
    }

    /// The group's own base rate follows the schedule: at a step where the schedule gives
    /// 0.05 of a 0.5 peak, a group base rate of 0.1 steps at 0.01; without one, the group
    /// steps with everything else.
    #[test]
    fn scheduled_step_scales_the_group_rate_with_the_schedule() {
        let (body, prompt) = bias_moves(|optim, model, grads, group| {
            scheduled_step(optim, model, grads, (0.05, 0.5), group, Some(0.1))
        });
        assert_all_near(&body, 0.2);
        assert_all_near(&prompt, 0.04);
        let (body, prompt) = bias_moves(|optim, model, grads, group| {
            scheduled_step(optim, model, grads, (0.05, 0.5), group, None)
        });
        assert_all_near(&body, 0.2);
        assert_all_near(&prompt, 0.2);
    }
}
