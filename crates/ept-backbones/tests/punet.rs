//! PUNet: parameter counts against the paper / reference, output shapes in 2-D and
//! 3-D, and input errors.

use burn::tensor::{Device, Distribution, Tensor};
use ept_backbones::unet::{HeadKind, NoUnetHooks, PunetConfig, WindowLayout};

fn device() -> Device {
    Device::flex()
}

/// The paper: frozen body 6,758,304 parameters; prompts per class 57,344 (0.85 %).
/// The reference's per-module arithmetic is in the crate README.
#[test]
fn reference_parameter_counts() {
    let model = PunetConfig::reference_2d().init(&device()).unwrap();
    let counts = model.counts();
    assert_eq!(counts.body, 6_758_304);
    assert_eq!(counts.prompts_per_class, 57_344);
    // all 10 slots of the 19 pools + 18 image→prompt biases (10 slots + head weights)
    assert_eq!(counts.prompts_total, 435_200 + 96_768);
    assert_eq!(counts.total, 7_290_272);
    let percent = 100.0 * counts.prompts_per_class as f64 / counts.body as f64;
    assert!((percent - 0.85).abs() < 0.005, "{percent}");

    let fixed = PunetConfig {
        head: HeadKind::Fixed,
        ..PunetConfig::reference_2d()
    }
    .init(&device())
    .unwrap();
    let counts = fixed.counts();
    assert_eq!(
        (counts.body, counts.fixed_head, counts.prompts_total),
        (6_758_304, 130, 0)
    );
}

fn small(spatial_dims: usize, layout: WindowLayout, head: HeadKind) -> PunetConfig {
    PunetConfig {
        spatial_dims,
        channels: vec![8, 16, 16],
        heads: 2,
        window: Some(if spatial_dims == 3 { [4, 4, 2] } else { [4, 4, 1] }),
        window_layout: layout,
        tokens_per_class: 3,
        class_slots: 4,
        head,
        fixed_outputs: 3,
        ..PunetConfig::default()
    }
}

#[test]
fn shapes_2d_and_3d_for_both_layouts_and_heads() {
    for layout in [WindowLayout::Contiguous, WindowLayout::Strided] {
        // 2-D, a size that needs padding (36 → 18 → 18 → 9) and an odd one
        let model = small(2, layout, HeadKind::Similarity).init(&device()).unwrap();
        for (x, y) in [(36, 28), (33, 20)] {
            let images = Tensor::<5>::random([2, 1, x, y, 1], Distribution::Normal(0.0, 1.0), &device());
            model.check_input(images.dims(), &[2]).unwrap();
            let logits = model.forward(images, &[2], &NoUnetHooks);
            assert_eq!(logits.dims(), [2, 2, x, y, 1]);
            assert!(!logits.clone().is_nan().any().into_scalar::<bool>());
        }
        let images = Tensor::<5>::random([1, 1, 32, 32, 1], Distribution::Normal(0.0, 1.0), &device());
        assert_eq!(
            model.forward(images, &[3, 1], &NoUnetHooks).dims(),
            [1, 3, 32, 32, 1]
        );

        // 3-D
        let model = small(3, layout, HeadKind::Similarity).init(&device()).unwrap();
        let volume = Tensor::<5>::random([1, 1, 24, 16, 12], Distribution::Normal(0.0, 1.0), &device());
        assert_eq!(
            model.forward(volume.clone(), &[1], &NoUnetHooks).dims(),
            [1, 2, 24, 16, 12]
        );
        let fixed = small(3, layout, HeadKind::Fixed).init(&device()).unwrap();
        assert_eq!(
            fixed.forward(volume, &[], &NoUnetHooks).dims(),
            [1, 3, 24, 16, 12]
        );
    }
}

#[test]
fn prompts_change_the_output_and_the_head_is_per_class() {
    let model = small(2, WindowLayout::Contiguous, HeadKind::Similarity)
        .init(&device())
        .unwrap();
    let images = Tensor::<5>::random([1, 1, 16, 16, 1], Distribution::Normal(0.0, 1.0), &device());
    let a = model.forward(images.clone(), &[1], &NoUnetHooks);
    let b = model.forward(images, &[2], &NoUnetHooks);
    let diff: f32 = (a - b).abs().max().into_scalar();
    assert!(
        diff > 1e-4,
        "different class prompts must give different logits ({diff})"
    );
}

#[test]
fn bad_inputs_are_explained() {
    let model = small(2, WindowLayout::Contiguous, HeadKind::Similarity)
        .init(&device())
        .unwrap();
    let err = model.check_input([1, 1, 16, 16, 4], &[1]).unwrap_err();
    assert!(err.contains("2-D"), "{err}");
    let err = model.check_input([1, 3, 16, 16, 1], &[1]).unwrap_err();
    assert!(err.contains("input channel"), "{err}");
    let err = model.check_input([1, 1, 16, 16, 1], &[4]).unwrap_err();
    assert!(err.contains("slot 4"), "{err}");
    let err = model.check_input([1, 1, 16, 16, 1], &[]).unwrap_err();
    assert!(err.contains("at least one"), "{err}");
    let bad = PunetConfig {
        spatial_dims: 4,
        ..PunetConfig::default()
    };
    assert!(bad.init(&device()).unwrap_err().contains("spatial_dims"));
}

/// A weight file of another body architecture is refused with the differing fields and
/// a few tensors, not hundreds; prompts made for another token count keep their
/// initialisation with a note (the body loads); a file that is not a body says what it is.
#[test]
fn weight_files_of_other_architectures_are_explained_briefly() {
    use ept_backbones::unet::io::{load_punet_weights, save_punet};
    let dir = std::env::temp_dir().join(format!("ept-punet-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = small(2, WindowLayout::Contiguous, HeadKind::Similarity);
    let file = dir.join("body.safetensors");
    save_punet(&config.init(&device()).unwrap(), &file).unwrap();

    let wider = PunetConfig {
        channels: vec![8, 16, 32],
        ..config.clone()
    };
    let error = load_punet_weights(wider.init(&device()).unwrap(), &file).unwrap_err();
    assert!(
        error.contains("model.punet.channels: [8,16,16] in the file, [8,16,32] in the model"),
        "{error}"
    );
    assert!(error.len() < 1000, "{} characters: {error}", error.len());

    let more_tokens = PunetConfig {
        tokens_per_class: 5,
        ..config.clone()
    };
    let (_, notes) = load_punet_weights(more_tokens.init(&device()).unwrap(), &file).unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("start from their initialisation")),
        "{notes:?}"
    );

    let other = dir.join("other.safetensors");
    std::fs::write(&other, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ").unwrap();
    let error = load_punet_weights(config.init(&device()).unwrap(), &other).unwrap_err();
    assert!(error.contains("not a PUNet weight file"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}
