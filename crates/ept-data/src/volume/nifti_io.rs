//! NIfTI-1 reading and writing (`.nii` and `.nii.gz`, detected by the gzip magic bytes,
//! not the name). The `nifti` crate parses the header and decodes voxels (both byte
//! orders); this module adds the checks a training run needs — 3-D only (4-D with one
//! time point is accepted), finite voxels, integer labels, bounded reads of truncated or
//! corrupt files — and reorders voxels from NIfTI's x-fastest order to our C order.
//!
//! The affine is the sform when `sform_code > 0`, else the qform when `qform_code > 0`
//! (NIfTI-1 "method 2"), else `diag(pixdim)` ("method 1", origin 0). Intensities get
//! `scl_slope`/`scl_inter` applied when the slope is finite and non-zero (as nibabel).
//!
//! Writing builds the 348-byte header from a reference header (the source file's), with
//! new dims, datatype, spacing and affine: the sform carries the exact affine; the qform
//! keeps the reference rotation (quaternion, qfac) with the new spacing and origin.
//! Files are gzip-compressed in memory (mtime 0, so output is reproducible) and written
//! with `ept_backend::fs::write_atomic`.

use std::io::{self, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use nifti::volume::InMemNiftiVolume;
use nifti::{DataElement, NiftiError, NiftiHeader, NiftiType};

use super::{Affine, LabelMap, Volume, check_grid, rescaled_affine, voxel_count};
use crate::error::DataError;

/// Size of a NIfTI-1 header, and the offset of the voxels in a file we write.
const HEADER_BYTES: usize = 348;
const DATA_OFFSET: usize = 352;
/// Affines of an image and its labels may differ by this much (mm) per entry.
pub const AFFINE_TOLERANCE_MM: f64 = 1e-3;
/// Largest extension block we skip before the voxels (vox_offset sanity bound).
const MAX_VOX_OFFSET: f32 = (1u64 << 31) as f32;

/// Voxel type of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NiftiDatatype {
    Uint8,
    Int16,
    Uint16,
    Int32,
    Float32,
}

impl NiftiDatatype {
    /// The NIfTI-1 `datatype` code (nifti1.h `DT_*`).
    pub fn code(self) -> i16 {
        match self {
            NiftiDatatype::Uint8 => 2,
            NiftiDatatype::Int16 => 4,
            NiftiDatatype::Int32 => 8,
            NiftiDatatype::Float32 => 16,
            NiftiDatatype::Uint16 => 512,
        }
    }

    fn bytes(self) -> usize {
        match self {
            NiftiDatatype::Uint8 => 1,
            NiftiDatatype::Int16 | NiftiDatatype::Uint16 => 2,
            NiftiDatatype::Int32 | NiftiDatatype::Float32 => 4,
        }
    }

    /// Inclusive value range of an integer type.
    fn range(self) -> Option<(f64, f64)> {
        match self {
            NiftiDatatype::Uint8 => Some((0.0, 255.0)),
            NiftiDatatype::Int16 => Some((-32768.0, 32767.0)),
            NiftiDatatype::Uint16 => Some((0.0, 65535.0)),
            NiftiDatatype::Int32 => Some((i32::MIN as f64, i32::MAX as f64)),
            NiftiDatatype::Float32 => None,
        }
    }
}

/// A header and its voxels, straight from a file.
struct RawNifti {
    header: NiftiHeader,
    dims: [usize; 3],
    volume: InMemNiftiVolume,
    datatype: NiftiType,
}

/// Read an image: voxels as f32 (scaled), C order, spacing from pixdim, the affine, and
/// the header. Non-finite voxels are an error naming the file and their count.
pub fn read_volume(path: &Path) -> Result<Volume<f32>, DataError> {
    let raw = read_raw(path)?;
    let mut non_finite = 0usize;
    let (geometry, values) = decode(raw, path, |v| {
        let v = v as f32;
        if !v.is_finite() {
            non_finite += 1;
        }
        v
    })?;
    if non_finite > 0 {
        return Err(DataError::nifti(
            path,
            format!("{non_finite} voxels are not finite numbers (NaN or infinite)"),
        ));
    }
    Ok(geometry.into_volume(values, path))
}

