//! Few-shot sampling properties (proptest) over random pools of grouped, single- and
//! multi-label samples with a held-out test set that may even leak groups and images
//! into the pool: determinism per seed, exactly K groups per class or a clear error,
//! nothing drawn from the test set, groups never split, plus the `sample` command
//! writing MedFMC-named lists.

mod common;

use std::collections::{HashMap, HashSet};

use common::Scratch;
use ept_data::sample_cmd::{SampleOptions, SeedList, Shots, run};
use ept_data::{
    DataSource, FewShotSpec, FractionSpec, Grouping, ListKind, MultiLabelPolicy, Sample, SamplingError,
    Target, sample_few_shot, sample_fraction,
};
use proptest::prelude::*;

/// A generated world: the training pool, the held-out (test) list, the class count.
#[derive(Debug, Clone)]
struct World {
    train: Vec<Sample>,
    test: Vec<Sample>,
    num_classes: usize,
}

fn sample(group: usize, item: usize, target: Target) -> Sample {
    let id = format!("g{group:03}_i{item:02}.png");
    Sample {
        path: format!("imgs/{id}").into(),
        id,
        target,
        group: Some(format!("g{group:03}")),
    }
}

fn world(multi: bool) -> impl Strategy<Value = World> {
    (2usize..5).prop_flat_map(move |num_classes| {
        let target = if multi {
            prop::collection::vec(any::<bool>(), num_classes)
                .prop_map(Target::Multi)
                .boxed()
        } else {
            (0..num_classes).prop_map(Target::Single).boxed()
        };
        // Each group: its images' targets, and whether it is a test group.
        let group = (prop::collection::vec(target, 1..6), prop::bool::weighted(0.25));
        (
            prop::collection::vec(group, 1..40),
            prop::bool::weighted(0.3), // leak: a test group also has images in the pool
            prop::bool::weighted(0.3), // leak: a test image name also appears in the pool
        )
            .prop_map(move |(groups, leak_group, leak_image)| {
                let (mut train, mut test) = (Vec::new(), Vec::new());
                for (g, (targets, is_test)) in groups.iter().enumerate() {
                    for (i, t) in targets.iter().enumerate() {
                        let s = sample(g, i, t.clone());
                        if *is_test { test.push(s) } else { train.push(s) }
                    }
                }
                if leak_group && let Some(t) = test.first() {
                    let mut s = t.clone();
                    s.id = s.id.replace(".png", "_dup.png");
                    s.path = format!("imgs/{}", s.id).into();
                    train.push(s);
                }
                if leak_image && let Some(t) = test.last() {
                    let mut s = t.clone();
                    s.group = Some("leaked".into());
                    train.push(s);
                }
                World {
                    train,
                    test,
                    num_classes,
                }
            })
    })
}

fn key(g: Grouping, s: &Sample) -> String {
    g.key(s).unwrap().to_string()
}

/// Pool indices that may be drawn (not sharing a name, file or group with the test list).
fn eligible(w: &World, g: Grouping) -> Vec<bool> {
    let groups: HashSet<String> = w.test.iter().map(|s| key(g, s)).collect();
    let names: HashSet<&str> = w.test.iter().map(|s| s.id.as_str()).collect();
    let files: HashSet<&std::path::Path> = w.test.iter().map(|s| s.path.as_path()).collect();
    w.train
        .iter()
        .map(|s| {
            !groups.contains(&key(g, s))
                && !names.contains(s.id.as_str())
                && !files.contains(s.path.as_path())
        })
        .collect()
}

fn groups_with_class(w: &World, g: Grouping, ok: &[bool], class: usize) -> HashSet<String> {
    w.train
        .iter()
        .zip(ok)
        .filter(|(s, e)| **e && s.target.has(class))
        .map(|(s, _)| key(g, s))
        .collect()
}

