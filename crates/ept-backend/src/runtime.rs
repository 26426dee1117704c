//! Process-wide run settings that the backends read: the CPU worker-thread count
//! (flex and ndarray parallelise with rayon's global pool), the global seed and the
//! CPU backend's environment variables.

use burn::tensor::Device;

/// Worker threads per core beyond which a thread count is refused (a typo, not a
/// setting: 100,000 threads take minutes just to start).
pub const MAX_THREADS_PER_CORE: usize = 8;

/// Read the CPU backend's environment settings now (`BURN_FLEX_OPERAND_CACHE_MB`), so
/// that a bad value is warned about when the program starts, not at the first product
/// that would use a cache (which a short run may never reach).
pub fn read_backend_env() {
    #[cfg(feature = "flex")]
    let _ = burn_flex::operand_cache_budget_bytes();
}

/// Fix the number of CPU worker threads used by the CPU backends.
///
/// Must run before the first tensor operation; rayon's global pool can only be set
/// once per process, so a second call with a different number is reported as an error
/// string instead of being silently ignored.
pub fn set_cpu_threads(threads: usize) -> Result<(), String> {
    if threads == 0 {
        return Err("thread count must be at least 1".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = MAX_THREADS_PER_CORE * cores;
    if threads > most {
        return Err(format!(
            "{threads} threads is more than {MAX_THREADS_PER_CORE} per core ({most} on this machine's {cores} cores): \
             so many threads only add start-up time and contention"
        ));
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