/// Read a label map: every voxel must be a finite, non-negative integer ≤ 65535 (after
/// scaling); anything else is an error naming the file, the count and an example.
pub fn read_label_map(path: &Path) -> Result<LabelMap, DataError> {
    let raw = read_raw(path)?;
    let (mut bad, mut example) = (0usize, None);
    let (geometry, labels) = decode(raw, path, |v| {
        if v.is_finite() && v >= 0.0 && v <= u16::MAX as f64 && v.fract() == 0.0 {
            v as u16
        } else {
            bad += 1;
            example.get_or_insert(v);
            0
        }
    })?;
    if let Some(v) = example {
        return Err(DataError::nifti(
            path,
            format!(
                "not a label map: {bad} voxels are not integers in 0..=65535 (e.g. {v}); labels must be finite, non-negative integers"
            ),
        ));
    }
    Ok(geometry.into_volume(labels, path))
}

/// Fail unless `image` and `labels` share dims and (within [`AFFINE_TOLERANCE_MM`]) the
/// affine and the voxel spacing (pixdim); the error names both files. Spacings within
/// the tolerance may still differ in their last bits: resample the labels with the
/// image's spacing, or the two grids can round to different sizes.
pub fn check_pair<T, U>(image: &Volume<T>, labels: &Volume<U>) -> Result<(), DataError> {
    let err = |problem: String| DataError::VolumePair {
        image: image.path.clone(),
        labels: labels.path.clone(),
        problem,
    };
    if image.dims != labels.dims {
        return Err(err(format!(
            "image dims {:?} differ from label dims {:?}",
            image.dims, labels.dims
        )));
    }
    let diff = image.affine[..3]
        .iter()
        .flatten()
        .zip(labels.affine[..3].iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    if diff.is_nan() || diff > AFFINE_TOLERANCE_MM {
        return Err(err(format!(
            "affines differ by {diff} mm (> {AFFINE_TOLERANCE_MM}): image {:?}, labels {:?}",
            &image.affine[..3],
            &labels.affine[..3]
        )));
    }
    let spacing_diff = image
        .spacing
        .iter()
        .zip(&labels.spacing)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0f64, f64::max);
    if spacing_diff.is_nan() || spacing_diff > AFFINE_TOLERANCE_MM {
        return Err(err(format!(
            "voxel spacings (pixdim) differ by {spacing_diff} mm (> {AFFINE_TOLERANCE_MM}): image {:?}, labels {:?}",
            image.spacing, labels.spacing
        )));
    }
    Ok(())
}

/// Write `volume` (its affine, spacing and header metadata) to `path`; `.gz` names are
/// gzip-compressed. Integer types round to nearest; values out of the type's range or
/// non-finite are an error naming the file.
pub fn write_volume<T: Copy + Into<f64>>(
    path: &Path,
    volume: &Volume<T>,
    datatype: NiftiDatatype,
) -> Result<(), DataError> {
    let bytes = encode(
        path,
        &volume.header,
        volume.dims,
        volume.spacing,
        &volume.affine,
        &volume.data,
        datatype,
    )?;
    store(path, &bytes)
}

/// Write `data` (C order over `dims`) on the grid of `reference` resampled to `spacing`:
/// the reference affine with its columns scaled by `spacing / reference spacing` and its
/// origin moved so the grids share the corner of voxel 0 (the convention of
/// [`super::resample`]; with the reference spacing the affine is unchanged). Used to
/// write predictions back next to their source file.
pub fn write_volume_like<T: Copy + Into<f64>>(
    path: &Path,
    reference: &NiftiHeader,
    dims: [usize; 3],
    spacing: [f32; 3],
    data: &[T],
    datatype: NiftiDatatype,
) -> Result<(), DataError> {
    let ref_spacing =
        header_spacing(reference).map_err(|m| DataError::nifti(path, format!("reference header: {m}")))?;
    let scale: [f64; 3] = std::array::from_fn(|k| f64::from(spacing[k]) / f64::from(ref_spacing[k]));
    let offset = scale.map(|s| 0.5 * s - 0.5);
    let affine = rescaled_affine(&header_affine(reference), scale, offset);
    let bytes = encode(path, reference, dims, spacing, &affine, data, datatype)?;
    store(path, &bytes)
}

