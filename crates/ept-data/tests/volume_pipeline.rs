//! The volume pipeline on the bundled brain slabs (`datasets/brain_volumes`): resampling
//! identities and round trips, nearest-neighbour label safety, pad/crop inverses
//! (proptest), the `image,label` list and its errors, the config, the seeded split,
//! preprocessing, foreground-weighted sampling, augmentation and batching into tensors.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::{Int, Tensor};
use common::{Scratch, repo_root};
use ept_backend::DeviceSpec;
use ept_data::volume::source::read_volume_list;
use ept_data::{
    AugmentConfig, Interp, LabelMap, LoaderMode, PatchShape, SamplingConfig, SplitFractions, Volume,
    VolumeLoader, VolumeLoaderOptions, VolumeSet, VolumeSource, pad_or_crop_to, read_label_map, read_volume,
    resample_to_dims, resample_to_spacing, undo_pad_or_crop,
};
use proptest::prelude::*;

fn slab(name: &str) -> PathBuf {
    repo_root().join("datasets/brain_volumes").join(name)
}

fn brain_source() -> VolumeSource {
    let root = repo_root().join("datasets/brain_volumes");
    let mut src = VolumeSource::new(root.join("volumes.csv"), Vec::new());
    src.classes = Some(root.join("classes.txt"));
    src.window = ept_data::IntensityWindow { min: 0.0, max: 255.0 };
    src
}

fn brain_set() -> Arc<VolumeSet> {
    Arc::new(
        brain_source()
            .load()
            .unwrap_or_else(|e| panic!("bundled volumes must load: {e}")),
    )
}

#[test]
fn resampling_to_the_same_spacing_is_exactly_the_identity() {
    let t1 = read_volume(&slab("slab_04_t1.nii.gz")).unwrap();
    let same = resample_to_spacing(&t1, t1.spacing, Interp::Trilinear).unwrap();
    assert_eq!((same.dims, same.affine), (t1.dims, t1.affine));
    assert_eq!(same.data, t1.data);
    let lobes = read_label_map(&slab("slab_04_lobes.nii.gz")).unwrap();
    assert_eq!(
        resample_to_spacing(&lobes, [1.0; 3], Interp::Nearest)
            .unwrap()
            .data,
        lobes.data
    );
}

#[test]
fn a_ramp_survives_one_to_two_to_one_mm() {
    let dims = [20, 16, 12];
    let mut data = Vec::new();
    for x in 0..dims[0] {
        for y in 0..dims[1] {
            for z in 0..dims[2] {
                data.push(0.5 * x as f32 - 0.25 * y as f32 + z as f32);
            }
        }
    }
    let v = Volume::new(dims, [1.0; 3], data).unwrap();
    let down = resample_to_spacing(&v, [2.0; 3], Interp::Trilinear).unwrap();
    assert_eq!(down.dims, [10, 8, 6]);
    // A voxel size that would resample to more voxels than can be held is an error.
    let mut lying = Volume::new([4, 4, 4], [1.0; 3], vec![0.0; 64]).unwrap();
    for pixdim in [1e9f32, 1e30] {
        lying.spacing = [pixdim, 1.0, 1.0];
        let err = resample_to_spacing(&lying, [1.0; 3], Interp::Trilinear)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most") && err.contains("pixdim"), "{err}");
    }
    let back = resample_to_dims(&down, v.dims, v.spacing, Interp::Trilinear).unwrap();
    assert_eq!((back.dims, back.spacing), (v.dims, v.spacing));
    for (a, b) in back.affine.iter().flatten().zip(v.affine.iter().flatten()) {
        assert!((a - b).abs() < 1e-12);
    }
    for x in 0..dims[0] {
        for y in 0..dims[1] {
            for z in 0..dims[2] {
                let (got, want) = (back.get(x, y, z).unwrap(), v.get(x, y, z).unwrap());
                let interior = [x, y, z].iter().zip(dims).all(|(&i, n)| i >= 1 && i + 1 < n);
                // interior exact (linear in, linear out); at the border the clamped half voxel
                let tol = if interior {
                    1e-4
                } else {
                    0.5 * (0.5 + 0.25 + 1.0) + 1e-4
                };
                assert!((got - want).abs() <= tol, "({x},{y},{z}) {got} vs {want}");
            }
        }
    }
}

