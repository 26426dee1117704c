//! Batching: decode + transform images on a dedicated thread pool and hand out batches
//! from a background producer that stays `prefetch` batches ahead, so the model — not
//! the loader — is the bottleneck. Each sample's transform generator is derived from
//! `(seed, epoch, sample index)` ([`sample_rng`]), so a batch is bit-identical whatever
//! the thread count or scheduling. Host batches ([`HostBatch`]) become burn tensors
//! ([`Batch`]) on the consumer's thread, so no device is touched by worker threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ept_backend::Rng;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::image::decode_file;
use crate::sample::{Sample, Target, Task};
use crate::transform::Pipeline;

/// Sub-stream ids, so shuffling and augmentation never share random numbers.
const SHUFFLE_STREAM: u64 = 0x5348_5546; // "SHUF"
const AUGMENT_STREAM: u64 = 0x4155_474d; // "AUGM"

/// The augmentation generator of sample `index` in `epoch`.
pub fn sample_rng(seed: u64, epoch: u64, index: usize) -> Rng {
    Rng::new(seed).fork(AUGMENT_STREAM).fork(epoch).fork(index as u64)
}

/// How batches are formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderOptions {
    pub batch_size: usize,
    /// Reshuffle every epoch (seeded by `seed` and the epoch).
    pub shuffle: bool,
    /// Drop a last, smaller batch.
    pub drop_last: bool,
    pub seed: u64,
    /// Decode threads (the loader's own pool).
    pub threads: usize,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            batch_size: 4, // EPT recipe: batch 4 (REFERENCE.md §1 "Recipe")
            shuffle: true,
            drop_last: false,
            seed: 0,
            threads: 2,
            prefetch: 2,
        }
    }
}

/// A batch on the host: images `[B, C, H, W]` row-major, targets, and which samples.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub targets: Vec<Target>,
    /// Indices of the samples in the loader's sample list.
    pub indices: Vec<usize>,
    pub num_classes: usize,
    pub task: Task,
}

/// Batch targets as tensors.
#[derive(Debug, Clone)]
pub enum BatchTargets {
    /// Class indices `[B]` (single-label).
    Classes(Tensor<1, Int>),
    /// 0/1 flags `[B, num_classes]` (multi-label).
    MultiHot(Tensor<2>),
}

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Tensor<4>,
    pub targets: BatchTargets,
    pub indices: Vec<usize>,
}

impl HostBatch {
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// Class indices (single-label batches only).
    pub fn class_indices(&self) -> Option<Vec<i64>> {
        self.targets
            .iter()
            .map(|t| match t {
                Target::Single(c) => Some(*c as i64),
                Target::Multi(_) => None,
            })
            .collect()
    }

    /// `[B × num_classes]` 0/1 flags (one-hot for single-label batches).
    pub fn multi_hot(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.targets.len() * self.num_classes];
        for (b, t) in self.targets.iter().enumerate() {
            for c in t.classes().into_iter().filter(|&c| c < self.num_classes) {
                out[b * self.num_classes + c] = 1.0;
            }
        }
        out
    }

    /// The samples `range` of this batch (a shard or micro-batch), on the host.
    pub fn slice(&self, range: std::ops::Range<usize>) -> HostBatch {
        let per_image: usize = self.shape[1..].iter().product();
        let mut shape = self.shape;
        shape[0] = range.len();
        HostBatch {
            images: self.images[range.start * per_image..range.end * per_image].to_vec(),
            shape,
            targets: self.targets[range.clone()].to_vec(),
            indices: self.indices[range].to_vec(),
            num_classes: self.num_classes,
            task: self.task,
        }
    }

    /// Copy to `device` as burn tensors.
    pub fn to_device(&self, device: &Device) -> Batch {
        self.clone().into_device(device)
    }

    /// Move to `device` as burn tensors without copying the pixels on the host.
    pub fn into_device(self, device: &Device) -> Batch {
        let targets = self.device_targets(device);
        Batch {
            images: Tensor::<4>::from_data(TensorData::new(self.images, self.shape), device),
            targets,
            indices: self.indices,
        }
    }

    fn device_targets(&self, device: &Device) -> BatchTargets {
        match (self.task, self.class_indices()) {
            (Task::SingleLabel, Some(classes)) => BatchTargets::Classes(Tensor::<1, Int>::from_data(
                TensorData::new(classes, [self.len()]),
                device,
            )),
            _ => BatchTargets::MultiHot(Tensor::<2>::from_data(
                TensorData::new(self.multi_hot(), [self.len(), self.num_classes]),
                device,
            )),
        }
    }
}