/// The affine a header describes (sform, else qform, else `diag(pixdim)`).
pub fn header_affine(h: &NiftiHeader) -> Affine {
    if h.sform_code > 0 {
        let row = |r: [f32; 4]| r.map(f64::from);
        [row(h.srow_x), row(h.srow_y), row(h.srow_z), [0.0, 0.0, 0.0, 1.0]]
    } else if h.qform_code > 0 {
        qform_affine(h)
    } else {
        let mut a = super::diagonal_affine([h.pixdim[1], h.pixdim[2], h.pixdim[3]].map(f32::abs));
        a[3][3] = 1.0;
        a
    }
}

/// NIfTI-1 method 2: rotation from the quaternion (b, c, d), scaled by pixdim, with the
/// third column times qfac = pixdim[0] (0 counts as 1).
fn qform_affine(h: &NiftiHeader) -> Affine {
    let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
    let a2 = 1.0 - (b * b + c * c + d * d);
    let (a, b, c, d) = if a2 < 1e-7 {
        // nifti1_io: a ≈ 0, renormalise (b, c, d)
        let n = (b * b + c * c + d * d).sqrt().max(f64::MIN_POSITIVE);
        (0.0, b / n, c / n, d / n)
    } else {
        (a2.sqrt(), b, c, d)
    };
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let s = [h.pixdim[1], h.pixdim[2], h.pixdim[3]].map(|p| f64::from(p).abs());
    let s = [s[0], s[1], s[2] * qfac];
    let offset = [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64];
    let mut out = [[0.0; 4]; 4];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = r[i][j] * s[j];
        }
        out[i][3] = offset[i];
    }
    out[3][3] = 1.0;
    out
}

fn header_spacing(h: &NiftiHeader) -> Result<[f32; 3], String> {
    let s = [h.pixdim[1], h.pixdim[2], h.pixdim[3]].map(f32::abs);
    if s.iter().any(|v| !v.is_finite() || *v == 0.0) {
        return Err(format!(
            "voxel spacing (pixdim[1..4]) {s:?} must be positive and finite"
        ));
    }
    Ok(s)
}

/// The geometry part of a file, before the voxels are converted.
struct Geometry {
    header: NiftiHeader,
    dims: [usize; 3],
    spacing: [f32; 3],
    affine: Affine,
}

impl Geometry {
    fn into_volume<T>(self, data: Vec<T>, path: &Path) -> Volume<T> {
        Volume {
            dims: self.dims,
            spacing: self.spacing,
            affine: self.affine,
            data,
            header: self.header,
            path: path.to_path_buf(),
        }
    }
}

fn describe(e: &NiftiError) -> String {
    match e {
        NiftiError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            "not a NIfTI-1 file: it ends before the 348-byte header does (truncated or empty)".into()
        }
        NiftiError::Io(io) => {
            format!("cannot read the header: the file is truncated or its gzip data corrupt ({io})")
        }
        NiftiError::InvalidFormat => "not a NIfTI-1 file (no `n+1`/`ni1` magic in the header)".into(),
        other => format!("invalid NIfTI-1 header: {other}"),
    }
}

