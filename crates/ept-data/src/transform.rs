//! Image transforms as composable, serialisable values. A [`Pipeline`] is a list of
//! [`Transform`]s applied in order to an [`Image`] with a caller-supplied [`Rng`]; the
//! loader derives that generator from (seed, epoch, sample index), so results do not
//! depend on thread scheduling. Resizing reuses `ept_backend::resample` (PyTorch/PIL
//! semantics); crop geometry follows torchvision (`RandomResizedCrop.get_params`, its
//! 10-attempt fallback, `CenterCrop` rounding and zero padding).
//!
//! Configs write pipelines as TOML arrays of tables:
//! `transforms = [{ type = "random_resized_crop", size = 224 }, { type = "horizontal_flip" }, { type = "to_rgb" }, { type = "normalize" }]`.

use ept_backend::Rng;
use ept_backend::resample::{ResizeMode, resize_planes};
use serde::{Deserialize, Serialize};

use crate::error::TransformError;
use crate::image::Image;

/// ImageNet mean on a `[0, 1]` scale (mmcls `img_norm_cfg` mean 123.675, 116.28, 103.53 / 255).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet std on a `[0, 1]` scale (mmcls std 58.395, 57.12, 57.375 / 255).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The most elongated image `resize_shorter` accepts (long side : short side); whole-slide
/// strips and panoramas beyond it are errors rather than gigapixel resizes.
pub const MAX_ASPECT: usize = 64;

/// Resampling filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    Bilinear,
    /// PyTorch `interpolate(mode="bicubic")` without antialiasing.
    Bicubic,
    /// PIL's bicubic (what mmcls' `backend='pillow'` and torchvision `antialias=True` use).
    #[default]
    BicubicAntialias,
}

impl Interpolation {
    pub fn mode(self) -> ResizeMode {
        match self {
            Interpolation::Bilinear => ResizeMode::Bilinear,
            Interpolation::Bicubic => ResizeMode::Bicubic,
            Interpolation::BicubicAntialias => ResizeMode::BicubicAntialias,
        }
    }
}

/// An output size: `224` (square) or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Square(usize),
    HeightWidth([usize; 2]),
}

impl Size {
    pub fn hw(self) -> (usize, usize) {
        match self {
            Size::Square(s) => (s, s),
            Size::HeightWidth([h, w]) => (h, w),
        }
    }
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0] // torchvision RandomResizedCrop default
}
fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0] // torchvision RandomResizedCrop default
}
fn half() -> f64 {
    0.5
}
fn imagenet_mean() -> Vec<f32> {
    IMAGENET_MEAN.to_vec()
}
fn imagenet_std() -> Vec<f32> {
    IMAGENET_STD.to_vec()
}

/// One image operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// torchvision `RandomResizedCrop`: random area fraction in `scale`, log-uniform
    /// aspect ratio in `ratio`, 10 attempts, then a centred crop; resized to `size`.
    RandomResizedCrop {
        size: Size,
        #[serde(default = "default_scale")]
        scale: [f64; 2],
        #[serde(default = "default_ratio")]
        ratio: [f64; 2],
        #[serde(default)]
        interpolation: Interpolation,
    },
    /// Mirror left-right with probability `p` (default 0.5).
    HorizontalFlip {
        #[serde(default = "half")]
        p: f64,
    },
    /// Resize to exactly `size` (mmcls `Resize(size=384)` — what the EPT test pipeline does).
    Resize {
        size: Size,
        #[serde(default)]
        interpolation: Interpolation,
    },
    /// torchvision `Resize(int)`: shorter side to `size`, longer side `int(size × long / short)`.
    ResizeShorter {
        size: usize,
        #[serde(default)]
        interpolation: Interpolation,
    },
    /// torchvision `CenterCrop`: zero-pads when the image is smaller than `size`.
    CenterCrop { size: Size },
    /// `(x − mean) / std` per channel (one value broadcasts); ImageNet by default.
    Normalize {
        #[serde(default = "imagenet_mean")]
        mean: Vec<f32>,
        #[serde(default = "imagenet_std")]
        std: Vec<f32>,
    },
    /// Grayscale → 3 identical channels; RGB passes through.
    ToRgb,
}

fn param(transform: &'static str, message: impl Into<String>) -> TransformError {
    TransformError::Parameter {
        transform,
        message: message.into(),
    }
}

fn check_size(transform: &'static str, size: Size) -> Result<(), TransformError> {
    let (h, w) = size.hw();
    if h == 0 || w == 0 {
        return Err(param(transform, "size must be positive"));
    }
    Ok(())
}