/// Properties every successful draw has, whatever the policy.
fn check_isolation(w: &World, g: Grouping, train: &[usize], rest: &[usize]) {
    let test_groups: HashSet<String> = w.test.iter().map(|s| key(g, s)).collect();
    let test_names: HashSet<&str> = w.test.iter().map(|s| s.id.as_str()).collect();
    let test_files: HashSet<&std::path::Path> = w.test.iter().map(|s| s.path.as_path()).collect();
    let train_groups: HashSet<String> = train.iter().map(|&i| key(g, &w.train[i])).collect();
    for &i in train {
        assert!(
            !test_names.contains(w.train[i].id.as_str()),
            "drew a test image (by name)"
        );
        assert!(
            !test_files.contains(w.train[i].path.as_path()),
            "drew a test image (by file)"
        );
        assert!(
            !test_groups.contains(&key(g, &w.train[i])),
            "drew from a test group"
        );
    }
    for &i in rest {
        assert!(
            !train_groups.contains(&key(g, &w.train[i])),
            "group split between subset and rest"
        );
        assert!(
            !test_groups.contains(&key(g, &w.train[i])),
            "test group in the rest"
        );
    }
    assert!(train.windows(2).all(|p| p[0] < p[1]) && rest.windows(2).all(|p| p[0] < p[1]));
    let ok = eligible(w, g);
    // Everything eligible outside the picked groups is in the rest.
    let rest_set: HashSet<usize> = rest.iter().copied().collect();
    for (i, s) in w.train.iter().enumerate() {
        if ok[i] && !train_groups.contains(&key(g, s)) {
            assert!(rest_set.contains(&i), "eligible image {} missing from rest", s.id);
        }
    }
}