fn read_raw(path: &Path) -> Result<RawNifti, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let gz = bytes.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read + '_> = if gz {
        Box::new(MultiGzDecoder::new(bytes.as_slice()))
    } else {
        Box::new(bytes.as_slice())
    };
    let header = NiftiHeader::from_reader(&mut reader).map_err(|e| DataError::nifti(path, describe(&e)))?;
    let fail = |m: String| DataError::nifti(path, m);
    if header.sizeof_hdr != HEADER_BYTES as i32 {
        return Err(fail(
            if header.sizeof_hdr == 540 || header.sizeof_hdr.swap_bytes() == 540 {
                "NIfTI-2 files are not supported; save as NIfTI-1".into()
            } else if header.sizeof_hdr.swap_bytes() == HEADER_BYTES as i32 {
                // The reader takes a dim[0] outside 1..=7 as the sign of the other byte
                // order, so a bad dim[0] shows up as a byte-swapped sizeof_hdr.
                format!(
                    "invalid dim[0] = {} in the header (the number of dimensions, 1 to 7)",
                    header.dim[0].swap_bytes() as i16
                )
            } else {
                format!(
                    "not a NIfTI-1 file (sizeof_hdr = {}, expected 348)",
                    header.sizeof_hdr
                )
            },
        ));
    }
    if &header.magic == b"ni1\0" {
        return Err(fail(
            "a header-only `.hdr`/`.img` pair is not supported; convert it to a single `.nii`/`.nii.gz`"
                .into(),
        ));
    }
    let ndim = usize::from(header.dim[0]);
    let all = header.dim.get(1..=ndim.min(7)).unwrap_or(&[]);
    // dim is a signed short in the format; the reader hands it over unsigned.
    if !(1..=7).contains(&ndim) || all.iter().any(|&d| d as i16 <= 0) {
        return Err(fail(format!(
            "invalid dims {:?} in the header (each used dimension must be at least 1)",
            header.dim.map(|d| d as i16)
        )));
    }
    if ndim < 3 || all[3..].iter().any(|&d| d != 1) {
        return Err(fail(format!(
            "is {ndim}-D with dims {all:?}; only 3-D volumes (or 4-D with a single time point) are supported"
        )));
    }
    let dims = [all[0], all[1], all[2]].map(usize::from);
    let datatype = header
        .data_type()
        .map_err(|_| fail(format!("unknown voxel datatype code {}", header.datatype)))?;
    if !matches!(
        datatype,
        NiftiType::Uint8
            | NiftiType::Int8
            | NiftiType::Uint16
            | NiftiType::Int16
            | NiftiType::Uint32
            | NiftiType::Int32
            | NiftiType::Uint64
            | NiftiType::Int64
            | NiftiType::Float32
            | NiftiType::Float64
    ) {
        return Err(fail(format!(
            "voxel datatype {datatype:?} is not supported (expected a real scalar type)"
        )));
    }
    if !header.vox_offset.is_finite() || header.vox_offset < 0.0 || header.vox_offset > MAX_VOX_OFFSET {
        return Err(fail(format!("invalid vox_offset {}", header.vox_offset)));
    }
    // Skip the 4-byte extension flag and any extensions; voxels start at vox_offset, and
    // never before byte 352 (some writers leave vox_offset 0 in single files).
    let skip = (header.vox_offset as u64).max(DATA_OFFSET as u64) - HEADER_BYTES as u64;
    let skipped = io::copy(&mut (&mut reader).take(skip), &mut io::sink()).map_err(|e| {
        fail(format!(
            "cannot read the header extensions: the file is truncated or its gzip data corrupt ({e})"
        ))
    })?;
    if skipped != skip {
        return Err(fail(format!(
            "truncated: the file ends inside the header extensions (vox_offset {})",
            header.vox_offset
        )));
    }
    let nbytes = voxel_count(dims)
        .filter(|&n| n <= super::MAX_VOXELS)
        .and_then(|n| n.checked_mul(datatype.size_of()))
        .ok_or_else(|| {
            fail(format!(
                "dims {dims:?} are too large (at most {} voxels)",
                super::MAX_VOXELS
            ))
        })?;
    let mut raw = Vec::new();
    raw.try_reserve(nbytes.min(256 << 20))
        .map_err(|_| fail(format!("cannot allocate memory for {nbytes} bytes of voxels")))?;
    (&mut reader)
        .take(nbytes as u64)
        .read_to_end(&mut raw)
        .map_err(|e| {
            fail(format!(
                "cannot read the voxels: the file is truncated or its gzip data corrupt ({e})"
            ))
        })?;
    if raw.len() != nbytes {
        return Err(fail(format!(
            "truncated: {} of the {nbytes} voxel bytes that dims {dims:?} x {datatype:?} need",
            raw.len()
        )));
    }
    if gz {
        // Read to the end of the gzip stream so its CRC-32 and length are verified:
        // corrupted deflate data can otherwise decode to plausible wrong voxels.
        io::copy(&mut reader, &mut io::sink())
            .map_err(|e| fail(format!("corrupt gzip data (checksum or stream error): {e}")))?;
    }
    let volume = InMemNiftiVolume::from_raw_fields(
        header.dim,
        datatype,
        header.scl_slope,
        header.scl_inter,
        raw,
        header.endianness,
    )
    .map_err(|e| fail(format!("invalid voxel data: {e}")))?;
    Ok(RawNifti {
        header,
        dims,
        volume,
        datatype,
    })
}

