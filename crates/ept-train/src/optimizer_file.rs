//! Checks a checkpoint's `optimizer.bin` against the model it is about to resume.
//!
//! burn restores optimizer state without comparing it with the parameters it belongs to;
//! a state tensor of the wrong shape (a file from another run, or one damaged so that its
//! byte count still fits) only fails later, as a panic inside the first optimizer step.
//! This reads the burnpack's tensor table (no tensor data) and the `{id}.__rank` scalars
//! and names the first entry that does not fit the model.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Tensor};

/// The rank scalar burn-optim writes per parameter (`{param_id}.__rank`).
const RANK_SUFFIX: &str = ".__rank";

/// Shape and dtype of every float parameter, by parameter id, with its dotted path.
struct FloatParams {
    path: Vec<String>,
    by_id: BTreeMap<u64, (String, Vec<usize>, DType)>,
}

impl ModuleVisitor for FloatParams {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        self.by_id.insert(
            param.id.val(),
            (self.path.join("."), tensor.dims().to_vec(), tensor.dtype()),
        );
    }
}

/// `Ok` when every state tensor and rank in the optimizer file at `path` belongs to a
/// float parameter of `model` with the same shape, rank and dtype; otherwise the reason.
pub(crate) fn check_against(path: &Path, model: &impl Module) -> Result<(), String> {
    let mut params = FloatParams {
        path: Vec::new(),
        by_id: BTreeMap::new(),
    };
    model.visit(&mut params);
    let reader = burn_pack::Reader::from_file(path).map_err(|e| format!("not a burnpack file: {e}"))?;
    for (key, value) in reader.scalars() {
        let Some(id) = key.strip_suffix(RANK_SUFFIX) else {
            continue;
        };
        let (param_path, dims, _) = param_of(&params.by_id, id, key)?;
        let rank = usize::try_from(*value).map_err(|_| format!("`{key}` is not a rank"))?;
        if rank != dims.len() {
            return Err(format!(
                "`{key}` says rank {rank}, but parameter `{param_path}` has shape {dims:?}"
            ));
        }
    }
    let tensors = reader
        .into_tensors()
        .map_err(|e| format!("unreadable tensor table: {e}"))?;
    for tensor in tensors {
        let Some(id) = tensor.param_id else {
            return Err(format!("state tensor `{}` names no parameter", tensor.name));
        };
        let (param_path, dims, dtype) = param_of(&params.by_id, &id.to_string(), &tensor.name)?;
        if tensor.shape.as_slice() != dims.as_slice() || tensor.dtype != *dtype {
            return Err(format!(
                "state tensor `{}` is {:?} {:?}, but parameter `{param_path}` is {dtype:?} {dims:?}",
                tensor.name,
                tensor.dtype,
                tensor.shape.as_slice()
            ));
        }
    }
    Ok(())
}

fn param_of<'a>(
    by_id: &'a BTreeMap<u64, (String, Vec<usize>, DType)>,
    id: &str,
    entry: &str,
) -> Result<&'a (String, Vec<usize>, DType), String> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| by_id.get(&id))
        .ok_or_else(|| {
            format!("`{entry}` is state for parameter {id}, which this model does not have (the file belongs to another run)")
        })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
    use burn::tensor::{Device, Tensor};

    use super::*;

    /// A linear layer after one AdamW step, and the optimizer that took it.
    fn stepped(device: &Device) -> (Linear, ModuleOptimizer) {
        let model = LinearConfig::new(3, 2).init(device);
        let x = Tensor::<2>::ones([4, 3], device);
        let grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
        let mut optim = AdamWConfig::new().init();
        let model = optim.step(1e-3, model, grads);
        (model, optim)
    }

    fn temp_file(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ept-optimizer-file-{}-{name}", std::process::id()))
    }

    /// The optimizer file re-written with `edit` applied to its tensor table and scalars.
    fn rewritten(
        bytes: &[u8],
        name: &str,
        edit: impl Fn(&mut burn_pack::Tensor, &mut BTreeMap<String, burn_pack::Scalar>),
    ) -> PathBuf {
        let reader =
            burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec())).unwrap();
        let mut scalars = reader.scalars().clone();
        let metadata = reader.metadata().clone();
        let mut tensors = reader.into_tensors().unwrap();
        for tensor in &mut tensors {
            edit(tensor, &mut scalars);
        }
        let mut writer = burn_pack::Writer::new(tensors);
        for (key, value) in &scalars {
            writer = writer.with_scalar(key, *value);
        }
        for (key, value) in &metadata {
            writer = writer.with_metadata(key, value);
        }
        let path = temp_file(name);
        std::fs::write(&path, &writer.into_bytes().unwrap()[..]).unwrap();
        path
    }

    #[test]
    fn a_file_that_fits_passes_and_one_that_does_not_is_named() {
        let device = Device::flex().autodiff();
        let (model, optim) = stepped(&device);
        let bytes = optim.into_bytes().unwrap().to_vec();
        let good = temp_file("good");
        std::fs::write(&good, &bytes).unwrap();
        assert_eq!(check_against(&good, &model), Ok(()));

        // The weight's moments with their dimensions swapped: the same byte count, so burn
        // itself loads the file and panics only in the next step.
        let permuted = rewritten(&bytes, "permuted", |tensor, _| {
            if tensor.shape.len() == 2 {
                tensor.shape = vec![tensor.shape[1], tensor.shape[0]].into();
            }
        });
        let error = check_against(&permuted, &model).unwrap_err();
        assert!(error.contains("weight") && error.contains("[2, 3]"), "{error}");

        let wrong_rank = rewritten(&bytes, "rank", |_, scalars| {
            for (key, value) in scalars.iter_mut() {
                if key.ends_with(RANK_SUFFIX) {
                    *value = burn_pack::Scalar::from(5usize);
                }
            }
        });
        let error = check_against(&wrong_rank, &model).unwrap_err();
        assert!(error.contains("rank 5"), "{error}");

        // State from another model: its parameter ids are not this model's.
        let (other, _) = stepped(&device);
        let error = check_against(&good, &other).unwrap_err();
        assert!(error.contains("does not have"), "{error}");

        let garbage = temp_file("garbage");
        std::fs::write(&garbage, b"not a burnpack").unwrap();
        assert!(
            check_against(&garbage, &model)
                .unwrap_err()
                .contains("not a burnpack")
        );
        for path in [good, permuted, wrong_rank, garbage] {
            let _ = std::fs::remove_file(path);
        }
    }
}