/// Decodes, transforms and batches a list of samples.
pub struct Loader {
    samples: Arc<[Sample]>,
    pipeline: Arc<Pipeline>,
    num_classes: usize,
    task: Task,
    options: LoaderOptions,
    pool: Arc<rayon::ThreadPool>,
}

impl Loader {
    /// A loader over `samples`; every target must fit `num_classes` and share one task.
    pub fn new(
        samples: impl Into<Arc<[Sample]>>,
        num_classes: usize,
        pipeline: Pipeline,
        options: LoaderOptions,
    ) -> Result<Self, DataError> {
        let samples: Arc<[Sample]> = samples.into();
        if options.batch_size == 0 {
            return Err(DataError::Invalid("batch_size must be at least 1".into()));
        }
        pipeline
            .validate()
            .map_err(|e| DataError::Invalid(format!("transform pipeline: {e}")))?;
        let task = samples.first().map_or(Task::SingleLabel, |s| s.target.task());
        for s in samples.iter() {
            if s.target.task() != task {
                return Err(DataError::Invalid(format!(
                    "'{}': mixes single- and multi-label targets in one loader",
                    s.id
                )));
            }
            let too_big = s.target.max_class().is_some_and(|c| c >= num_classes);
            let wrong_len = matches!(&s.target, Target::Multi(f) if f.len() != num_classes);
            if too_big || wrong_len {
                return Err(DataError::Invalid(format!(
                    "'{}': target {:?} does not fit {num_classes} classes",
                    s.id, s.target
                )));
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.max(1))
            .thread_name(|i| format!("ept-data-{i}"))
            .build()
            .map_err(|e| DataError::ThreadPool(e.to_string()))?;
        Ok(Loader {
            samples,
            pipeline: Arc::new(pipeline),
            num_classes,
            task,
            options,
            pool: Arc::new(pool),
        })
    }

    /// A loader over a whole [`Dataset`].
    pub fn from_dataset(
        dataset: &Dataset,
        pipeline: Pipeline,
        options: LoaderOptions,
    ) -> Result<Self, DataError> {
        Loader::new(dataset.samples.clone(), dataset.num_classes, pipeline, options)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.samples.len(), self.options.batch_size);
        if self.options.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Sample order of `epoch`, cut into batches.
    pub fn batch_indices(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        if self.options.shuffle {
            Rng::new(self.options.seed)
                .fork(SHUFFLE_STREAM)
                .fork(epoch)
                .shuffle(&mut order);
        }
        order
            .chunks(self.options.batch_size)
            .filter(|c| !self.options.drop_last || c.len() == self.options.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Decode and transform one sample (deterministic for `(seed, epoch, index)`).
    pub fn load_one(&self, epoch: u64, index: usize) -> Result<crate::image::Image, DataError> {
        let sample = self
            .samples
            .get(index)
            .ok_or_else(|| DataError::Invalid(format!("sample index {index} out of range")))?;
        load_sample(sample, &self.pipeline, self.options.seed, epoch, index)
    }

    /// Build one batch now, in parallel on the loader's pool.
    pub fn load_batch(&self, epoch: u64, indices: &[usize]) -> Result<HostBatch, DataError> {
        build_batch(&self.shared(), epoch, indices)
    }

    /// Iterate over the batches of `epoch`, prepared in the background.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let batches = self.batch_indices(epoch);
        let (tx, rx) = sync_channel(self.options.prefetch.max(1));
        let shared = self.shared();
        let handle = std::thread::Builder::new()
            .name("ept-data-prefetch".into())
            .spawn(move || produce(shared, epoch, batches, tx));
        match handle {
            Ok(h) => EpochIter {
                rx: Some(rx),
                handle: Some(h),
                spawn_error: None,
            },
            Err(e) => EpochIter {
                rx: None,
                handle: None,
                spawn_error: Some(DataError::ThreadPool(e.to_string())),
            },
        }
    }

    fn shared(&self) -> Shared {
        Shared {
            samples: self.samples.clone(),
            pipeline: self.pipeline.clone(),
            pool: self.pool.clone(),
            seed: self.options.seed,
            num_classes: self.num_classes,
            task: self.task,
        }
    }
}

/// What the producer thread needs.
struct Shared {
    samples: Arc<[Sample]>,
    pipeline: Arc<Pipeline>,
    pool: Arc<rayon::ThreadPool>,
    seed: u64,
    num_classes: usize,
    task: Task,
}

fn load_sample(
    sample: &Sample,
    pipeline: &Pipeline,
    seed: u64,
    epoch: u64,
    index: usize,
) -> Result<crate::image::Image, DataError> {
    let img = decode_file(&sample.path)?;
    let mut rng = sample_rng(seed, epoch, index);
    pipeline
        .apply(img, &mut rng)
        .map_err(|source| DataError::Transform {
            path: sample.path.clone(),
            source,
        })
}

fn build_batch(shared: &Shared, epoch: u64, indices: &[usize]) -> Result<HostBatch, DataError> {
    let images: Vec<crate::image::Image> = shared.pool.install(|| {
        indices
            .par_iter()
            .map(|&i| match shared.samples.get(i) {
                Some(s) => load_sample(s, &shared.pipeline, shared.seed, epoch, i),
                None => Err(DataError::Invalid(format!("sample index {i} out of range"))),
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let Some(first) = images.first() else {
        return Err(DataError::Invalid("empty batch".into()));
    };
    let (c, h, w) = (first.channels, first.height, first.width);
    let mut data = Vec::with_capacity(images.len() * c * h * w);
    for (img, &i) in images.iter().zip(indices) {
        if (img.channels, img.height, img.width) != (c, h, w) {
            return Err(DataError::Invalid(format!(
                "{}: transformed to {}x{}x{}, but the batch is {c}x{h}x{w}; end the pipeline with a fixed-size crop/resize",
                shared.samples[i].path.display(),
                img.channels,
                img.height,
                img.width
            )));
        }
        data.extend_from_slice(&img.data);
    }
    Ok(HostBatch {
        images: data,
        shape: [images.len(), c, h, w],
        targets: indices
            .iter()
            .map(|&i| shared.samples[i].target.clone())
            .collect(),
        indices: indices.to_vec(),
        num_classes: shared.num_classes,
        task: shared.task,
    })
}

fn produce(
    shared: Shared,
    epoch: u64,
    batches: Vec<Vec<usize>>,
    tx: SyncSender<Result<HostBatch, DataError>>,
) {
    for indices in batches {
        let batch = build_batch(&shared, epoch, &indices);
        if tx.send(batch).is_err() {
            return; // the consumer went away
        }
    }
}

/// The batches of one epoch, in order; prepared ahead on a background thread.
pub struct EpochIter {
    rx: Option<Receiver<Result<HostBatch, DataError>>>,
    handle: Option<JoinHandle<()>>,
    spawn_error: Option<DataError>,
}

impl Iterator for EpochIter {
    type Item = Result<HostBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.spawn_error.take() {
            return Some(Err(e));
        }
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.rx = None; // unblocks the producer's send
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