/// Convert voxels to `V` through f64 (after `scl_slope`/`scl_inter`), reordered to C order.
fn decode<V>(
    raw: RawNifti,
    path: &Path,
    mut f: impl FnMut(f64) -> V,
) -> Result<(Geometry, Vec<V>), DataError> {
    let h = &raw.header;
    let spacing = header_spacing(h).map_err(|m| DataError::nifti(path, m))?;
    let affine = header_affine(h);
    if affine[..3].iter().flatten().any(|v| !v.is_finite()) {
        return Err(DataError::nifti(
            path,
            format!("the affine is not finite: {:?}", &affine[..3]),
        ));
    }
    let (slope, inter) = (f64::from(h.scl_slope), f64::from(h.scl_inter));
    let scaled = slope.is_finite() && slope != 0.0;
    let inter = if inter.is_finite() { inter } else { 0.0 };
    let mut g = |v: f64| f(if scaled { v * slope + inter } else { v });
    let dims = raw.dims;
    let bad = |e: NiftiError| DataError::nifti(path, format!("cannot decode voxels: {e}"));
    let vol = raw.volume;
    let data = match raw.datatype {
        NiftiType::Uint8 => reorder(typed::<u8>(vol).map_err(bad)?, dims, |v| g(f64::from(v))),
        NiftiType::Int8 => reorder(typed::<i8>(vol).map_err(bad)?, dims, |v| g(f64::from(v))),
        NiftiType::Uint16 => reorder(typed::<u16>(vol).map_err(bad)?, dims, |v| g(f64::from(v))),
        NiftiType::Int16 => reorder(typed::<i16>(vol).map_err(bad)?, dims, |v| g(f64::from(v))),
        NiftiType::Uint32 => reorder(typed::<u32>(vol).map_err(bad)?, dims, |v| g(f64::from(v))),
        NiftiType::Int32 => reorder(typed::<i32>(vol).map_err(bad)?, dims, |v| g(f64::from(v))),
        NiftiType::Uint64 => reorder(typed::<u64>(vol).map_err(bad)?, dims, |v| g(v as f64)),
        NiftiType::Int64 => reorder(typed::<i64>(vol).map_err(bad)?, dims, |v| g(v as f64)),
        NiftiType::Float32 => reorder(typed::<f32>(vol).map_err(bad)?, dims, |v| g(f64::from(v))),
        NiftiType::Float64 => reorder(typed::<f64>(vol).map_err(bad)?, dims, &mut g),
        other => {
            return Err(DataError::nifti(
                path,
                format!("voxel datatype {other:?} is not supported"),
            ));
        }
    };
    Ok((
        Geometry {
            header: raw.header,
            dims,
            spacing,
            affine,
        },
        data,
    ))
}

fn typed<T: DataElement>(vol: InMemNiftiVolume) -> Result<Vec<T>, NiftiError> {
    vol.into_nifti_typed_data::<T>()
}

/// NIfTI order (x fastest) → C order (z fastest).
fn reorder<S: Copy, V>(src: Vec<S>, [nx, ny, nz]: [usize; 3], mut f: impl FnMut(S) -> V) -> Vec<V> {
    let mut out = Vec::with_capacity(src.len());
    for x in 0..nx {
        for y in 0..ny {
            let base = x + nx * y;
            for z in 0..nz {
                out.push(f(src[base + nx * ny * z]));
            }
        }
    }
    out
}

