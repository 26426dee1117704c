use burn::tensor::{Distribution, Tensor};
use ept_backend::DeviceSpec;
use std::time::Instant;
fn main() {
    ept_backend::memory::keep_tensor_buffers();
    let device = "flex".parse::<DeviceSpec>().unwrap().device();
    for (m, k, n) in [
        (1576, 768, 2304),
        (1576, 768, 3072),
        (1576, 3072, 768),
        (1576, 2304, 768),
        (1576, 768, 768),
    ] {
        let a = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), &device);
        let mut times = vec![];
        for _ in 0..15 {
            let t = Instant::now();
            let c = a.clone().matmul(b.clone());
            let _ = c.slice([0..1, 0..1]).into_data();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = times[7];
        println!(
            "{m}x{k}x{n}: {:.2} ms  {:.0} GF/s",
            med * 1e3,
            2.0 * (m * k * n) as f64 / med / 1e9
        );
    }
}
