//! Process-wide run settings that the backends read: the CPU worker-thread count
//! (flex and ndarray parallelise with rayon's global pool) and the global seed.

use burn::tensor::Device;

/// Fix the number of CPU worker threads used by the CPU backends.
///
/// Must run before the first tensor operation; rayon's global pool can only be set
/// once per process, so a second call with a different number is reported as an error
/// string instead of being silently ignored.
pub fn set_cpu_threads(threads: usize) -> Result<(), String> {
    if threads == 0 {
        return Err("thread count must be at least 1".into());
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        Ok(()) => Ok(()),
        Err(_) if rayon::current_num_threads() == threads => Ok(()),
        Err(_) => Err(format!(
            "the CPU thread pool was already started with {} threads; set threads before any tensor work",
            rayon::current_num_threads()
        )),
    }
}

/// Seed the backend's random generator on `device` (parameter init, dropout, sampling
/// done through burn). Host-side randomness in ept (data sampling, augmentation) takes
/// explicit seeds and never reads global state.
pub fn seed_everything(device: &Device, seed: u64) {
    device.seed(seed);
}

/// Worker threads for data preparation: the requested number, else every core.
pub fn worker_threads(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