/// The bytes of a NIfTI-1 file (gzip when `path` ends in `.gz`).
fn encode<T: Copy + Into<f64>>(
    path: &Path,
    reference: &NiftiHeader,
    dims: [usize; 3],
    spacing: [f32; 3],
    affine: &Affine,
    data: &[T],
    datatype: NiftiDatatype,
) -> Result<Vec<u8>, DataError> {
    let fail = |m: String| DataError::nifti(path, m);
    check_grid(dims, spacing, data.len()).map_err(|e| fail(e.to_string()))?;
    if dims.iter().any(|&d| d > i16::MAX as usize) {
        return Err(fail(format!(
            "dims {dims:?} exceed NIfTI-1's limit of 32767 per axis"
        )));
    }
    if affine[..3].iter().flatten().any(|v| !v.is_finite()) {
        return Err(fail(format!("the affine is not finite: {:?}", &affine[..3])));
    }
    let mut out = Vec::with_capacity(DATA_OFFSET + data.len() * datatype.bytes());
    write_header(&mut out, reference, dims, spacing, affine, datatype);
    out.extend_from_slice(&[0; DATA_OFFSET - HEADER_BYTES]); // no extensions
    let [nx, ny, nz] = dims;
    let (mut bad, mut example) = (0usize, None);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let v: f64 = data[(x * ny + y) * nz + z].into();
                let ok = v.is_finite()
                    && datatype
                        .range()
                        .is_none_or(|(lo, hi)| (lo..=hi).contains(&v.round()));
                if !ok {
                    bad += 1;
                    example.get_or_insert(v);
                }
                let r = v.round();
                match datatype {
                    NiftiDatatype::Uint8 => out.push(r as u8),
                    NiftiDatatype::Int16 => out.extend_from_slice(&(r as i16).to_le_bytes()),
                    NiftiDatatype::Uint16 => out.extend_from_slice(&(r as u16).to_le_bytes()),
                    NiftiDatatype::Int32 => out.extend_from_slice(&(r as i32).to_le_bytes()),
                    NiftiDatatype::Float32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
                }
            }
        }
    }
    if let Some(v) = example {
        return Err(fail(format!(
            "{bad} voxels (e.g. {v}) are non-finite or do not fit {datatype:?}; nothing written"
        )));
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        let mut enc = GzEncoder::new(Vec::with_capacity(out.len() / 4), Compression::default());
        enc.write_all(&out)
            .and_then(|()| enc.finish())
            .map_err(|e| fail(format!("gzip: {e}")))
    } else {
        Ok(out)
    }
}

fn store(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    ept_backend::fs::write_atomic(path, bytes).map_err(|e| DataError::io(path, e))
}