fn few_shot_property(w: &World, shots: usize, seed: u64, grouping: Grouping, policy: MultiLabelPolicy) {
    let spec = FewShotSpec {
        shots,
        num_classes: w.num_classes,
        seed,
        grouping,
        policy,
    };
    let first = sample_few_shot(&w.train, &w.test, &spec);
    assert_eq!(
        first,
        sample_few_shot(&w.train, &w.test, &spec),
        "not deterministic"
    );
    let ok = eligible(w, grouping);
    let available: Vec<usize> = (0..w.num_classes)
        .map(|c| groups_with_class(w, grouping, &ok, c).len())
        .collect();
    let short: Vec<usize> = (0..w.num_classes).filter(|&c| available[c] < shots).collect();
    let any_eligible = ok.iter().any(|&e| e);
    match first {
        Err(SamplingError::EmptyPool) => assert!(!any_eligible),
        Err(SamplingError::NotEnoughGroups {
            short: got, shots: k, ..
        }) => {
            assert_eq!(k, shots);
            let got_classes: Vec<usize> = got.iter().map(|s| s.class).collect();
            assert_eq!(got_classes, short, "must name exactly the short classes");
            for s in &got {
                assert_eq!(s.available, available[s.class]);
            }
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(draw) => {
            assert!(
                short.is_empty() && any_eligible,
                "succeeded although classes {short:?} are short"
            );
            check_isolation(w, grouping, &draw.train, &draw.rest);
            for c in 0..w.num_classes {
                let picked: HashSet<&str> = draw.per_class[c].iter().map(String::as_str).collect();
                let with_c = groups_with_class(w, grouping, &ok, c);
                assert!(
                    picked.iter().all(|g| with_c.contains(*g)),
                    "picked a group without class {c}"
                );
                // Groups of the subset that hold class c.
                let covered: HashSet<String> = draw
                    .train
                    .iter()
                    .filter(|&&i| w.train[i].target.has(c))
                    .map(|&i| key(grouping, &w.train[i]))
                    .collect();
                match policy {
                    MultiLabelPolicy::PerClass => {
                        assert_eq!(draw.per_class[c].len(), shots, "class {c}: K groups picked");
                        assert_eq!(picked.len(), shots, "class {c}: duplicate groups");
                        assert!(covered.len() >= shots);
                        if matches!(w.train[0].target, Target::Single(_)) {
                            assert_eq!(covered.len(), shots, "single-label: exactly K groups per class");
                        }
                    }
                    MultiLabelPolicy::Greedy => {
                        assert!(covered.len() >= shots, "class {c} under-covered")
                    }
                }
            }
            // Whole groups: every eligible image of class c in a group picked for c is in.
            if policy == MultiLabelPolicy::PerClass {
                let train: HashSet<usize> = draw.train.iter().copied().collect();
                for (i, s) in w.train.iter().enumerate() {
                    let picked_for_own_class = s
                        .target
                        .classes()
                        .iter()
                        .any(|&c| draw.per_class[c].contains(&key(grouping, s)));
                    assert_eq!(ok[i] && picked_for_own_class, train.contains(&i), "{}", s.id);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn single_label_draws(w in world(false), shots in 1usize..4, seed in any::<u64>()) {
        few_shot_property(&w, shots, seed, Grouping::Column, MultiLabelPolicy::PerClass);
        // The same partition by name prefix ("g007") gives the same draw.
        let spec = |grouping| FewShotSpec { shots, num_classes: w.num_classes, seed, grouping, policy: MultiLabelPolicy::PerClass };
        let a = sample_few_shot(&w.train, &w.test, &spec(Grouping::Column)).ok().map(|d| d.train);
        let leaked = w.train.iter().any(|s| s.group.as_deref() == Some("leaked"));
        if !leaked {
            let b = sample_few_shot(&w.train, &w.test, &spec(Grouping::Prefix(4))).ok().map(|d| d.train);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn multi_label_draws(w in world(true), shots in 1usize..4, seed in any::<u64>()) {
        few_shot_property(&w, shots, seed, Grouping::Column, MultiLabelPolicy::PerClass);
        few_shot_property(&w, shots, seed, Grouping::Column, MultiLabelPolicy::Greedy);
    }

    #[test]
    fn per_image_grouping_gives_exactly_k_images_per_class(w in world(false), shots in 1usize..4, seed in any::<u64>()) {
        few_shot_property(&w, shots, seed, Grouping::Image, MultiLabelPolicy::PerClass);
        let spec = FewShotSpec { shots, num_classes: w.num_classes, seed, grouping: Grouping::Image, policy: MultiLabelPolicy::PerClass };
        if let Ok(d) = sample_few_shot(&w.train, &w.test, &spec) {
            let mut per: HashMap<usize, usize> = HashMap::new();
            for &i in &d.train { *per.entry(w.train[i].target.classes()[0]).or_default() += 1; }
            prop_assert!((0..w.num_classes).all(|c| per.get(&c) == Some(&shots)), "{:?}", per);
        }
    }

    #[test]
    fn different_seeds_usually_differ_and_small_k_nests_in_large_k(w in world(false), seed in any::<u64>()) {
        let spec = |shots| FewShotSpec { shots, num_classes: w.num_classes, seed, grouping: Grouping::Column, policy: MultiLabelPolicy::PerClass };
        if let (Ok(one), Ok(two)) = (sample_few_shot(&w.train, &w.test, &spec(1)), sample_few_shot(&w.train, &w.test, &spec(2))) {
            let two: HashSet<usize> = two.train.into_iter().collect();
            prop_assert!(one.train.iter().all(|i| two.contains(i)), "1-shot not inside 2-shot");
        }
    }

    #[test]
    fn fraction_draws_take_whole_groups(w in world(false), pct in 1u32..=100, seed in any::<u64>()) {
        let spec = FractionSpec { fraction: pct as f64 / 100.0, seed, grouping: Grouping::Column };
        let first = sample_fraction(&w.train, &w.test, &spec);
        prop_assert_eq!(&first, &sample_fraction(&w.train, &w.test, &spec));
        let ok = eligible(&w, Grouping::Column);
        let n_ok = ok.iter().filter(|&&e| e).count();
        match first {
            Err(SamplingError::EmptyPool) => prop_assert_eq!(n_ok, 0),
            Err(e) => panic!("{e}"),
            Ok(d) => {
                check_isolation(&w, Grouping::Column, &d.train, &d.rest);
                let target = ((pct as f64 / 100.0) * n_ok as f64).ceil() as usize;
                prop_assert!(d.train.len() >= target.max(1));
                prop_assert_eq!(d.train.len() + d.rest.len(), n_ok);
                // Minimal: before the last group went in the target was not reached, so
                // dropping the largest picked group falls below it.
                let mut sizes: HashMap<String, usize> = HashMap::new();
                for &i in &d.train { *sizes.entry(key(Grouping::Column, &w.train[i])).or_default() += 1; }
                let largest = sizes.values().max().copied().unwrap_or(0);
                prop_assert!(d.train.len() - largest < target.max(1), "{} - {} >= {}", d.train.len(), largest, target);
            }
        }
    }
}

#[test]
fn zero_shots_and_bad_fractions_are_errors() {
    let train = vec![sample(0, 0, Target::Single(0))];
    let spec = FewShotSpec {
        shots: 0,
        num_classes: 1,
        seed: 1,
        grouping: Grouping::Image,
        policy: MultiLabelPolicy::PerClass,
    };
    assert_eq!(sample_few_shot(&train, &[], &spec), Err(SamplingError::ZeroShots));
    let out_of_range = FewShotSpec {
        shots: 1,
        ..spec.clone()
    };
    let bad = vec![sample(0, 0, Target::Single(3))];
    assert!(matches!(
        sample_few_shot(&bad, &[], &out_of_range),
        Err(SamplingError::LabelOutOfRange { class: 3, .. })
    ));
    for f in [0.0, -0.5, 1.5, f64::NAN] {
        let spec = FractionSpec {
            fraction: f,
            seed: 1,
            grouping: Grouping::Image,
        };
        assert!(matches!(
            sample_fraction(&train, &[], &spec),
            Err(SamplingError::InvalidFraction(_))
        ));
    }
}

#[test]
fn not_enough_groups_message_names_classes_and_grouping() {
    // Class 1 appears in one slide only; 2-shot must fail naming it.
    let mk = |id: &str, c| Sample {
        path: id.into(),
        id: id.into(),
        target: Target::Single(c),
        group: None,
    };
    let train = vec![
        mk("s1p0001.png", 0),
        mk("s2p0001.png", 0),
        mk("s3p0001.png", 1),
        mk("s3p0002.png", 1),
    ];
    let spec = FewShotSpec {
        shots: 2,
        num_classes: 3,
        seed: 1,
        grouping: Grouping::Slide,
        policy: MultiLabelPolicy::PerClass,
    };
    let e = sample_few_shot(&train, &[], &spec).unwrap_err().to_string();
    assert_eq!(
        e,
        "cannot draw 2-shot: every class needs at least 2 groups (grouping 'slide'), but class 1 has 1, class 2 has 0"
    );
}

#[test]
fn sample_command_writes_medfmc_named_lists() {
    let dir = Scratch::new("sample-cmd");
    let mut train_txt = String::new();
    for slide in 0..6 {
        for patch in 0..3 {
            let name = format!("slide {slide:02}p{patch:04}.png");
            train_txt.push_str(&format!("{name} {}\r\n", slide % 2));
        }
    }
    dir.write("colon/train.txt", train_txt.as_bytes());
    dir.write("colon/test.txt", b"slide 05p0009.png 1\nother p0001.png 0\n");
    let src = |list: &str| DataSource::List {
        list: dir.path().join("colon").join(list),
        images: dir.path().join("colon/images"),
        format: ListKind::Colon,
        num_classes: None,
        classes: None,
        check_images: false,
    };
    let mut opts = SampleOptions::new(src("train.txt"), dir.path().join("out"));
    opts.test = Some(src("test.txt"));
    opts.shots = Shots::parse_list("1,2,50%").unwrap();
    opts.seeds = "1..3".parse::<SeedList>().unwrap().0;
    opts.val_max = 4;
    let summary = run(&opts).unwrap();
    assert_eq!(summary.runs.len(), 9);
    assert_eq!(summary.grouping, Grouping::Slide);
    assert_eq!(summary.held_out_overlap, 3, "slide 05 is in the test list");
    let one = std::fs::read_to_string(dir.path().join("out/colon_1-shot_train_exp1.txt")).unwrap();
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 6, "two slides of three patches: {one}");
    assert!(lines.iter().all(|l| !l.starts_with("slide 05")));
    let val = std::fs::read_to_string(dir.path().join("out/colon_1-shot_val_exp1.txt")).unwrap();
    assert_eq!(val.lines().count(), 4, "capped by val_max");
    assert!(dir.path().join("out/colon_50-percent_train_exp3.txt").is_file());
    assert!(summary.to_string().contains("colon_2-shot_train_exp2.txt"));

    // Too many shots: error, and nothing new written.
    let mut too_many = opts.clone();
    too_many.shots = vec![Shots::PerClass(3)];
    too_many.out_dir = dir.path().join("out2");
    let e = run(&too_many).unwrap_err().to_string();
    assert!(
        e.contains("cannot draw 3-shot") && e.contains("class 1 has 2"),
        "{e}"
    );
    assert!(!dir.path().join("out2").exists());
}

#[test]
fn shots_and_seed_parsing() {
    assert_eq!(
        Shots::parse_list("1, 5,10,20%").unwrap(),
        [
            Shots::PerClass(1),
            Shots::PerClass(5),
            Shots::PerClass(10),
            Shots::Percent(20)
        ]
    );
    assert!(
        "0".parse::<Shots>().is_err() && "120%".parse::<Shots>().is_err() && "x".parse::<Shots>().is_err()
    );
    assert_eq!("1..5".parse::<SeedList>().unwrap().0, vec![1, 2, 3, 4, 5]);
    assert_eq!("1..=3".parse::<SeedList>().unwrap().0, vec![1, 2, 3]);
    assert_eq!("4,9".parse::<SeedList>().unwrap().0, vec![4, 9]);
    assert!("5..1".parse::<SeedList>().is_err() && "a".parse::<SeedList>().is_err());
}