#[test]
fn nearest_resampling_of_labels_only_produces_existing_labels() {
    let lobes = read_label_map(&slab("slab_03_lobes.nii.gz")).unwrap();
    let before: BTreeSet<u16> = lobes.data.iter().copied().collect();
    let r = resample_to_spacing(&lobes, [1.25, 1.25, 2.5], Interp::Nearest).unwrap();
    assert_eq!(r.dims, [123, 150, 6]); // round(154/1.25), round(188/1.25), round(15/2.5)
    let after: BTreeSet<u16> = r.data.iter().copied().collect();
    assert!(after.is_subset(&before), "{after:?} ⊄ {before:?}");
    assert_eq!(after, before, "no lobe of this slab vanishes at 1.25×1.25×2.5 mm");
    // and back on the source grid most voxels agree
    let back = resample_to_dims(&r, lobes.dims, lobes.spacing, Interp::Nearest).unwrap();
    let same = back.data.iter().zip(&lobes.data).filter(|(a, b)| a == b).count();
    assert!(same as f64 / lobes.data.len() as f64 > 0.9, "{same}");
}

fn small_volume() -> impl Strategy<Value = Volume<u16>> {
    ([1usize..7, 1usize..7, 1usize..7]).prop_flat_map(|dims| {
        proptest::collection::vec(0u16..50, dims.iter().product::<usize>())
            .prop_map(move |data| Volume::new(dims, [1.0, 1.5, 2.0], data).unwrap())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pad_then_undo_is_the_identity(v in small_volume(), extra in [0usize..5, 0usize..5, 0usize..5]) {
        let target = std::array::from_fn(|k| v.dims[k] + extra[k]);
        let (padded, how) = pad_or_crop_to(&v, target, 99).unwrap();
        prop_assert_eq!(padded.dims, target);
        prop_assert_eq!(padded.data.iter().filter(|&&x| x != 99).count(), v.data.iter().filter(|&&x| x != 99).count());
        let back = undo_pad_or_crop(&padded, &how, 99).unwrap();
        prop_assert_eq!(&back.data, &v.data);
        prop_assert_eq!(back.affine, v.affine);
    }

    #[test]
    fn pad_or_crop_then_undo_restores_every_kept_voxel(v in small_volume(), target in [1usize..9, 1usize..9, 1usize..9]) {
        let (out, how) = pad_or_crop_to(&v, target, 999).unwrap();
        let back = undo_pad_or_crop(&out, &how, 999).unwrap();
        prop_assert_eq!(back.dims, v.dims);
        for (i, (&a, &b)) in back.data.iter().zip(&v.data).enumerate() {
            prop_assert!(a == b || a == 999, "voxel {}: {} vs {}", i, a, b);
        }
        let kept = back.data.iter().filter(|&&a| a != 999).count();
        let expect: usize = (0..3).map(|k| v.dims[k].min(target[k])).product();
        prop_assert_eq!(kept, expect);
    }

    #[test]
    fn resampling_to_its_own_spacing_is_exact(v in small_volume()) {
        let f = v.map(|&x| f32::from(x) * 0.37 - 3.0);
        let r = resample_to_spacing(&f, f.spacing, Interp::Trilinear).unwrap();
        prop_assert_eq!(&r.data, &f.data);
        let r = resample_to_spacing(&v, v.spacing, Interp::Nearest).unwrap();
        prop_assert_eq!(&r.data, &v.data);
    }

    #[test]
    fn nearest_never_invents_labels(v in small_volume(), t in [0.3f32..3.0, 0.3f32..3.0, 0.3f32..3.0]) {
        let r = resample_to_spacing(&v, t, Interp::Nearest).unwrap();
        let have: BTreeSet<u16> = v.data.iter().copied().collect();
        prop_assert!(r.data.iter().all(|x| have.contains(x)));
    }
}

#[test]
fn the_volume_list_reports_problems_by_line() {
    let dir = Scratch::new("volume-list");
    dir.write("a.nii.gz", b"x");
    dir.write("a_seg.nii.gz", b"x");
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let ok = dir.write("ok.csv", b"image,label\n\na.nii.gz , a_seg.nii.gz\n");
    let rows = read_volume_list(&ok).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].label, dir.path().join("a_seg.nii.gz"));
    for (body, want) in [
        (
            "path,label\na.nii.gz,a_seg.nii.gz\n",
            "bad.csv:1: expected the header `image,label`",
        ),
        ("image,label\na.nii.gz,b.nii.gz\n", "bad.csv:2: label file"),
        (
            "image,label\na.nii.gz,sub\n",
            "bad.csv:2: label file 'SUB' is a folder, not a file",
        ),
        ("image,label\na.nii.gz\n", "bad.csv:2: wrong number of columns"),
        (
            "image,label\na.nii.gz,a_seg.nii.gz\n./sub/../a.nii.gz,a_seg.nii.gz\n",
            "bad.csv:3: image file 'DIR/./sub/../a.nii.gz' is already listed on line 2",
        ),
        (
            "image,label\n\n\n,a_seg.nii.gz\n",
            "bad.csv:4: empty image column",
        ),
    ] {
        let bad = dir.write("bad.csv", body.as_bytes());
        let e = read_volume_list(&bad).unwrap_err().to_string();
        let want = want
            .replace("SUB", &dir.path().join("sub").display().to_string())
            .replace("DIR", &dir.path().display().to_string());
        assert!(e.contains(&want), "{e} does not contain {want}");
    }
}

