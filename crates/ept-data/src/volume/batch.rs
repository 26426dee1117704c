//! Batches of volume crops and the epoch loader.
//!
//! A [`VolumeBatch`] holds images `[B, 1, X, Y, Z]` (f32) and labels `[B, X, Y, Z]` (Int)
//! for 3-D patches; **2-D axial slices use the same shapes with `Z = 1`**, so a 2-D model
//! squeezes the last axis (`images.squeeze_dim(4)` → `[B, 1, X, Y]`). Batches are built on
//! the host ([`HostVolumeBatch`], plain vectors, built on a thread pool) and moved to a
//! device on the consumer's thread with [`HostVolumeBatch::into_device`].
//!
//! [`VolumeLoader`] in [`LoaderMode::Train`] draws `samples_per_volume` random crops per
//! volume per epoch (foreground-weighted, augmented), shuffled per epoch; each crop's
//! generator is [`crate::loader::sample_rng`]`(seed, epoch, item)`, so batches are
//! identical whatever the thread count. [`LoaderMode::Eval`] walks every slice / tile of
//! every volume in order, without augmentation.

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ept_backend::Rng;
use rayon::prelude::*;

use super::augment::{AugmentConfig, augmented_crop};
use super::sampling::{PatchOrigin, SamplingConfig, eval_starts, random_start};
use super::source::VolumeSet;
use crate::error::DataError;
use crate::loader::sample_rng;

/// Shuffle sub-stream of the volume loader.
const SHUFFLE_STREAM: u64 = 0x564f_4c53; // "VOLS"

/// A batch on the host: images and labels in C order over `[B, X, Y, Z]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVolumeBatch {
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
    /// `[B, X, Y, Z]` (Z = 1 for slices).
    pub dims: [usize; 4],
    /// Which crop each item is.
    pub origins: Vec<PatchOrigin>,
}

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct VolumeBatch {
    /// `[B, 1, X, Y, Z]`.
    pub images: Tensor<5>,
    /// `[B, X, Y, Z]` class indices.
    pub labels: Tensor<4, Int>,
    pub origins: Vec<PatchOrigin>,
}

impl HostVolumeBatch {
    pub fn len(&self) -> usize {
        self.dims[0]
    }

    pub fn is_empty(&self) -> bool {
        self.dims[0] == 0
    }

    /// Copy to `device`.
    pub fn to_device(&self, device: &Device) -> VolumeBatch {
        self.clone().into_device(device)
    }

    /// Move to `device` as burn tensors.
    pub fn into_device(self, device: &Device) -> VolumeBatch {
        let [b, x, y, z] = self.dims;
        VolumeBatch {
            images: Tensor::<5>::from_data(TensorData::new(self.images, [b, 1, x, y, z]), device),
            labels: Tensor::<4, Int>::from_data(TensorData::new(self.labels, self.dims), device),
            origins: self.origins,
        }
    }
}

/// Random augmented crops, or every slice/tile in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaderMode {
    Train,
    Eval,
}

/// How batches are formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeLoaderOptions {
    pub batch_size: usize,
    pub mode: LoaderMode,
    /// Drop a last, smaller batch (train only).
    pub drop_last: bool,
    pub seed: u64,
    /// Threads that prepare crops.
    pub threads: usize,
}

impl Default for VolumeLoaderOptions {
    fn default() -> Self {
        VolumeLoaderOptions {
            batch_size: 2,
            mode: LoaderMode::Train,
            drop_last: false,
            seed: 0,
            threads: 2,
        }
    }
}

/// Crops batches out of a [`VolumeSet`]'s cached volumes.
pub struct VolumeLoader {
    set: Arc<VolumeSet>,
    volumes: Vec<usize>,
    sampling: SamplingConfig,
    augment: AugmentConfig,
    options: VolumeLoaderOptions,
    pool: rayon::ThreadPool,
}

