//! bf16 products on Intel AMX tiles (ept patch): detection and the 32 × 32 block kernel
//! that `bf16_gemm` runs on CPUs with AMX-BF16 (Sapphire Rapids and later), where
//! `tdpbf16ps` multiplies 16 × 32 by 32 × 16 bf16 tiles into f32 at several times the
//! f32 FMA rate.
//!
//! AMX intrinsics and target features are unstable in Rust, so the kernel is inline
//! assembly; Linux hands a process the 8 KiB tile state only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, requested once.

use std::sync::OnceLock;

use super::bf16_gemm::TILE;

/// Whether this CPU and OS run AMX-BF16 (checked once: CPUID, then the tile permission).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    // CPUID.(EAX=7,ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE.
    let leaf = core::arch::x86_64::__cpuid_count(7, 0);
    if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
        return false;
    }
    unsafe extern "C" {
        fn syscall(number: i64, ...) -> i64;
    }
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    // SAFETY: a plain syscall with integer arguments; failure is reported as -1.
    unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// The tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn full() -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        for tile in 0..8 {
            bytes[16 + 2 * tile] = 64; // bytes per row (u16, little-endian)
            bytes[48 + tile] = TILE as u8; // rows
        }
        TileConfig(bytes)
    }
}

/// The 16 `prefetcht0` lines (one per 64-byte row) of the tile `{ahead}` bytes past the
/// asm operand named `$ptr`, for [`block_kernel`]'s loop.
macro_rules! prefetch_tile {
    ($ptr:literal) => {
        concat!(
            "prefetcht0 [{", $ptr, "} + {ahead} + 0]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 64]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 128]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 192]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 256]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 320]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 384]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 448]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 512]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 576]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 640]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 704]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 768]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 832]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 896]\n",
            "prefetcht0 [{", $ptr, "} + {ahead} + 960]\n",
        )
    };
}

/// One 32 × 32 block of C = A · B over `k_tiles` tile steps, stored at `c`, rows
/// `c_row_stride` f32 apart (columns contiguous). `a0`/`a1`: the two A tile rows' first
/// tiles; `b0`/`b1`: the two B tile columns' first tiles (consecutive tiles 1 KiB apart).
/// Each step prefetches the four tiles two steps ahead into L1: the tile registers
/// cannot be double-buffered (eight in all: four accumulators, two A, two B), so a
/// `tileloadd` that misses L1 stalls the multiplies behind it (fc1-shaped product, one
/// core, scratch timing: 27.8 → 20.9 ns per `tdpbf16ps`). Prefetches past the end of
/// a buffer are harmless (they never fault).
///
/// # Safety
/// Only inside [`with_tiles`]; each pointer must address `k_tiles` packed tiles and `c`
/// a writable 32 × 32 block with the given row stride.
#[inline(always)]
pub unsafe fn block_kernel(a0: *const u32, a1: *const u32, b0: *const u32, b1: *const u32, k_tiles: usize, c: *mut f32, c_row_stride: usize) {
    unsafe {
        core::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {stride}]",
            "tileloadd tmm6, [{b0} + {stride}]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm5, [{a1} + {stride}]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tileloadd tmm7, [{b1} + {stride}]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm3, tmm5, tmm7",
            prefetch_tile!("a0"),
            prefetch_tile!("a1"),
            prefetch_tile!("b0"),
            prefetch_tile!("b1"),
            "add {a0}, 1024",
            "add {a1}, 1024",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {c_stride}], tmm0",
            "tilestored [{c1} + {c_stride}], tmm1",
            "tilestored [{c2} + {c_stride}], tmm2",
            "tilestored [{c3} + {c_stride}], tmm3",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            n = inout(reg) k_tiles => _,
            stride = in(reg) 64usize,
            ahead = in(reg) 2048usize,
            c = in(reg) c,
            c1 = in(reg) c.add(TILE),
            c2 = in(reg) c.add(TILE * c_row_stride),
            c3 = in(reg) c.add(TILE * c_row_stride + TILE),
            c_stride = in(reg) c_row_stride * 4,
            options(nostack),
        );
    }
}

/// Run `f` on this thread with the tile configuration loaded; the tile state is
/// released afterwards.
///
/// # Safety
/// [`available`] must be true (the tile instructions fault otherwise).
pub unsafe fn with_tiles<R>(f: impl FnOnce() -> R) -> R {
    let config = TileConfig::full();
    // SAFETY: the caller's contract: the CPU has AMX and the OS granted the tile state.
    unsafe { core::arch::asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack)) };
    let result = f();
    unsafe { core::arch::asm!("tilerelease", options(nostack)) };
    result
}