#[test]
fn the_config_refuses_unknown_keys_and_mixed_class_sources() {
    let e = serde_json::from_str::<VolumeSource>(
        r#"{"list": "v.csv", "class_names": ["bg", "a"], "spacnig": [1, 1, 1]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("spacnig"), "{e}");
    let src: VolumeSource = serde_json::from_str(
        r#"{"list": "v.csv", "class_names": ["bg", "a"], "label_groups": {"1": [5, 6]}}"#,
    )
    .unwrap();
    assert_eq!(src.spacing, [1.25, 1.25, 2.5]);
    assert_eq!(src.split, SplitFractions::default());
    let mut both = brain_source();
    both.class_names = vec!["bg".into(), "x".into()];
    assert!(both.load().unwrap_err().to_string().contains("not both"));
}

#[test]
fn the_bundled_set_loads_preprocessed_and_split() {
    let set = brain_set();
    assert_eq!(set.volumes.len(), 10);
    assert_eq!(set.num_classes(), 8);
    assert_eq!(set.class_names[1], "frontal");
    let s = &set.split;
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (7, 1, 2));
    let all: BTreeSet<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
    assert_eq!(all.len(), 10);
    for v in &set.volumes {
        assert_eq!(v.image.dims, [123, 150, 6]);
        assert_eq!(v.labels.dims, v.image.dims);
        assert_eq!(v.image.spacing, [1.25, 1.25, 2.5]);
        assert!(v.image.data.iter().all(|x| (-1.0..=1.0).contains(x)));
        assert!(v.labels.data.iter().all(|&l| l < 8));
        for (c, list) in v.foreground.iter().enumerate() {
            assert!(
                list.iter()
                    .all(|&i| usize::from(v.labels.data[i as usize]) == c + 1)
            );
        }
    }
    // slab 00 holds only cerebellum (class 6)
    let s0 = set.volumes.iter().find(|v| v.id == "slab_00_t1.nii.gz").unwrap();
    assert_eq!(s0.present_classes(), vec![6]);

    let mut few = brain_source();
    few.few_volumes = Some(2);
    few.dims = Some([128, 128, 8]);
    let few = few.load().unwrap();
    assert_eq!(few.split.train, set.split.train[..2].to_vec());
    assert_eq!(few.volumes[0].image.dims, [128, 128, 8]);
    // padded Z planes are background: image −1, labels 0
    let v = &few.volumes[0];
    assert!((0..128).all(|x| v.image.get(x, 64, 0) == Some(-1.0) && v.labels.get(x, 64, 0) == Some(0)));
}

