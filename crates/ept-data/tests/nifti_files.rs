//! NIfTI reading and writing on the real bundled files (Colin27 T1 and the AAL atlas from
//! Debian mricron-data, and the slabs cut from them): header values checked against
//! nibabel, malformed files of every kind give an error naming the file (never a
//! panic), label maps are validated, image/label pairs are checked, and written files
//! read back with the geometry they were given.

mod common;

use std::path::PathBuf;

use common::{Scratch, repo_root};
use ept_data::volume::geometry::crop_window;
use ept_data::{
    DataError, Interp, NiftiDatatype, Volume, check_pair, read_label_map, read_volume, resample_to_spacing,
    write_volume, write_volume_like,
};

fn mricron(name: &str) -> PathBuf {
    repo_root().join("datasets/mricron").join(name)
}

fn slab(name: &str) -> PathBuf {
    repo_root().join("datasets/brain_volumes").join(name)
}

// Expected values printed by nibabel 5.4.2 (numpy 2.4.6):
//   python3 -m venv /work/venv-nib && /work/venv-nib/bin/pip install nibabel
//   /work/venv-nib/bin/python -c "import nibabel as nib, numpy as np; im = nib.load('datasets/mricron/ch2.nii.gz'); \
//     d = np.asarray(im.dataobj); print(im.shape, im.header.get_zooms(), im.header['sform_code'], im.header['qform_code']); \
//     print(im.affine); print(d.max(), (d > 0).sum(), d[90,108,90], d[100,50,120], d[10,20,30])"
// → (181, 217, 181) (1.0, 1.0, 1.0) 4 0
//   [[1 0 0 -90] [0 1 0 -125] [0 0 1 -71] [0 0 0 1]]
//   254 4151607 33 91 0          (aal.nii.gz: max 116, 1479969 labelled, d[100,50,120] = 68)
#[test]
fn colin27_header_affine_and_voxels_match_nibabel() {
    let v = read_volume(&mricron("ch2.nii.gz")).unwrap();
    assert_eq!(v.dims, [181, 217, 181]);
    assert_eq!(v.spacing, [1.0, 1.0, 1.0]);
    assert_eq!((v.header.sform_code, v.header.qform_code), (4, 0));
    assert_eq!(
        v.affine,
        [
            [1.0, 0.0, 0.0, -90.0],
            [0.0, 1.0, 0.0, -125.0],
            [0.0, 0.0, 1.0, -71.0],
            [0.0, 0.0, 0.0, 1.0]
        ]
    );
    assert_eq!(v.get(90, 108, 90), Some(33.0));
    assert_eq!(v.get(100, 50, 120), Some(91.0));
    assert_eq!(v.get(10, 20, 30), Some(0.0));
    assert_eq!(v.data.iter().copied().fold(0.0f32, f32::max), 254.0);
    assert_eq!(v.data.iter().filter(|&&x| x > 0.0).count(), 4_151_607);

    let aal = read_label_map(&mricron("aal.nii.gz")).unwrap();
    assert_eq!(aal.get(100, 50, 120), Some(68));
    assert_eq!(aal.data.iter().max(), Some(&116));
    assert_eq!(aal.data.iter().filter(|&&x| x > 0).count(), 1_479_969);
    check_pair(&v, &aal).unwrap();
}

#[test]
fn bundled_slabs_carry_the_crop_offset() {
    // slab 03 is source voxels x 13.., y 16.., z 53.. (datasets/brain_volumes/README.md)
    let t1 = read_volume(&slab("slab_03_t1.nii.gz")).unwrap();
    let lobes = read_label_map(&slab("slab_03_lobes.nii.gz")).unwrap();
    check_pair(&t1, &lobes).unwrap();
    assert_eq!(t1.dims, [154, 188, 15]);
    assert_eq!(
        [t1.affine[0][3], t1.affine[1][3], t1.affine[2][3]],
        [-77.0, -109.0, -18.0]
    );
    let ch2 = read_volume(&mricron("ch2.nii.gz")).unwrap();
    assert_eq!(
        crop_window(&ch2, [13, 16, 53], [154, 188, 15], 0.0).unwrap().data,
        t1.data
    );
    assert!(lobes.data.iter().all(|&l| l <= 7));
}

