//! PUNet weight files: the whole network (e.g. a CPA-pretrained body with its prompts)
//! as ept safetensors with the architecture in the metadata, and loading such a file
//! into a model that may have another head (a body pretrained with the similarity head
//! adapted with the fixed head): body tensors must all be present and of equal shape;
//! head and prompt tensors that do not fit are left as initialised and reported.

use std::collections::HashMap;
use std::path::Path;

use burn_store::ModuleSnapshot;

use super::config::PunetConfig;
use super::model::{Punet, is_prompt_path};
use crate::checkpoint::store;

const META: &str = "ept.punet";

fn is_body(path: &str) -> bool {
    !(is_prompt_path(path) || path.starts_with("fixed_head"))
}

/// Write every tensor of `punet` with its configuration; returns the file size.
pub fn save_punet(punet: &Punet, path: &Path) -> Result<u64, store::WriteError> {
    let config = serde_json::to_string(&punet.config).map_err(|e| store::WriteError::encode(path, e))?;
    store::write_module_tensors(
        punet,
        &|_| true,
        HashMap::from([(META.to_string(), config)]),
        path,
    )
}

/// The architecture stored in a PUNet weight file.
pub fn read_punet_config(path: &Path) -> Result<PunetConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    config_from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The architecture in a weight file's metadata, or what kind of file it is instead.
fn config_from_bytes(bytes: &[u8]) -> Result<PunetConfig, String> {
    let Some(text) = store::metadata_entry(bytes, META)? else {
        return Err(if store::metadata_entry(bytes, "ept.seg_method")?.is_some() {
            "this is a segmentation run's method.safetensors (its prompts and head only), not \
             a PUNet body: give the body.safetensors of an `ept-cli pretrain` run"
                .to_string()
        } else {
            format!("not a PUNet weight file written by ept (no `{META}` metadata)")
        });
    };
    serde_json::from_str(&text).map_err(|e| format!("bad PUNet metadata: {e}"))
}

/// Load a PUNet weight file into `punet`. Returns the model and notes on tensors that
/// were not loaded (other head, other prompt slots or tokens: they keep their
/// initialisation); an error does not repeat the file's name, which the caller reports
/// it with.
pub fn load_punet_weights(mut punet: Punet, path: &Path) -> Result<(Punet, Vec<String>), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file_config = config_from_bytes(&bytes)?;
    let snapshots = store::read_module_tensors(&bytes)?;
    let result = punet.apply(snapshots, None, None, false);
    let error_path = |e: &burn_store::ApplyError| match e {
        burn_store::ApplyError::ShapeMismatch { path, .. }
        | burn_store::ApplyError::DTypeMismatch { path, .. }
        | burn_store::ApplyError::AdapterError { path, .. }
        | burn_store::ApplyError::LoadError { path, .. } => path.clone(),
    };
    let mut body_problems: Vec<String> = result
        .errors
        .iter()
        .filter(|e| is_body(&error_path(e)))
        .map(ToString::to_string)
        .collect();
    body_problems.extend(
        result
            .missing
            .iter()
            .map(|(name, _)| name)
            .filter(|n| is_body(n) && !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|n| format!("'{n}' is missing")),
    );
    if !body_problems.is_empty() {
        let changes = punet.config.differences(&file_config);
        let shown: Vec<&String> = body_problems.iter().take(3).collect();
        return Err(format!(
            "the file's body was made for another architecture ({}); {} body tensors do not fit, e.g. {}",
            if changes.is_empty() {
                "its metadata names no difference".to_string()
            } else {
                changes.join(", ")
            },
            body_problems.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
        ));
    }
    let mut notes = Vec::new();
    let fresh = result.missing.iter().filter(|(n, _)| !is_body(n)).count() + result.errors.len();
    if fresh > 0 {
        notes.push(format!(
            "{fresh} head/prompt tensors absent from {} or of another shape there start from their initialisation",
            path.display()
        ));
    }
    if !result.unused.is_empty() {
        notes.push(format!(
            "{} tensors of {} are not used by this model (another head)",
            result.unused.len(),
            path.display()
        ));
    }
    Ok((punet, notes))
}
