//! Numerical parity of the ViT against timm: fixtures made by
//! `tools/golden/make_vit_golden.py` (pinned torch/timm, see its requirements.txt)
//! are loaded from `.safetensors`, timm `.pth` and mmcls `.pth`, run on every
//! compiled-in CPU backend, and compared with the outputs timm produced.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use ept_backbones::checkpoint::read_checkpoint;
use ept_backbones::{CheckpointError, Vit, VitConfig};
use ept_backend::DeviceSpec;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vit_tiny")
}

/// Every backend compiled into this test binary that can run here: flex and ndarray by
/// default, plus CUDA when built with `--features cuda` on a machine with a GPU (CI has
/// none and builds without it).
fn backends() -> Vec<DeviceSpec> {
    let usable = DeviceSpec::usable_devices();
    eprintln!("golden checks on: {usable:?}");
    usable
}

fn io(name: &str) -> std::collections::BTreeMap<String, TensorData> {
    read_checkpoint(&fixtures().join(name)).unwrap().tensors
}

fn max_abs_diff(a: &TensorData, b: &TensorData) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let (a, b) = (a.try_to_vec::<f32>().unwrap(), b.try_to_vec::<f32>().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn load(spec: &DeviceSpec, img_size: usize, file: &str) -> Vit {
    let mut model = VitConfig::golden_tiny(img_size).init(&spec.device()).unwrap();
    model
        .load_checkpoint(&fixtures().join(file), "vit_golden_tiny")
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    model
}

fn run(model: &Vit, spec: &DeviceSpec, input: &TensorData) -> (TensorData, TensorData) {
    let images = Tensor::<4>::from_data(input.clone(), &spec.device());
    let features = model.forward_features(images);
    let logits = model.forward_head(features.clone());
    (features.into_data(), logits.into_data())
}

#[test]
fn timm_safetensors_matches_timm_outputs_on_every_backend() {
    let io = io("io.safetensors");
    for spec in backends() {
        let model = load(&spec, 32, "weights_timm.safetensors");
        let (features, logits) = run(&model, &spec, &io["input"]);
        let df = max_abs_diff(&features, &io["features"]);
        let dl = max_abs_diff(&logits, &io["logits"]);
        assert!(df < 1e-4, "{spec}: features differ by {df}");
        assert!(dl < 1e-4, "{spec}: logits differ by {dl}");
        // `forward` computes the last block's CLS row alone; same logits as timm.
        let images = Tensor::<4>::from_data(io["input"].clone(), &spec.device());
        let dl = max_abs_diff(&model.forward(images).into_data(), &io["logits"]);
        assert!(dl < 1e-4, "{spec}: CLS-only forward's logits differ by {dl}");
    }
}

#[test]
fn intermediate_patch_tokens_match() {
    let io = io("io.safetensors");
    let spec = DeviceSpec::default();
    let model = load(&spec, 32, "weights_timm.safetensors");
    let images = Tensor::<4>::from_data(io["input"].clone(), &spec.device());
    let patches = model.patch_embed.forward(images.clone()).into_data();
    let d = max_abs_diff(&patches, &io["patch_tokens"]);
    assert!(d < 1e-4, "patch tokens differ by {d}");
    let tokens = model.embed(images);
    let d = max_abs_diff(&tokens.clone().into_data(), &io["tokens_embedded"]);
    assert!(d < 1e-4, "embedded tokens differ by {d}");
    let block0 = model.blocks[0].forward(tokens).into_data();
    let d = max_abs_diff(&block0, &io["block0_out"]);
    assert!(d < 1e-4, "block 0 output differs by {d}");
}

#[test]
fn pth_and_mmcls_copies_give_identical_outputs() {
    let io = io("io.safetensors");
    let spec = DeviceSpec::default();
    let reference = run(&load(&spec, 32, "weights_timm.safetensors"), &spec, &io["input"]);
    for file in ["weights_timm.pth", "weights_mmcls.pth"] {
        let (features, logits) = run(&load(&spec, 32, file), &spec, &io["input"]);
        assert_eq!(max_abs_diff(&features, &reference.0), 0.0, "{file}: features");
        assert_eq!(max_abs_diff(&logits, &reference.1), 0.0, "{file}: logits");
    }
}

#[test]
fn other_image_size_interpolates_pos_embed_like_timm() {
    let io = io("io_48.safetensors");
    let spec = DeviceSpec::default();
    let mut model = VitConfig::golden_tiny(48).init(&spec.device()).unwrap();
    let report = model
        .load_checkpoint(&fixtures().join("weights_timm.safetensors"), "vit_golden_tiny")
        .unwrap();
    assert!(report.notes.iter().any(|n| n.contains("pos_embed")), "{report}");
    let pos = model.pos_embed.val().into_data();
    let dp = max_abs_diff(&pos, &io["pos_embed_resampled"]);
    assert!(dp < 1e-5, "resampled pos_embed differs by {dp}");
    let (features, logits) = run(&model, &spec, &io["input"]);
    assert!(max_abs_diff(&features, &io["features"]) < 1e-4);
    assert!(max_abs_diff(&logits, &io["logits"]) < 1e-4);
}

#[test]
fn mmcls_checkpoint_at_another_size_resamples_like_mmcls() {
    let io = io("io_48.safetensors");
    let spec = DeviceSpec::default();
    let mut model = VitConfig::golden_tiny(48).init(&spec.device()).unwrap();
    model
        .load_checkpoint(&fixtures().join("weights_mmcls.pth"), "vit_golden_tiny")
        .unwrap();
    let pos = model.pos_embed.val().into_data();
    let dp = max_abs_diff(&pos, &io["pos_embed_resampled_mmcls"]);
    assert!(dp < 1e-5, "mmcls-style resampled pos_embed differs by {dp}");
}

#[test]
fn head_of_another_size_is_reinitialised_and_reported() {
    let spec = DeviceSpec::default();
    let mut model = VitConfig::golden_tiny(32)
        .with_num_classes(2)
        .init(&spec.device())
        .unwrap();
    let report = model
        .load_checkpoint(&fixtures().join("weights_mmcls.pth"), "vit_golden_tiny")
        .unwrap();
    assert_eq!(report.naming, "mmcls");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("head initialised randomly")),
        "{report}"
    );
    // Features (everything but the head) still equal timm's.
    let io = io("io.safetensors");
    let (features, _) = run(&model, &spec, &io["input"]);
    assert!(max_abs_diff(&features, &io["features"]) < 1e-4);
}