fn expect_error_naming(path: &std::path::Path, what: &str) -> String {
    let err = match read_volume(path) {
        Ok(_) => panic!("{what}: read_volume accepted it"),
        Err(e) => e.to_string(),
    };
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        err.contains(&*name),
        "{what}: error does not name the file: {err}"
    );
    assert!(
        read_label_map(path).is_err(),
        "{what}: read_label_map accepted it"
    );
    err
}

#[test]
fn truncated_corrupt_and_foreign_files_are_errors_naming_the_file() {
    let dir = Scratch::new("nifti-bad");
    let real = std::fs::read(mricron("ch2.nii.gz")).unwrap();
    let half = dir.write("half.nii.gz", &real[..real.len() / 2]);
    let tiny = dir.write("tiny.nii.gz", &real[..20]);
    let empty = dir.write("empty.nii", b"");
    let text = dir.write(
        "notes.nii",
        "this is a text file, not a NIfTI volume\n".repeat(20).as_bytes(),
    );
    let mut flipped = real.clone();
    for b in &mut flipped[1000..1100] {
        *b ^= 0x5a;
    }
    let corrupt = dir.write("corrupt.nii.gz", &flipped);
    for (path, what) in [
        (&half, "half a .nii.gz"),
        (&tiny, "20 bytes"),
        (&empty, "empty"),
        (&text, "text"),
        (&corrupt, "corrupt gzip"),
    ] {
        expect_error_naming(path, what);
    }
    assert!(expect_error_naming(&empty, "empty").contains("348-byte header"));
    assert!(expect_error_naming(&text, "text").contains("not a NIfTI-1 file"));
    assert!(expect_error_naming(&half, "half").contains("truncated"));
    assert!(expect_error_naming(&corrupt, "corrupt").contains("checksum"));
    let missing = dir.path().join("missing.nii.gz");
    assert!(matches!(read_volume(&missing), Err(DataError::Io { .. })));

    // An uncompressed file cut inside its voxels.
    let small = read_volume(&slab("slab_00_t1.nii.gz")).unwrap();
    let raw = dir.path().join("slab.nii");
    write_volume(&raw, &small, NiftiDatatype::Uint8).unwrap();
    let bytes = std::fs::read(&raw).unwrap();
    let cut = dir.write("cut.nii", &bytes[..bytes.len() - 1000]);
    assert!(expect_error_naming(&cut, "cut .nii").contains("truncated"));
}

/// A tiny uncompressed file whose header we then edit by offset (nifti1.h layout).
fn tiny_file(dir: &Scratch, name: &str, values: &[f32], dims: [usize; 3], dt: NiftiDatatype) -> PathBuf {
    let v = Volume::new(dims, [1.0; 3], values.to_vec()).unwrap();
    let path = dir.path().join(name);
    write_volume(&path, &v, dt).unwrap();
    path
}

fn patch(path: &PathBuf, offset: usize, bytes: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    b[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, b).unwrap();
}