#[test]
fn predictions_map_back_to_the_source_grid() {
    let mut src = brain_source();
    src.dims = Some([128, 144, 8]);
    let set = src.load().unwrap();
    let v = &set.volumes[3];
    let back: LabelMap = v.labels_to_source(&v.labels).unwrap();
    let truth = read_label_map(
        &repo_root()
            .join("datasets/brain_volumes")
            .join(v.id.replace("_t1", "_lobes")),
    )
    .unwrap();
    assert_eq!(back.dims, truth.dims);
    let same = back.data.iter().zip(&truth.data).filter(|(a, b)| a == b).count();
    // the crop to 144 in Y drops 3 voxels at the front and 3 at the back (7.5 mm);
    // the rest differs only by the 2.5 mm Z resampling
    assert!(
        same as f64 / truth.data.len() as f64 > 0.85,
        "{same} of {}",
        truth.data.len()
    );
    assert!(v.labels_to_source(&truth).is_err());
}

fn loader(
    set: &Arc<VolumeSet>,
    sampling: SamplingConfig,
    augment: AugmentConfig,
    mode: LoaderMode,
    threads: usize,
) -> VolumeLoader {
    let options = VolumeLoaderOptions {
        batch_size: 3,
        mode,
        drop_last: false,
        seed: 7,
        threads,
    };
    let volumes = set.split.train.clone();
    VolumeLoader::new(set.clone(), volumes, sampling, augment, options).unwrap()
}

#[test]
fn slices_batch_into_z1_tensors_deterministically() {
    let set = brain_set();
    let mut sampling = SamplingConfig::new(PatchShape::Slice2d { size: [96, 112] });
    sampling.samples_per_volume = 2;
    let aug = AugmentConfig {
        flip: [0.5, 0.5, 0.0],
        rotate_deg: 10.0,
        scale: [0.9, 1.1],
        intensity_scale: 0.1,
        intensity_shift: 0.1,
        noise_std: 0.01,
    };
    let a = loader(&set, sampling, aug, LoaderMode::Train, 1);
    let b = loader(&set, sampling, aug, LoaderMode::Train, 2);
    assert_eq!(a.len(), 14);
    let ea: Vec<_> = a.epoch(0).map(Result::unwrap).collect();
    let eb: Vec<_> = b.epoch(0).map(Result::unwrap).collect();
    assert_eq!(ea.len(), 5); // 14 items in batches of 3
    assert_eq!(ea, eb, "the thread count must not change batches");
    assert_ne!(
        ea,
        a.epoch(1).map(Result::unwrap).collect::<Vec<_>>(),
        "epochs differ"
    );
    let first = &ea[0];
    assert_eq!(first.dims, [3, 96, 112, 1]);
    assert!(first.labels.iter().all(|&l| (0..8).contains(&l)));

    let device = DeviceSpec::default().device();
    let batch = first.to_device(&device);
    assert_eq!(batch.images.dims(), [3, 1, 96, 112, 1]);
    assert_eq!(batch.labels.dims(), [3, 96, 112, 1]);
    let labels: Tensor<4, Int> = batch.labels;
    let back: Vec<i64> = labels.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
    assert_eq!(back, first.labels);
}