/// Python's `int(round(x))` (round half to even).
fn py_round(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// torchvision `RandomResizedCrop.get_params`: `(top, left, height, width)` of the crop.
pub fn random_resized_crop_params(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut Rng,
) -> (usize, usize, usize, usize) {
    let area = (height * width) as f64;
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target_area = area * rng.uniform(scale[0], scale[1]);
        let aspect = rng.uniform(log_lo, log_hi).exp();
        let w = py_round((target_area * aspect).sqrt());
        let h = py_round((target_area / aspect).sqrt());
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.below(height - h + 1);
            let left = rng.below(width - w + 1);
            return (top, left, h, w);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (r_min, r_max) = (ratio[0].min(ratio[1]), ratio[0].max(ratio[1]));
    let (h, w) = if in_ratio < r_min {
        (py_round(width as f64 / r_min).min(height), width)
    } else if in_ratio > r_max {
        (height, py_round(height as f64 * r_max).min(width))
    } else {
        (height, width)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// The sub-image `[top, top+h) × [left, left+w)`, which must lie inside `img`.
fn crop(img: &Image, top: usize, left: usize, h: usize, w: usize) -> Image {
    if (top, left, h, w) == (0, 0, img.height, img.width) {
        return img.clone();
    }
    let mut data = Vec::with_capacity(img.channels * h * w);
    for c in 0..img.channels {
        let plane = img.plane(c);
        for y in top..top + h {
            data.extend_from_slice(&plane[y * img.width + left..y * img.width + left + w]);
        }
    }
    Image {
        channels: img.channels,
        height: h,
        width: w,
        data,
    }
}

fn resize(img: Image, (h, w): (usize, usize), interp: Interpolation) -> Image {
    if (h, w) == (img.height, img.width) {
        return img;
    }
    let data = resize_planes(
        &img.data,
        img.channels,
        (img.height, img.width),
        (h, w),
        interp.mode(),
    );
    Image {
        channels: img.channels,
        height: h,
        width: w,
        data,
    }
}

/// torchvision `CenterCrop`: pad with zeros to at least `(h, w)`, then crop the centre
/// with `int(round((H − h) / 2))` offsets.
pub fn center_crop(img: &Image, (h, w): (usize, usize)) -> Image {
    let padded;
    let src = if h > img.height || w > img.width {
        let (ph, pw) = (h.max(img.height), w.max(img.width));
        let (top, left) = ((ph - img.height) / 2, (pw - img.width) / 2);
        let mut data = vec![0f32; img.channels * ph * pw];
        for c in 0..img.channels {
            let plane = img.plane(c);
            for y in 0..img.height {
                let dst = (c * ph + top + y) * pw + left;
                data[dst..dst + img.width].copy_from_slice(&plane[y * img.width..(y + 1) * img.width]);
            }
        }
        padded = Image {
            channels: img.channels,
            height: ph,
            width: pw,
            data,
        };
        &padded
    } else {
        img
    };
    let top = py_round((src.height - h) as f64 / 2.0);
    let left = py_round((src.width - w) as f64 / 2.0);
    crop(src, top, left, h, w)
}

impl Transform {
    fn name(&self) -> &'static str {
        match self {
            Transform::RandomResizedCrop { .. } => "random_resized_crop",
            Transform::HorizontalFlip { .. } => "horizontal_flip",
            Transform::Resize { .. } => "resize",
            Transform::ResizeShorter { .. } => "resize_shorter",
            Transform::CenterCrop { .. } => "center_crop",
            Transform::Normalize { .. } => "normalize",
            Transform::ToRgb => "to_rgb",
        }
    }

    /// Reject parameters that could only fail later (zero sizes, empty ranges, std 0).
    pub fn validate(&self) -> Result<(), TransformError> {
        let name = self.name();
        match self {
            Transform::RandomResizedCrop {
                size, scale, ratio, ..
            } => {
                check_size(name, *size)?;
                if !(scale[0] > 0.0 && scale[0] <= scale[1] && scale[1].is_finite()) {
                    return Err(param(
                        name,
                        format!("scale must satisfy 0 < min <= max, got {scale:?}"),
                    ));
                }
                if !(ratio[0] > 0.0 && ratio[0] <= ratio[1] && ratio[1].is_finite()) {
                    return Err(param(
                        name,
                        format!("ratio must satisfy 0 < min <= max, got {ratio:?}"),
                    ));
                }
            }
            Transform::HorizontalFlip { p } => {
                if !(0.0..=1.0).contains(p) {
                    return Err(param(name, format!("p must be in [0, 1], got {p}")));
                }
            }
            Transform::Resize { size, .. } | Transform::CenterCrop { size } => check_size(name, *size)?,
            Transform::ResizeShorter { size, .. } => check_size(name, Size::Square(*size))?,
            Transform::Normalize { mean, std } => {
                if mean.is_empty() || mean.len() != std.len() {
                    return Err(param(name, "mean and std need the same, non-zero length"));
                }
                if std.iter().any(|s| !(s.is_finite() && *s != 0.0)) {
                    return Err(param(name, "std values must be finite and non-zero"));
                }
            }
            Transform::ToRgb => {}
        }
        Ok(())
    }

    /// Apply to `img`, drawing any randomness from `rng`.
    pub fn apply(&self, mut img: Image, rng: &mut Rng) -> Result<Image, TransformError> {
        img.validate()?;
        let name = self.name();
        Ok(match self {
            Transform::RandomResizedCrop {
                size,
                scale,
                ratio,
                interpolation,
            } => {
                let (top, left, h, w) =
                    random_resized_crop_params(img.height, img.width, *scale, *ratio, rng);
                resize(crop(&img, top, left, h, w), size.hw(), *interpolation)
            }
            Transform::HorizontalFlip { p } => {
                if rng.chance(*p) {
                    for row in img.data.chunks_exact_mut(img.width) {
                        row.reverse();
                    }
                }
                img
            }
            Transform::Resize { size, interpolation } => resize(img, size.hw(), *interpolation),
            Transform::ResizeShorter { size, interpolation } => {
                let (h, w) = (img.height, img.width);
                let (short, long) = (h.min(w), h.max(w));
                // An image 200,000,000 × 1 px would resize to gigapixels: refuse shapes
                // more elongated than any medical image this pipeline is for.
                if long > MAX_ASPECT * short {
                    return Err(TransformError::Parameter {
                        transform: name,
                        message: format!(
                            "the image is {h}×{w} px, more than {MAX_ASPECT}:1; crop or pad it to a sensible shape first"
                        ),
                    });
                }
                let out = if h <= w {
                    (*size, size * w / h)
                } else {
                    (size * h / w, *size)
                };
                resize(img, out, *interpolation)
            }
            Transform::CenterCrop { size } => center_crop(&img, size.hw()),
            Transform::Normalize { mean, std } => {
                if mean.len() != 1 && mean.len() != img.channels {
                    return Err(TransformError::Channels {
                        transform: name,
                        expected: mean.len().to_string(),
                        found: img.channels,
                    });
                }
                let n = img.height * img.width;
                for (c, plane) in img.data.chunks_exact_mut(n).enumerate() {
                    let (m, s) = if mean.len() == 1 {
                        (mean[0], std[0])
                    } else {
                        (mean[c], std[c])
                    };
                    let inv = 1.0 / s;
                    plane.iter_mut().for_each(|v| *v = (*v - m) * inv);
                }
                img
            }
            Transform::ToRgb => match img.channels {
                3 => img,
                1 => {
                    let mut data = Vec::with_capacity(img.data.len() * 3);
                    for _ in 0..3 {
                        data.extend_from_slice(&img.data);
                    }
                    Image {
                        channels: 3,
                        data,
                        ..img
                    }
                }
                found => {
                    return Err(TransformError::Channels {
                        transform: name,
                        expected: "1 or 3".into(),
                        found,
                    });
                }
            },
        })
    }
}

/// Transforms applied in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pipeline {
    pub steps: Vec<Transform>,
}

impl Pipeline {
    /// A validated pipeline.
    pub fn new(steps: Vec<Transform>) -> Result<Self, TransformError> {
        let p = Pipeline { steps };
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), TransformError> {
        self.steps.iter().try_for_each(Transform::validate)
    }

    /// The MedFMC/EPT training pipeline (mmcls config `_base_/datasets/*.py`):
    /// RandomResizedCrop (bicubic, PIL) → horizontal flip 0.5 → 3 channels → ImageNet norm.
    pub fn medfmc_train(size: usize) -> Self {
        Pipeline {
            steps: vec![
                Transform::RandomResizedCrop {
                    size: Size::Square(size),
                    scale: default_scale(),
                    ratio: default_ratio(),
                    interpolation: Interpolation::BicubicAntialias,
                },
                Transform::HorizontalFlip { p: 0.5 },
                Transform::ToRgb,
                Transform::Normalize {
                    mean: imagenet_mean(),
                    std: imagenet_std(),
                },
            ],
        }
    }

    /// The MedFMC/EPT test pipeline: resize to `size × size` (mmcls `Resize(size=int)`
    /// squashes, no crop) → 3 channels → ImageNet norm.
    pub fn medfmc_test(size: usize) -> Self {
        Pipeline {
            steps: vec![
                Transform::Resize {
                    size: Size::Square(size),
                    interpolation: Interpolation::BicubicAntialias,
                },
                Transform::ToRgb,
                Transform::Normalize {
                    mean: imagenet_mean(),
                    std: imagenet_std(),
                },
            ],
        }
    }

    /// The timm/torchvision evaluation pipeline: shorter side to `size / 0.875`
    /// (256 for 224), centre crop `size` → 3 channels → ImageNet norm.
    pub fn center_crop_eval(size: usize) -> Self {
        Pipeline {
            steps: vec![
                Transform::ResizeShorter {
                    size: (size as f64 / 0.875).floor() as usize,
                    interpolation: Interpolation::BicubicAntialias,
                },
                Transform::CenterCrop {
                    size: Size::Square(size),
                },
                Transform::ToRgb,
                Transform::Normalize {
                    mean: imagenet_mean(),
                    std: imagenet_std(),
                },
            ],
        }
    }

    pub fn apply(&self, mut img: Image, rng: &mut Rng) -> Result<Image, TransformError> {
        for step in &self.steps {
            img = step.apply(img, rng)?;
        }
        Ok(img)
    }
}
