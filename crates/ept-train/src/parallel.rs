//! Data-parallel and micro-batched gradients. A batch is cut into shards, one per device
//! (`ept-cli --device cuda:0,cuda:1 train …`), and each shard, optionally, into
//! micro-batches of at most `train.micro_batch_size` samples (gradient accumulation: the
//! memory of a small batch, the update of the large one). Every piece runs forward and
//! backward on a replica of the model forked onto its device, its mean loss weighted by
//! its share of the batch; burn's `GradientsAccumulator` sums the pieces' gradients on the
//! primary device, where the one optimizer step happens. For a loss that is a mean over
//! samples the sum is the gradient of the whole batch (tested against the one-piece
//! step); layers that use batch statistics would see their piece only (the ViT has none).
//!
//! Devices run concurrently (a thread each); the micro-batches of one device run in
//! turn. Gradients are gathered on one device rather than all-reduced between peers:
//! burn 0.22 implements its collective `all_reduce` for its CubeCL GPU backends only —
//! the CPU backends leave it unimplemented — so a gather works on every backend ept
//! builds, at the cost of one gradient transfer per device and step.

use std::ops::Range;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::ToElement;
use burn::tensor::{Device, Tensor};

/// How one batch is cut: which devices take a shard each, and the largest piece a
/// device runs at once.
#[derive(Debug, Clone)]
pub struct BatchSplit {
    /// Autodiff devices; the first is the primary (model, optimizer, gradients).
    pub devices: Vec<Device>,
    /// At most this many samples per forward/backward (`None`: a device's whole shard).
    pub micro_batch: Option<usize>,
}

/// One piece of a batch: the device that runs it and its samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub device: usize,
    pub samples: Range<usize>,
}

impl BatchSplit {
    /// One device, whole batches: the plain training step.
    pub fn single(device: Device) -> Self {
        BatchSplit {
            devices: vec![device],
            micro_batch: None,
        }
    }

    /// The pieces of a batch of `len` samples: contiguous shards as equal as possible
    /// (the first `len % devices` one sample larger; devices beyond `len` get none), each
    /// cut into micro-batches.
    pub fn pieces(&self, len: usize) -> Vec<Piece> {
        let devices = self.devices.len().max(1);
        let mut pieces = Vec::new();
        let mut start = 0;
        for device in 0..devices {
            let shard = len / devices + usize::from(device < len % devices);
            let step = self.micro_batch.unwrap_or(shard).max(1);
            let end = start + shard;
            let mut at = start;
            while at < end {
                let stop = (at + step).min(end);
                pieces.push(Piece {
                    device,
                    samples: at..stop,
                });
                at = stop;
            }
            start = end;
        }
        pieces
    }
}

/// The mean loss of a batch of `len` samples and its gradients on the primary device.
///
/// `piece_loss(model, samples, device)` must return the mean loss over `samples` computed
/// with `model` (already on `device`). With one piece this is exactly
/// `loss.backward()` on the model itself — no fork, no weighting — so single-device runs
/// are unchanged bit for bit.
pub fn batch_gradients<M, F>(
    model: &M,
    len: usize,
    split: &BatchSplit,
    piece_loss: &F,
) -> (f32, GradientsParams)
where
    M: Module + Clone + Send,
    F: Fn(&M, Range<usize>, &Device) -> Tensor<1> + Sync,
{
    let primary = &split.devices[0];
    let pieces = split.pieces(len);
    if let [piece] = pieces.as_slice()
        && piece.device == 0
    {
        let loss = piece_loss(model, piece.samples.clone(), primary);
        let value = loss.clone().into_scalar::<f32>().to_f32();
        return (value, GradientsParams::from_grads(loss.backward(), model));
    }

    let per_device: Vec<(f32, GradientsParams)> = std::thread::scope(|scope| {
        let handles: Vec<_> = split
            .devices
            .iter()
            .enumerate()
            .map(|(index, device)| {
                let mine: Vec<Range<usize>> = pieces
                    .iter()
                    .filter(|p| p.device == index)
                    .map(|p| p.samples.clone())
                    .collect();
                let replica = model.clone();
                scope.spawn(move || device_gradients(replica, device, &mine, len, primary, piece_loss))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });

    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut value = 0f32;
    for (loss, grads) in per_device {
        value += loss;
        accumulator.accumulate(model, grads);
    }
    (value, accumulator.grads())
}

/// One device's share: its pieces in turn on a replica forked onto it, the gradients
/// summed there and moved to the primary device once.
fn device_gradients<M, F>(
    replica: M,
    device: &Device,
    pieces: &[Range<usize>],
    len: usize,
    primary: &Device,
    piece_loss: &F,
) -> (f32, GradientsParams)
where
    M: Module,
    F: Fn(&M, Range<usize>, &Device) -> Tensor<1>,
{
    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut value = 0f32;
    if pieces.is_empty() {
        return (value, accumulator.grads());
    }
    // `fork` detaches: the replica's parameters are fresh leaves of its own graph.
    let replica = replica.fork(device);
    for samples in pieces {
        let weight = samples.len() as f32 / len as f32;
        let loss = piece_loss(&replica, samples.clone(), device).mul_scalar(weight);
        value += loss.clone().into_scalar::<f32>().to_f32();
        accumulator.accumulate(&replica, GradientsParams::from_grads(loss.backward(), &replica));
    }
    (value, accumulator.grads().to_device(primary, &replica))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(devices: usize, micro_batch: Option<usize>) -> BatchSplit {
        BatchSplit {
            devices: vec![Device::flex().autodiff(); devices],
            micro_batch,
        }
    }

    fn ranges(pieces: &[Piece]) -> Vec<(usize, usize, usize)> {
        pieces
            .iter()
            .map(|p| (p.device, p.samples.start, p.samples.end))
            .collect()
    }

    #[test]
    fn pieces_cover_the_batch_once_in_order() {
        assert_eq!(ranges(&split(1, None).pieces(8)), [(0, 0, 8)]);
        assert_eq!(ranges(&split(2, None).pieces(7)), [(0, 0, 4), (1, 4, 7)]);
        assert_eq!(
            ranges(&split(2, Some(3)).pieces(8)),
            [(0, 0, 3), (0, 3, 4), (1, 4, 7), (1, 7, 8)]
        );
        assert_eq!(
            ranges(&split(1, Some(4)).pieces(10)),
            [(0, 0, 4), (0, 4, 8), (0, 8, 10)]
        );
        // More devices than samples: the extra devices get nothing.
        assert_eq!(ranges(&split(3, None).pieces(2)), [(0, 0, 1), (1, 1, 2)]);
        for (devices, micro, len) in [(3, Some(2), 11), (4, None, 13), (2, Some(1), 5)] {
            let pieces = split(devices, micro).pieces(len);
            let mut next = 0;
            for p in &pieces {
                assert_eq!(p.samples.start, next);
                assert!(!p.samples.is_empty());
                assert!(micro.is_none_or(|m| p.samples.len() <= m));
                next = p.samples.end;
            }
            assert_eq!(next, len);
        }
    }
}
