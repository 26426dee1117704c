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
    let text = store::metadata_entry(&bytes, META)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| {
            format!(
                "{}: not a PUNet weight file written by ept (no `{META}` metadata)",
                path.display()
            )
        })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: bad PUNet metadata: {e}", path.display()))
}

/// Load a PUNet weight file into `punet`. Returns the model and notes on tensors that
/// were not loaded (other head, other prompt slots); an error does not repeat the file's
/// name, which the caller reports it with.
pub fn load_punet_weights(mut punet: Punet, path: &Path) -> Result<(Punet, Vec<String>), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let snapshots = store::read_module_tensors(&bytes)?;
    let result = punet.apply(snapshots, None, None, false);
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(errors.join("; "));
    }
    let missing_body: Vec<&String> = result
        .missing
        .iter()
        .map(|(name, _)| name)
        .filter(|n| is_body(n) && !n.ends_with("running_mean") && !n.ends_with("running_var"))
        .collect();
    if !missing_body.is_empty() {
        return Err(format!(
            "the file lacks body tensors {missing_body:?} — it was made for another architecture"
        ));
    }
    let mut notes = Vec::new();
    let fresh = result.missing.iter().filter(|(n, _)| !is_body(n)).count();
    if fresh > 0 {
        notes.push(format!(
            "{fresh} head/prompt tensors not in {} start from their initialisation",
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