#[test]
fn foreground_sampling_centres_crops_on_labelled_voxels() {
    let set = brain_set();
    let mut sampling = SamplingConfig::new(PatchShape::Patch3d { size: [33, 33, 3] });
    sampling.p_fg = 1.0;
    sampling.samples_per_volume = 4;
    let l = loader(&set, sampling, AugmentConfig::default(), LoaderMode::Train, 2);
    for item in 0..l.len() {
        let (img, lab, origin) = l.load_item(3, item).unwrap();
        assert_eq!((img.len(), lab.len()), (33 * 33 * 3, 33 * 33 * 3));
        assert!(
            lab[(16 * 33 + 16) * 3 + 1] > 0,
            "item {item} at {origin:?}: centre is background"
        );
    }
    // p_fg = 0: uniform starts stay inside the volume where it is larger than the crop
    sampling.p_fg = 0.0;
    let l = loader(&set, sampling, AugmentConfig::default(), LoaderMode::Train, 2);
    for item in 0..l.len() {
        let o = l.origin(0, item).unwrap();
        assert!(
            o.start[0] >= 0 && o.start[0] + 33 <= 123 && o.start[2] >= 0 && o.start[2] + 3 <= 6,
            "{o:?}"
        );
    }
}

#[test]
fn evaluation_walks_every_slice_in_order_without_augmentation() {
    let set = brain_set();
    let sampling = SamplingConfig::new(PatchShape::Slice2d { size: [128, 160] });
    let noisy = AugmentConfig {
        noise_std: 1.0,
        ..AugmentConfig::default()
    };
    let l = loader(&set, sampling, noisy, LoaderMode::Eval, 2);
    assert_eq!(l.len(), 7 * 6);
    let batches: Vec<_> = l.epoch(0).map(Result::unwrap).collect();
    let origins: Vec<_> = batches.iter().flat_map(|b| b.origins.clone()).collect();
    assert_eq!(origins.len(), 42);
    assert_eq!(origins[0].volume, set.split.train[0]);
    assert_eq!(origins[1].start, [-2, -5, 1]); // centred in-plane pad (128−123, 160−150), z = 1
    // no noise: the slice is the windowed volume itself, padded with −1
    let (img, lab, o) = l.load_item(0, 0).unwrap();
    let v = &set.volumes[o.volume];
    assert_eq!(img[2 * 160 + 5], v.image.get(0, 0, 0).unwrap());
    assert_eq!(img[0], -1.0);
    assert_eq!(lab[60 * 160 + 70], v.labels.get(58, 65, 0).unwrap());
    assert_eq!(batches, l.epoch(5).map(Result::unwrap).collect::<Vec<_>>());
}

/// A label header whose spacing is one float step off the image's (as some converters
/// write) passes the pair check and is resampled onto the image's grid: at 4 mm the two
/// spacings used to round to grids one voxel apart, which failed far from the cause.
#[test]
fn a_label_spacing_off_by_its_last_bit_is_resampled_onto_the_image_grid() {
    let dir = Scratch::new("volume-ulp");
    let mut labels = read_label_map(&slab("slab_03_lobes.nii.gz")).unwrap();
    labels.spacing[0] = f32::from_bits(labels.spacing[0].to_bits() - 1);
    let label_path = dir.path().join("labels.nii.gz");
    ept_data::write_volume(&label_path, &labels, ept_data::NiftiDatatype::Uint8).unwrap();
    let list = format!(
        "image,label\n{},{}\n",
        slab("slab_03_t1.nii.gz").display(),
        label_path.display()
    );
    let mut source = brain_source();
    source.list = dir.write("volumes.csv", list.as_bytes());
    source.spacing = [4.0, 4.0, 3.0];
    let set = source.load().unwrap();
    let volume = &set.volumes[0];
    assert_eq!(volume.image.dims, volume.labels.dims);
    assert_eq!(volume.image.data.len(), volume.labels.data.len());
}
