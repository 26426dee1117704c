//! End to end on the bundled real data set (`datasets/brain_patches`, Colin27 MRI + AAL
//! lobes): both annotation lists load with image checks, train and test never share a
//! slice group, the few-shot sampler draws 1/5/10-shot subsets from them, and the
//! transforms and loader turn a subset into burn tensors of the right shape and values.

mod common;

use std::collections::HashSet;

use burn::tensor::{Int, Tensor};
use common::repo_root;
use ept_backend::DeviceSpec;
use ept_data::{
    BatchTargets, DataSource, Dataset, FewShotSpec, Grouping, ListKind, Loader, LoaderOptions,
    MultiLabelPolicy, Pipeline, Task, sample_few_shot,
};

fn load(list: &str, format: ListKind) -> Dataset {
    let root = repo_root().join("datasets/brain_patches");
    DataSource::List {
        list: root.join(list),
        images: root.join("images"),
        format,
        num_classes: Some(7),
        classes: Some(root.join("classes.txt")),
        check_images: true,
    }
    .load()
    .unwrap_or_else(|e| panic!("bundled data set must load: {e}"))
}

#[test]
fn bundled_lists_load_and_the_split_is_clean() {
    let train = load("lobe_train.txt", ListKind::Colon);
    let test = load("lobe_test.txt", ListKind::Colon);
    let multi_train = load("lobe_multi_train.txt", ListKind::Endo);
    assert_eq!(train.class_names[0], "frontal");
    assert_eq!(train.class_names.len(), 7);
    assert!(
        train.samples.len() > 1000 && test.samples.len() > 400,
        "{} / {}",
        train.samples.len(),
        test.samples.len()
    );
    assert_eq!(multi_train.samples.len(), train.samples.len());
    assert_eq!(multi_train.task, Task::MultiLabel);
    // The majority lobe is always among the multi-label lobes.
    for (s, m) in train.samples.iter().zip(&multi_train.samples) {
        assert_eq!(s.id, m.id);
        let ept_data::Target::Single(c) = s.target else {
            panic!("single-label list")
        };
        assert!(m.target.has(c), "{}", s.id);
    }
    // Train and test share no group, by either MedFMC grouping rule.
    for g in [Grouping::Prefix(18), Grouping::Slide] {
        let groups = |d: &Dataset| {
            d.samples
                .iter()
                .map(|s| g.key(s).unwrap().to_string())
                .collect::<HashSet<_>>()
        };
        assert!(groups(&train).is_disjoint(&groups(&test)), "{g}");
    }
    // Every class is in the test list.
    for c in 0..7 {
        assert!(
            test.samples.iter().any(|s| s.target.has(c)),
            "class {c} missing from test"
        );
    }
}

#[test]
fn bundled_data_goes_through_sampler_transforms_and_loader_into_tensors() {
    let train = load("lobe_train.txt", ListKind::Colon);
    let test = load("lobe_test.txt", ListKind::Colon);
    for shots in [1, 5, 10] {
        let spec = FewShotSpec {
            shots,
            num_classes: 7,
            seed: 1,
            grouping: train.default_grouping,
            policy: MultiLabelPolicy::PerClass,
        };
        let draw = sample_few_shot(&train.samples, &test.samples, &spec)
            .unwrap_or_else(|e| panic!("{shots}-shot on the bundled data: {e}"));
        assert!(draw.per_class.iter().all(|g| g.len() == shots));
        assert_eq!(draw.held_out_overlap, 0);
    }
    let spec = FewShotSpec {
        shots: 1,
        num_classes: 7,
        seed: 3,
        grouping: Grouping::Slide,
        policy: MultiLabelPolicy::PerClass,
    };
    let draw = sample_few_shot(&train.samples, &test.samples, &spec).unwrap();
    let subset = train.subset(&draw.train);

    let device = DeviceSpec::default().device();
    let opts = LoaderOptions {
        batch_size: 4,
        seed: 5,
        ..LoaderOptions::default()
    };
    let loader = Loader::from_dataset(&subset, Pipeline::medfmc_train(64), opts).unwrap();
    let mut seen = 0;
    for host in loader.epoch(0) {
        let host = host.unwrap();
        seen += host.len();
        let batch = host.to_device(&device);
        let dims = batch.images.dims();
        assert_eq!(&dims[1..], &[3, 64, 64]);
        assert_eq!(dims[0], host.len());
        let values: Vec<f32> = batch.images.to_data().try_to_vec::<f32>().unwrap();
        // Normalised MRI: values span both signs and stay in ImageNet-normalised range.
        assert!(values.iter().all(|v| v.is_finite() && (-2.5..=3.0).contains(v)));
        assert!(values.iter().any(|&v| v < 0.0) && values.iter().any(|&v| v > 0.0));
        match batch.targets {
            BatchTargets::Classes(t) => {
                let t: Tensor<1, Int> = t;
                let classes: Vec<i64> = t.to_data().convert::<i64>().try_to_vec::<i64>().unwrap();
                let want: Vec<i64> = host.class_indices().unwrap();
                assert_eq!(classes, want);
                assert!(classes.iter().all(|&c| (0..7).contains(&c)));
            }
            BatchTargets::MultiHot(_) => panic!("single-label list gave multi-hot targets"),
        }
    }
    assert_eq!(seen, subset.samples.len());

    // Multi-label list: multi-hot targets [B, 7].
    let multi = load("lobe_multi_train.txt", ListKind::Endo).subset(&[0, 1, 2]);
    let loader = Loader::from_dataset(&multi, Pipeline::medfmc_test(32), LoaderOptions::default()).unwrap();
    let host = loader.epoch(0).next().unwrap().unwrap();
    let expected = host.multi_hot();
    match host.into_device(&device).targets {
        BatchTargets::MultiHot(t) => {
            assert_eq!(t.dims(), [3, 7]);
            let flags: Vec<f32> = t.to_data().try_to_vec::<f32>().unwrap();
            assert_eq!(flags, expected);
            assert!(flags.iter().all(|&f| f == 0.0 || f == 1.0) && flags.contains(&1.0));
        }
        BatchTargets::Classes(_) => panic!("multi-label list gave class targets"),
    }
}
