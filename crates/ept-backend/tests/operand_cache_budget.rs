//! The memory knob of burn-flex's frozen-operand caches (an ept patch):
//! `BURN_FLEX_OPERAND_CACHE_MB` sets each cache's budget in MiB, `0` turns caching off,
//! and a value that is not a whole number is named in a warning while the default is
//! kept. The budget is read once per process, so each case runs this test binary again
//! as a child with the variable set.

#![cfg(feature = "flex")]

use std::process::Command;

use burn::tensor::{Device, Distribution, Tensor};
use ept_backend::DeviceSpec;

const BUDGET_ENV: &str = "BURN_FLEX_OPERAND_CACHE_MB";
/// Set in a child: the budget (bytes) it must report.
const EXPECT_ENV: &str = "EPT_TEST_EXPECTED_BUDGET";
const DEFAULT_BYTES: usize = 512 << 20;

/// A product whose transposed right operand is large enough to go through the cache
/// (when it is on), checked against a naive f64 product.
fn check_transposed_product() {
    let device: Device = "flex".parse::<DeviceSpec>().expect("flex device").device();
    let (m, k, n) = (300, 256, 320);
    let a = Tensor::<2>::random([m, k], Distribution::Uniform(-1.0, 1.0), &device);
    let w = Tensor::<2>::random([n, k], Distribution::Uniform(-1.0, 1.0), &device);
    let a_values: Vec<f32> = a.to_data().try_into_vec::<f32>().expect("f32");
    let w_values: Vec<f32> = w.to_data().try_into_vec::<f32>().expect("f32");
    for _ in 0..2 {
        let product: Vec<f32> = a
            .clone()
            .matmul(w.clone().transpose())
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32");
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|t| a_values[i * k + t] as f64 * w_values[j * k + t] as f64)
                    .sum();
                let got = product[i * n + j] as f64;
                assert!(
                    (got - exact).abs() <= 1e-4 * (1.0 + exact.abs()),
                    "({i},{j}): {got} vs {exact}"
                );
            }
        }
    }
}

#[test]
fn budget_follows_the_environment() {
    if let Ok(expected) = std::env::var(EXPECT_ENV) {
        check_transposed_product();
        assert_eq!(burn_flex::operand_cache_budget_bytes().to_string(), expected);
        return;
    }
    let cases: [(Option<&str>, usize, bool); 4] = [
        (None, DEFAULT_BYTES, false),
        (Some("0"), 0, false),
        (Some(" 64 "), 64 << 20, false),
        (Some("1GB"), DEFAULT_BYTES, true),
    ];
    let this_binary = std::env::current_exe().expect("test binary path");
    for (value, expected, warns) in cases {
        let mut child = Command::new(&this_binary);
        child
            .args(["budget_follows_the_environment", "--exact", "--nocapture"])
            .env(EXPECT_ENV, expected.to_string());
        match value {
            Some(value) => child.env(BUDGET_ENV, value),
            None => child.env_remove(BUDGET_ENV),
        };
        let output = child.output().expect("run the test binary as a child");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{BUDGET_ENV}={value:?}: child failed\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("1 passed"),
            "{BUDGET_ENV}={value:?}: child ran no test\n{stdout}"
        );
        let warned = stderr.contains(&format!("{BUDGET_ENV}=\"1GB\" is not a whole number of MiB"));
        assert_eq!(warned, warns, "{BUDGET_ENV}={value:?}: stderr was\n{stderr}");
    }
}