#[test]
fn dimensionality_is_checked() {
    let dir = Scratch::new("nifti-dims");
    // 4-D with one time point: accepted.
    let p = tiny_file(&dir, "t1.nii", &[1.0, 2.0], [1, 1, 2], NiftiDatatype::Float32);
    patch(&p, 40, &4i16.to_le_bytes());
    assert_eq!(read_volume(&p).unwrap().data, vec![1.0, 2.0]);
    // 4-D with two time points: refused, naming the dims.
    let p = tiny_file(&dir, "t2.nii", &[1.0, 2.0], [1, 1, 2], NiftiDatatype::Float32);
    patch(&p, 40, &[4, 0, 1, 0, 1, 0, 1, 0, 2, 0]);
    let e = read_volume(&p).unwrap_err().to_string();
    assert!(
        e.contains("t2.nii") && e.contains("[1, 1, 1, 2]") && e.contains("4-D"),
        "{e}"
    );
    // 2-D: refused.
    let p = tiny_file(&dir, "flat.nii", &[1.0, 2.0], [1, 2, 1], NiftiDatatype::Float32);
    patch(&p, 40, &2i16.to_le_bytes());
    let e = read_volume(&p).unwrap_err().to_string();
    assert!(e.contains("flat.nii") && e.contains("2-D"), "{e}");
    // dim[0] beyond 7 (the reader then guesses the other byte order): named as dim[0].
    let p = tiny_file(&dir, "nine.nii", &[1.0, 2.0], [1, 1, 2], NiftiDatatype::Float32);
    patch(&p, 40, &9i16.to_le_bytes());
    let e = read_volume(&p).unwrap_err().to_string();
    assert!(e.contains("nine.nii") && e.contains("dim[0] = 9"), "{e}");
    // A negative dimension is shown as the negative number the file holds.
    let p = tiny_file(
        &dir,
        "negative.nii",
        &[1.0, 2.0],
        [1, 1, 2],
        NiftiDatatype::Float32,
    );
    patch(&p, 44, &(-5i16).to_le_bytes());
    let e = read_volume(&p).unwrap_err().to_string();
    assert!(e.contains("negative.nii") && e.contains("[3, 1, -5, 2"), "{e}");
}

#[test]
fn non_finite_voxels_and_bad_labels_are_refused() {
    let dir = Scratch::new("nifti-values");
    let p = tiny_file(
        &dir,
        "nan.nii",
        &[1.0, 2.0, 3.0],
        [1, 1, 3],
        NiftiDatatype::Float32,
    );
    patch(&p, 352, &f32::NAN.to_le_bytes());
    patch(&p, 356, &f32::INFINITY.to_le_bytes());
    let e = read_volume(&p).unwrap_err().to_string();
    assert!(
        e.contains("nan.nii") && e.contains("2 voxels are not finite"),
        "{e}"
    );

    let p = tiny_file(
        &dir,
        "half.nii.gz",
        &[0.0, 2.5, 1.0],
        [1, 1, 3],
        NiftiDatatype::Float32,
    );
    assert!(read_volume(&p).is_ok());
    let e = read_label_map(&p).unwrap_err().to_string();
    assert!(
        e.contains("half.nii.gz") && e.contains("2.5") && e.contains("1 voxels"),
        "{e}"
    );

    let p = tiny_file(
        &dir,
        "neg.nii.gz",
        &[0.0, -1.0, -2.0],
        [1, 1, 3],
        NiftiDatatype::Int16,
    );
    let e = read_label_map(&p).unwrap_err().to_string();
    assert!(e.contains("neg.nii.gz") && e.contains("2 voxels"), "{e}");

    // scl_slope applies before the label check: 1, 2, 3 × 0.5 → 1.5 is not a label.
    let p = tiny_file(
        &dir,
        "scaled.nii",
        &[2.0, 4.0, 3.0],
        [1, 1, 3],
        NiftiDatatype::Uint8,
    );
    patch(&p, 112, &0.5f32.to_le_bytes());
    assert_eq!(read_volume(&p).unwrap().data, vec![1.0, 2.0, 1.5]);
    assert!(read_label_map(&p).unwrap_err().to_string().contains("1.5"));
}

#[test]
fn a_label_map_that_does_not_match_its_image_is_refused_naming_both() {
    let t1 = read_volume(&slab("slab_00_t1.nii.gz")).unwrap();
    let other = read_label_map(&slab("slab_01_lobes.nii.gz")).unwrap();
    let e = check_pair(&t1, &other).unwrap_err().to_string();
    assert!(
        e.contains("slab_00_t1.nii.gz") && e.contains("slab_01_lobes.nii.gz") && e.contains("affines differ"),
        "{e}"
    );
    let aal = read_label_map(&mricron("aal.nii.gz")).unwrap();
    let e = check_pair(&t1, &aal).unwrap_err().to_string();
    assert!(e.contains("aal.nii.gz") && e.contains("dims"), "{e}");
    // Sub-tolerance differences pass.
    let mut near = read_label_map(&slab("slab_00_lobes.nii.gz")).unwrap();
    near.affine[0][3] += 5e-4;
    near.spacing[0] = f32::from_bits(near.spacing[0].to_bits() - 1);
    check_pair(&t1, &near).unwrap();
    // A label header with another voxel spacing (the same affine) is refused.
    let mut coarse = read_label_map(&slab("slab_00_lobes.nii.gz")).unwrap();
    coarse.spacing[0] *= 2.0;
    let e = check_pair(&t1, &coarse).unwrap_err().to_string();
    assert!(
        e.contains("slab_00_t1.nii.gz")
            && e.contains("slab_00_lobes.nii.gz")
            && e.contains("spacings (pixdim) differ"),
        "{e}"
    );
}