/// The little-endian NIfTI-1 header (nifti1.h field order and offsets).
fn write_header(
    out: &mut Vec<u8>,
    r: &NiftiHeader,
    dims: [usize; 3],
    spacing: [f32; 3],
    affine: &Affine,
    datatype: NiftiDatatype,
) {
    fn f32s(out: &mut Vec<u8>, vs: &[f32]) {
        vs.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    fn fixed(out: &mut Vec<u8>, bytes: &[u8], len: usize) {
        let n = bytes.len().min(len);
        out.extend_from_slice(&bytes[..n]);
        out.resize(out.len() + len - n, 0);
    }
    let start = out.len();
    out.extend_from_slice(&(HEADER_BYTES as i32).to_le_bytes());
    fixed(out, &[], 10 + 18); // data_type, db_name (unused ANALYZE fields)
    out.extend_from_slice(&0i32.to_le_bytes()); // extents
    out.extend_from_slice(&0i16.to_le_bytes()); // session_error
    out.push(b'r'); // regular
    out.push(r.dim_info);
    let dim = [3, dims[0], dims[1], dims[2], 1, 1, 1, 1];
    dim.iter()
        .for_each(|&d| out.extend_from_slice(&(d as i16).to_le_bytes()));
    f32s(out, &[r.intent_p1, r.intent_p2, r.intent_p3]);
    out.extend_from_slice(&r.intent_code.to_le_bytes());
    out.extend_from_slice(&datatype.code().to_le_bytes());
    out.extend_from_slice(&((datatype.bytes() * 8) as i16).to_le_bytes());
    out.extend_from_slice(&0i16.to_le_bytes()); // slice_start
    let qfac = if r.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    f32s(
        out,
        &[qfac, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0],
    );
    f32s(out, &[DATA_OFFSET as f32, 1.0, 0.0]); // vox_offset, scl_slope, scl_inter
    out.extend_from_slice(&0i16.to_le_bytes()); // slice_end
    out.push(0); // slice_code
    out.push(if r.xyzt_units == 0 { 2 } else { r.xyzt_units }); // 2 = mm
    f32s(out, &[0.0, 0.0, 0.0, 0.0]); // cal_max, cal_min, slice_duration, toffset
    out.extend_from_slice(&0i32.to_le_bytes()); // glmax
    out.extend_from_slice(&0i32.to_le_bytes()); // glmin
    fixed(out, &r.descrip, 80);
    fixed(out, &r.aux_file, 24);
    let (qform_code, sform_code) = match (r.qform_code, r.sform_code) {
        (q, s) if q <= 0 && s <= 0 => (0, 2), // no xform in the reference: write ours as "aligned"
        (q, s) => (q.max(0), s.max(0)),
    };
    out.extend_from_slice(&qform_code.to_le_bytes());
    out.extend_from_slice(&sform_code.to_le_bytes());
    let origin = [affine[0][3], affine[1][3], affine[2][3]].map(|v| v as f32);
    f32s(out, &[r.quatern_b, r.quatern_c, r.quatern_d]);
    f32s(out, &origin);
    for row in &affine[..3] {
        f32s(out, &row.map(|v| v as f32));
    }
    fixed(out, &r.intent_name, 16);
    out.extend_from_slice(b"n+1\0");
    debug_assert_eq!(out.len() - start, HEADER_BYTES);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ept-nifti-unit-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_then_read_round_trips_values_geometry_and_order() {
        let dir = scratch("rt");
        let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut v = Volume::new([2, 3, 4], [0.5, 1.0, 2.0], data).unwrap();
        v.affine[0][3] = -10.0;
        for (name, dt) in [
            ("a.nii", NiftiDatatype::Float32),
            ("a.nii.gz", NiftiDatatype::Float32),
        ] {
            let p = dir.join(name);
            write_volume(&p, &v, dt).unwrap();
            let back = read_volume(&p).unwrap();
            assert_eq!(back.dims, v.dims);
            assert_eq!(back.spacing, v.spacing);
            assert_eq!(back.affine, v.affine);
            assert_eq!(back.data, v.data);
        }
        let labels = v.map(|&x| (x + 3.0) as u16);
        let p = dir.join("l.nii.gz");
        write_volume(&p, &labels, NiftiDatatype::Uint8).unwrap();
        assert_eq!(read_label_map(&p).unwrap().data, labels.data);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn out_of_range_values_are_refused_and_nothing_is_written() {
        let dir = scratch("range");
        let v = Volume::new([1, 1, 2], [1.0; 3], vec![3.0f32, 300.0]).unwrap();
        let p = dir.join("x.nii.gz");
        let e = write_volume(&p, &v, NiftiDatatype::Uint8)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.nii.gz") && e.contains("Uint8"), "{e}");
        assert!(!p.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn qform_identity_quaternion_gives_scaled_axes() {
        let mut h = NiftiHeader {
            sform_code: 0,
            qform_code: 1,
            pixdim: [-1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0],
            quatern_x: 5.0,
            ..NiftiHeader::default()
        };
        let a = header_affine(&h);
        assert_eq!(a[0], [2.0, 0.0, 0.0, 5.0]);
        assert_eq!(a[1], [0.0, 3.0, 0.0, 0.0]);
        assert_eq!(a[2], [0.0, 0.0, -4.0, 0.0]);
        // 180° about x (b = 1): y and z flip.
        h.quatern_b = 1.0;
        h.pixdim[0] = 1.0;
        let a = header_affine(&h);
        assert_eq!([a[0][0], a[1][1], a[2][2]], [2.0, -3.0, -4.0]);
    }
}
