//! Whole-volume evaluation of a segmentation model: sliding-window inference on every
//! volume of a split, arg-max labels, per-volume Dice per class, and optionally the
//! predictions written back as NIfTI on the source grid (with the source header) and a
//! PNG overlay of the slice with the most foreground (image | truth | prediction).

use std::path::Path;

use burn::tensor::Device;
use ept_data::{LabelMap, NiftiDatatype, PreparedVolume, VolumeSet, write_volume_like};
use ept_tuning::TunedPunet;
use serde::Serialize;

use super::dice::{VolumeDice, argmax_labels, summarize, volume_dice};
use super::sliding::{HostVolume, SlidingWindow};
use crate::error::TrainError;

/// Dice of a split.
#[derive(Debug, Clone, Serialize)]
pub struct SegEvalResult {
    pub volumes: Vec<(String, VolumeDice)>,
    /// Per run class (index 0 = `classes[0]`), mean over volumes where it is present.
    pub per_class: Vec<Option<f64>>,
    /// Mean over volumes of the per-volume mean Dice.
    pub mean_dice: Option<f64>,
}

/// Dataset labels → run labels: `classes[i]` → `i + 1`, anything else → 0.
pub fn run_label_table(classes: &[usize], num_classes: usize) -> Vec<u8> {
    let mut table = vec![0u8; num_classes.max(1)];
    for (i, &c) in classes.iter().enumerate() {
        if c < table.len() {
            table[c] = (i + 1) as u8;
        }
    }
    table
}

/// Where to write predictions and overlays.
pub struct EvalOutputs<'a> {
    pub predictions: Option<&'a Path>,
    pub overlays: Option<&'a Path>,
}

/// Evaluate `model` on the volumes `indices` of `set`.
pub fn evaluate_volumes(
    model: &TunedPunet,
    set: &VolumeSet,
    indices: &[usize],
    window: &SlidingWindow,
    device: &Device,
    outputs: &EvalOutputs,
) -> Result<SegEvalResult, TrainError> {
    let _evaluating = ept_backend::memory::note_volume_evaluation();
    let classes = &model.classes;
    let table = run_label_table(classes, set.num_classes());
    let run_classes = classes.len() + 1;
    let mut volumes = Vec::new();
    for &index in indices {
        let volume = &set.volumes[index];
        let input = HostVolume {
            channels: 1,
            dims: volume.image.dims,
            data: volume.image.data.clone(),
        };
        let scores = window.infer(&input, run_classes, device, |x| {
            Ok::<_, TrainError>(model.forward(x))
        })?;
        let prediction = argmax_labels(&scores.data, run_classes);
        let truth: Vec<u8> = volume
            .labels
            .data
            .iter()
            .map(|&l| table.get(usize::from(l)).copied().unwrap_or(0))
            .collect();
        let dice = volume_dice(&prediction, &truth, run_classes);
        if let Some(dir) = outputs.predictions {
            write_prediction(dir, volume, &prediction, classes)?;
        }
        if let Some(dir) = outputs.overlays {
            write_overlay(dir, volume, &truth, &prediction)?;
        }
        volumes.push((volume.id.clone(), dice));
    }
    let dice_only: Vec<VolumeDice> = volumes.iter().map(|(_, d)| d.clone()).collect();
    let (per_class, mean_dice) = summarize(&dice_only);
    Ok(SegEvalResult {
        volumes,
        per_class,
        mean_dice,
    })
}

/// A file-name stem for a volume id (the list's image entry, possibly a path):
/// `dir/slab_03_t1.nii.gz` → `slab_03_t1`.
pub fn output_stem(id: &str) -> String {
    let name = Path::new(id).file_name().and_then(|n| n.to_str()).unwrap_or(id);
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    stem.strip_suffix(".nii").unwrap_or(stem).to_string()
}

fn write_prediction(
    dir: &Path,
    volume: &PreparedVolume,
    prediction: &[u8],
    classes: &[usize],
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::write(dir, e))?;
    let mut map: LabelMap = volume.labels.clone();
    map.data = prediction
        .iter()
        .map(|&p| {
            if p == 0 {
                0
            } else {
                classes[usize::from(p) - 1] as u16
            }
        })
        .collect();
    let source = volume.labels_to_source(&map)?;
    let data: Vec<u8> = source.data.iter().map(|&v| v as u8).collect();
    let path = dir.join(format!("{}_pred.nii.gz", output_stem(&volume.id)));
    write_volume_like(
        &path,
        &volume.image.header,
        volume.source_dims,
        volume.source_spacing,
        &data,
        NiftiDatatype::Uint8,
    )?;
    Ok(())
}

fn write_overlay(
    dir: &Path,
    volume: &PreparedVolume,
    truth: &[u8],
    prediction: &[u8],
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::write(dir, e))?;
    let [nx, ny, nz] = volume.image.dims;
    let at = |x: usize, y: usize, z: usize| (x * ny + y) * nz + z;
    let z = (0..nz)
        .max_by_key(|&z| {
            (0..nx)
                .flat_map(|x| (0..ny).map(move |y| (x, y)))
                .filter(|&(x, y)| truth[at(x, y, z)] > 0)
                .count()
        })
        .unwrap_or(0);
    // Panels side by side: image | truth | prediction; image rows = Y (flipped), columns = X.
    let mut png = image::RgbImage::new((3 * nx) as u32, ny as u32);
    for x in 0..nx {
        for y in 0..ny {
            let i = at(x, y, z);
            let grey = ((volume.image.data[i].clamp(-1.0, 1.0) + 1.0) * 127.5) as u8;
            let row = (ny - 1 - y) as u32;
            for (panel, labels) in [(0, None), (1, Some(truth)), (2, Some(prediction))] {
                let mut rgb = [grey; 3];
                if let Some(labels) = labels {
                    let class = usize::from(labels[i]);
                    if class > 0 {
                        let colour = crate::plot::class_colour(class - 1);
                        rgb = std::array::from_fn(|c| ((grey as u16 + 2 * colour[c] as u16) / 3) as u8);
                    }
                }
                png.put_pixel((panel * nx + x) as u32, row, image::Rgb(rgb));
            }
        }
    }
    let path = dir.join(format!("{}_z{z}.png", output_stem(&volume.id)));
    let mut bytes = std::io::Cursor::new(Vec::new());
    png.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| TrainError::run(&path, format!("encoding the overlay: {e}")))?;
    ept_backend::fs::write_atomic(&path, bytes.get_ref()).map_err(|e| TrainError::write(&path, e))
}
