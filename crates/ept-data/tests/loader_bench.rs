//! The loader benchmark's smoke test: the function works and returns a positive rate.
//! The measurement itself is `cargo xtask bench --groups loader`.

use ept_data::bench::{LoaderBenchOptions, loader_throughput};

#[test]
fn loader_benchmark_smoke() {
    let opts = LoaderBenchOptions {
        images: 6,
        source_size: 48,
        size: 32,
        threads: 2,
        batch_size: 4,
        epochs: 1,
    };
    let rate = loader_throughput(&opts).unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    let bad = LoaderBenchOptions { images: 0, ..opts };
    assert!(loader_throughput(&bad).is_err());
}