#[test]
fn write_volume_like_keeps_the_reference_affine_adjusted_for_spacing() {
    let dir = Scratch::new("nifti-like");
    let t1 = read_volume(&slab("slab_05_t1.nii.gz")).unwrap();
    let down = resample_to_spacing(&t1, [2.0, 2.0, 3.0], Interp::Trilinear).unwrap();
    let path = dir.path().join("pred.nii.gz");
    write_volume_like(
        &path,
        &t1.header,
        down.dims,
        down.spacing,
        &down.data,
        NiftiDatatype::Float32,
    )
    .unwrap();
    let back = read_volume(&path).unwrap();
    assert_eq!(back.dims, down.dims);
    assert_eq!(back.spacing, [2.0, 2.0, 3.0]);
    for (a, b) in back.affine.iter().flatten().zip(down.affine.iter().flatten()) {
        assert!((a - b).abs() < 1e-4, "{:?} vs {:?}", back.affine, down.affine);
    }
    assert_eq!(back.data, down.data);
    // Same spacing: the reference affine, unchanged; labels as uint8.
    let lobes = read_label_map(&slab("slab_05_lobes.nii.gz")).unwrap();
    let path = dir.path().join("lobes.nii.gz");
    write_volume_like(
        &path,
        &lobes.header,
        lobes.dims,
        lobes.spacing,
        &lobes.data,
        NiftiDatatype::Uint8,
    )
    .unwrap();
    let back = read_label_map(&path).unwrap();
    assert_eq!((back.affine, back.data), (lobes.affine, lobes.data));
    // Wrong data length: an error naming the file.
    let e = write_volume_like(
        &path,
        &lobes.header,
        [2, 2, 2],
        [1.0; 3],
        &[0u8; 7],
        NiftiDatatype::Uint8,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("lobes.nii.gz"), "{e}");
}

#[test]
fn a_zero_vox_offset_means_voxels_right_after_the_header() {
    let dir = Scratch::new("nifti-voxoffset");
    let p = tiny_file(&dir, "zero.nii", &[5.0, 6.0], [1, 1, 2], NiftiDatatype::Float32);
    patch(&p, 108, &0f32.to_le_bytes());
    assert_eq!(read_volume(&p).unwrap().data, vec![5.0, 6.0]);
    patch(&p, 108, &f32::NAN.to_le_bytes());
    assert!(read_volume(&p).unwrap_err().to_string().contains("vox_offset"));
}

/// A header whose dims claim ~35 TB of voxels for a file of a few bytes is refused
/// quickly, naming the file — nothing of the claimed size is allocated (the test would
/// abort on allocation failure or take minutes otherwise).
#[test]
fn a_lying_header_is_refused_without_allocating_its_claim() {
    let dir = Scratch::new("nifti-lying");
    let p = tiny_file(&dir, "huge.nii", &[1.0, 2.0], [1, 1, 2], NiftiDatatype::Float32);
    patch(&p, 40, &[3, 0, 0xff, 0x7f, 0xff, 0x7f, 0xff, 0x7f]); // dim = [3, 32767, 32767, 32767]
    let started = std::time::Instant::now();
    let err = expect_error_naming(&p, "32767³ voxels in an 8-byte payload");
    assert!(started.elapsed().as_secs() < 5, "{err}");
}
