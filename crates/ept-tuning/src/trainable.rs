//! Which parameters train: a path predicate applied to a module tree. The same
//! predicate sets burn's `require_grad` flags ([`set_trainable`]) and drives the
//! accounting ([`count_params`]) and method-only checkpoints, so the three can never
//! disagree.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Dotted path of the parameter currently visited (`backbone.blocks.3.attn.qkv.weight`).
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn path(&self) -> String {
        self.0.join(".")
    }
}

struct TrainableMapper<'a, F: Fn(&str) -> bool> {
    path: PathStack,
    predicate: &'a F,
}

impl<F: Fn(&str) -> bool> ModuleMapper for TrainableMapper<'_, F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.set_require_grad((self.predicate)(&self.path.path()))
    }
}

/// Set `require_grad` on every float parameter of `module` to `predicate(path)`.
pub fn set_trainable<M: Module>(module: M, predicate: &impl Fn(&str) -> bool) -> M {
    module.map(&mut TrainableMapper {
        path: PathStack::default(),
        predicate,
    })
}

/// Trainable and frozen parameter counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamCount {
    pub trainable: usize,
    pub frozen: usize,
}

impl ParamCount {
    pub fn total(&self) -> usize {
        self.trainable + self.frozen
    }

    /// Trainable share of all parameters, in percent.
    pub fn trainable_percent(&self) -> f64 {
        100.0 * self.trainable as f64 / self.total().max(1) as f64
    }
}

struct Lister<'a, F: FnMut(&str, &[usize])> {
    path: PathStack,
    visit: &'a mut F,
}

impl<F: FnMut(&str, &[usize])> ModuleVisitor for Lister<'_, F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        (self.visit)(&self.path.path(), &param.shape().dims::<D>());
    }
}

/// Call `visit(path, shape)` for every float parameter of `module`.
pub fn for_each_param<M: Module>(module: &M, mut visit: impl FnMut(&str, &[usize])) {
    module.visit(&mut Lister {
        path: PathStack::default(),
        visit: &mut visit,
    });
}

/// Count parameters of `module` split by `predicate(path)`.
pub fn count_params<M: Module>(module: &M, predicate: &impl Fn(&str) -> bool) -> ParamCount {
    let mut count = ParamCount::default();
    for_each_param(module, |path, shape| {
        let n: usize = shape.iter().product();
        if predicate(path) {
            count.trainable += n;
        } else {
            count.frozen += n;
        }
    });
    count
}

struct Materializer;

impl ModuleVisitor for Materializer {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Draw every lazily initialised parameter of `module` now, in module order. burn draws
/// a parameter's random values when it is first used, so without this the values of a
/// randomly initialised model depend on the order code first touches its parameters
/// (training and `eval` touch them differently).
pub fn initialize_now<M: Module>(module: &M) {
    module.visit(&mut Materializer);
}
