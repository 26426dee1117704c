//! `--groups isa`: the single-core peak of the three AVX-512 multiply-add instructions a
//! CPU GEMM can be built on — f32 `vfmadd231ps`, AVX512-BF16 `vdpbf16ps` (bf16 pairs
//! into f32) and AVX512-FP16 `vfmadd231ph` (f16 into f16) — each measured with 12
//! independent accumulators, so throughput, not latency, bounds it. This is the
//! evidence for what reduced precision can and cannot buy on a given machine: where
//! `vdpbf16ps` issues at half the rate of `vfmadd231ps` (Intel), a bf16 GEMM on it
//! cannot beat an f32 one (only AMX can); where it issues as fast (AMD Zen 4), its
//! doubled multiply-adds are what burn-flex's AVX512-BF16 kernel runs on.
//! Instructions the CPU lacks (per `/proc/cpuinfo`) are skipped.

use std::time::Instant;

use serde_json::json;

/// Iterations of the 12-instruction loop body per timing.
const ITERATIONS: u64 = 20_000_000;

/// One AVX-512 multiply-add form: its mnemonic, the cpuinfo flag it needs and the
/// floating-point operations one instruction performs on a 512-bit register.
struct Instruction {
    mnemonic: &'static str,
    cpu_flag: &'static str,
    flops: f64,
    run: unsafe fn(u64),
}

/// Twelve independent `$op zmmN, zmm12, zmm13` per iteration, `n` iterations.
macro_rules! peak_loop {
    ($name:ident, $op:literal, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(n: u64) {
            unsafe {
                std::arch::asm!(
                    "vpxord zmm12, zmm12, zmm12",
                    "vpxord zmm13, zmm13, zmm13",
                    "2:",
                    concat!($op, " zmm0, zmm12, zmm13"),
                    concat!($op, " zmm1, zmm12, zmm13"),
                    concat!($op, " zmm2, zmm12, zmm13"),
                    concat!($op, " zmm3, zmm12, zmm13"),
                    concat!($op, " zmm4, zmm12, zmm13"),
                    concat!($op, " zmm5, zmm12, zmm13"),
                    concat!($op, " zmm6, zmm12, zmm13"),
                    concat!($op, " zmm7, zmm12, zmm13"),
                    concat!($op, " zmm8, zmm12, zmm13"),
                    concat!($op, " zmm9, zmm12, zmm13"),
                    concat!($op, " zmm10, zmm12, zmm13"),
                    concat!($op, " zmm11, zmm12, zmm13"),
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) n => _,
                    out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                    out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
                    out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                    out("zmm12") _, out("zmm13") _,
                    options(nostack),
                );
            }
        }
    };
}

peak_loop!(fma_f32, "vfmadd231ps", "avx512f");
peak_loop!(dot_bf16, "vdpbf16ps", "avx512f,avx512bf16");
peak_loop!(fma_f16, "vfmadd231ph", "avx512f,avx512fp16");

/// Measure and report each instruction the CPU has (JSON lines; a table on stderr).
pub fn isa_bench(json_only: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let has = |flag: &str| flags.split_whitespace().any(|word| word == flag);
        let instructions = [
            Instruction {
                mnemonic: "vfmadd231ps",
                cpu_flag: "avx512f",
                flops: 32.0,
                run: fma_f32,
            },
            Instruction {
                mnemonic: "vdpbf16ps",
                cpu_flag: "avx512_bf16",
                flops: 64.0,
                run: dot_bf16,
            },
            Instruction {
                mnemonic: "vfmadd231ph",
                cpu_flag: "avx512_fp16",
                flops: 64.0,
                run: fma_f16,
            },
        ];
        for instruction in &instructions {
            if !has(instruction.cpu_flag) {
                if !json_only {
                    eprintln!(
                        "  {:<12} skipped: no {} in /proc/cpuinfo",
                        instruction.mnemonic, instruction.cpu_flag
                    );
                }
                continue;
            }
            // SAFETY: the CPU reports the instruction set the loop uses.
            unsafe { (instruction.run)(ITERATIONS / 10) }; // warm-up (clock ramp)
            let start = Instant::now();
            unsafe { (instruction.run)(ITERATIONS) };
            let seconds = start.elapsed().as_secs_f64();
            let per_second = 12.0 * ITERATIONS as f64 / seconds;
            let gflops = per_second * instruction.flops / 1e9;
            println!(
                "{}",
                json!({"bench": "isa_peak", "instruction": instruction.mnemonic, "threads": 1,
                    "instructions_per_s": per_second, "gflops": gflops, "impl": "ept"})
            );
            if !json_only {
                eprintln!(
                    "  {:<12} 1 core  {:>6.2} G instructions/s  {:>7.1} GFLOP/s",
                    instruction.mnemonic,
                    per_second / 1e9,
                    gflops
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    if !json_only {
        eprintln!("  isa: x86-64 only; skipped");
    }
}