impl VolumeLoader {
    /// A loader over `volumes` (indices into `set.volumes`, e.g. `set.split.train`).
    pub fn new(
        set: Arc<VolumeSet>,
        volumes: Vec<usize>,
        sampling: SamplingConfig,
        augment: AugmentConfig,
        options: VolumeLoaderOptions,
    ) -> Result<Self, DataError> {
        sampling.validate()?;
        augment.validate()?;
        if options.batch_size == 0 {
            return Err(DataError::Invalid("batch_size must be at least 1".into()));
        }
        if volumes.is_empty() {
            return Err(DataError::Invalid("volume loader: no volumes".into()));
        }
        if let Some(&bad) = volumes.iter().find(|&&v| v >= set.volumes.len()) {
            return Err(DataError::Invalid(format!(
                "volume loader: volume index {bad} out of range ({} volumes)",
                set.volumes.len()
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.max(1))
            .thread_name(|i| format!("ept-volume-{i}"))
            .build()
            .map_err(|e| DataError::ThreadPool(e.to_string()))?;
        Ok(VolumeLoader {
            set,
            volumes,
            sampling,
            augment,
            options,
            pool,
        })
    }

    /// Items per epoch.
    pub fn len(&self) -> usize {
        match self.options.mode {
            LoaderMode::Train => self.volumes.len() * self.sampling.samples_per_volume,
            LoaderMode::Eval => self
                .volumes
                .iter()
                .map(|&v| eval_starts(self.set.volumes[v].labels.dims, self.sampling.shape).len())
                .sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item indices of `epoch`, cut into batches (shuffled in training).
    pub fn batch_indices(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        let train = self.options.mode == LoaderMode::Train;
        if train {
            Rng::new(self.options.seed)
                .fork(SHUFFLE_STREAM)
                .fork(epoch)
                .shuffle(&mut order);
        }
        let b = self.options.batch_size;
        order
            .chunks(b)
            .filter(|c| !(train && self.options.drop_last) || c.len() == b)
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Where item `item` of `epoch` is cut (deterministic).
    pub fn origin(&self, epoch: u64, item: usize) -> Result<PatchOrigin, DataError> {
        self.origin_and_rng(epoch, item).map(|(origin, _)| origin)
    }

    /// The item's crop and, in training, its generator positioned after the crop was drawn
    /// (augmentation continues the same `(seed, epoch, item)` stream).
    fn origin_and_rng(&self, epoch: u64, item: usize) -> Result<(PatchOrigin, Option<Rng>), DataError> {
        let out_of_range = || DataError::Invalid(format!("item {item} out of range ({} items)", self.len()));
        let dims = self.sampling.shape.dims();
        match self.options.mode {
            LoaderMode::Train => {
                if item >= self.len() {
                    return Err(out_of_range());
                }
                let v = self.volumes[item % self.volumes.len()];
                let mut rng = sample_rng(self.options.seed, epoch, item);
                let start = random_start(&self.set.volumes[v], dims, self.sampling.p_fg, &mut rng);
                Ok((
                    PatchOrigin {
                        volume: v,
                        start,
                        dims,
                    },
                    Some(rng),
                ))
            }
            LoaderMode::Eval => {
                let mut rest = item;
                for &v in &self.volumes {
                    let starts = eval_starts(self.set.volumes[v].labels.dims, self.sampling.shape);
                    if let Some(&start) = starts.get(rest) {
                        return Ok((
                            PatchOrigin {
                                volume: v,
                                start,
                                dims,
                            },
                            None,
                        ));
                    }
                    rest -= starts.len();
                }
                Err(out_of_range())
            }
        }
    }

    /// The image and label voxels of one item (augmented in training only).
    pub fn load_item(&self, epoch: u64, item: usize) -> Result<(Vec<f32>, Vec<u16>, PatchOrigin), DataError> {
        let (origin, rng) = self.origin_and_rng(epoch, item)?;
        let vol = &self.set.volumes[origin.volume];
        let (augment, mut rng) = match rng {
            Some(rng) => (self.augment, rng),
            None => (AugmentConfig::default(), Rng::new(0)),
        };
        let (img, lab) = augmented_crop(
            &vol.image,
            &vol.labels,
            origin.start,
            origin.dims,
            &augment,
            &mut rng,
        )?;
        Ok((img, lab, origin))
    }

    /// Build one batch now (in parallel on the loader's pool).
    pub fn load_batch(&self, epoch: u64, items: &[usize]) -> Result<HostVolumeBatch, DataError> {
        if items.is_empty() {
            return Err(DataError::Invalid("empty batch".into()));
        }
        let parts = self.pool.install(|| {
            items
                .par_iter()
                .map(|&i| self.load_item(epoch, i))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let [x, y, z] = self.sampling.shape.dims();
        let per = x * y * z;
        let mut batch = HostVolumeBatch {
            images: Vec::with_capacity(per * parts.len()),
            labels: Vec::with_capacity(per * parts.len()),
            dims: [parts.len(), x, y, z],
            origins: Vec::with_capacity(parts.len()),
        };
        for (img, lab, origin) in parts {
            batch.images.extend_from_slice(&img);
            batch.labels.extend(lab.iter().map(|&l| i64::from(l)));
            batch.origins.push(origin);
        }
        Ok(batch)
    }

    /// The batches of `epoch`, in order; each is prepared when asked for.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = Result<HostVolumeBatch, DataError>> + '_ {
        self.batch_indices(epoch)
            .into_iter()
            .map(move |items| self.load_batch(epoch, &items))
    }
}