#[test]
fn checkpoint_of_another_architecture_lists_the_differences() {
    let spec = DeviceSpec::default();
    let mut deeper = VitConfig::golden_tiny(32);
    deeper.depth = 3;
    deeper.embed_dim = 48;
    let mut model = deeper.init(&spec.device()).unwrap();
    let err = model
        .load_checkpoint(&fixtures().join("weights_timm.safetensors"), "deeper")
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CheckpointError::Mismatch(_)), "{text}");
    assert!(
        text.contains("missing keys") && text.contains("blocks.2.attn.qkv.weight"),
        "{text}"
    );

    let mut wider = VitConfig::golden_tiny(32);
    wider.embed_dim = 60;
    let mut model = wider.init(&spec.device()).unwrap();
    let text = model
        .load_checkpoint(&fixtures().join("weights_timm.pth"), "wider")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("shape mismatches") && text.contains("[60]"),
        "{text}"
    );
}

#[test]
fn truncated_and_foreign_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("ept-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = DeviceSpec::default();
    for source in ["weights_timm.safetensors", "weights_timm.pth"] {
        let bytes = std::fs::read(fixtures().join(source)).unwrap();
        for cut in [bytes.len() / 2, 20, 0] {
            let path = dir.join(format!("cut_{cut}_{source}"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let mut model = VitConfig::golden_tiny(32).init(&spec.device()).unwrap();
            let err = model.load_checkpoint(&path, "tiny").unwrap_err();
            assert!(
                matches!(err, CheckpointError::Corrupt { .. }),
                "{source} cut at {cut}: {err}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
        }
    }
    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, "hello, not a checkpoint").unwrap();
    let mut model = VitConfig::golden_tiny(32).init(&spec.device()).unwrap();
    assert!(matches!(
        model.load_checkpoint(&text_file, "tiny"),
        Err(CheckpointError::Corrupt { .. })
    ));
    let missing = dir.join("does-not-exist.pth");
    assert!(matches!(
        model.load_checkpoint(&missing, "tiny"),
        Err(CheckpointError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn vit_b16_parameter_count_matches_timm() {
    // timm vit_base_patch16_224 with a 1000-class head: 86,567,656 parameters.
    let config = VitConfig::from_name("vit_base_patch16_224").unwrap();
    let model = config.init(&DeviceSpec::default().device()).unwrap();
    let total: usize = model
        .expected_keys()
        .values()
        .map(|s| s.iter().product::<usize>())
        .sum();
    assert_eq!(total, 86_567_656);
    assert_eq!(burn::module::Module::num_params(&model), 86_567_656);
}

#[test]
fn exported_timm_weights_reload_to_the_same_model() {
    let io = io("io.safetensors");
    let spec = DeviceSpec::default();
    let model = load(&spec, 32, "weights_timm.safetensors");
    let reference = run(&model, &spec, &io["input"]);
    let dir = std::env::temp_dir().join(format!("ept-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (half, tolerance) in [(false, 0.0), (true, 2e-2)] {
        let path = dir.join(format!("export_{half}.safetensors"));
        model.save_timm(&path, half, Default::default()).unwrap();
        let reloaded = load(&spec, 32, path.to_str().unwrap());
        let (features, logits) = run(&reloaded, &spec, &io["input"]);
        assert!(max_abs_diff(&features, &reference.0) <= tolerance, "half={half}");
        assert!(max_abs_diff(&logits, &reference.1) <= tolerance, "half={half}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn malicious_pickle_is_refused_without_running_anything() {
    // A legacy torch.save-style pickle whose payload is `os.system("touch MARKER")`:
    // PROTO 2, GLOBAL 'os system', the argument tuple, REDUCE, STOP.
    let dir = std::env::temp_dir().join(format!("ept-pickle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("MARKER");
    let command = format!("touch {}", marker.display());
    let mut bytes = b"\x80\x02cos\nsystem\nq\x00X".to_vec();
    bytes.extend_from_slice(&(command.len() as u32).to_le_bytes());
    bytes.extend_from_slice(command.as_bytes());
    bytes.extend_from_slice(b"q\x01\x85q\x02Rq\x03.");
    let path = dir.join("evil.pth");
    std::fs::write(&path, &bytes).unwrap();
    let spec = DeviceSpec::default();
    let mut model = VitConfig::golden_tiny(32).init(&spec.device()).unwrap();
    let err = model.load_checkpoint(&path, "tiny").unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("evil.pth"), "{err}");
    assert!(!marker.exists(), "the pickle's payload ran");
    std::fs::remove_dir_all(&dir).ok();
}

/// A safetensors header that claims a 4-GiB tensor backed by 16 bytes is refused with an
/// error naming the file, before anything of the claimed size is allocated.
#[test]
fn a_lying_safetensors_header_is_refused() {
    let dir = std::env::temp_dir().join(format!("ept-lying-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let header = r#"{"w":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4294967296]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 16]);
    let path = dir.join("lying.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let err = ept_backbones::checkpoint::read_checkpoint(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lying.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
