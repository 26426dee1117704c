//! The loader benchmark: a tiny smoke run always (the function works and returns a
//! positive rate), and the full 224-px, 2-thread measurement on request:
//! `cargo test --release -p ept-data --test loader_bench -- --ignored --nocapture`.

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

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn loader_benchmark_full() {
    let opts = LoaderBenchOptions::default();
    let rate = loader_throughput(&opts).unwrap();
    println!(
        "{{\"bench\": \"loader\", \"source_px\": {}, \"size\": {}, \"threads\": {}, \"images_per_s\": {rate:.1}}}",
        opts.source_size, opts.size, opts.threads
    );
}
