//! bf16 matrix products on Intel AMX tiles (ept patch).
//!
//! `MatmulPrecision::Bf16` asks for bf16 operands with f32 accumulation; on CPUs with
//! AMX-BF16 (Sapphire Rapids and later) `tdpbf16ps` does exactly that on 16 × 32 by
//! 32 × 16 tiles at several times the f32 FMA rate. [`gemm_bf16`] packs both operands
//! into bf16 tiles (rounding to nearest even, as `round_to_bf16`; zero padding to whole
//! tiles), runs a 32 × 32 register-blocked kernel over the packed tiles, and writes the
//! f32 result. Without AMX (or when Linux refuses the tile state) `available` is false
//! and callers use the rounding emulation instead.
//!
//! AMX intrinsics and target features are unstable in Rust, so the kernel is inline
//! assembly; Linux hands a process the 8 KiB tile state only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, requested once.

use std::sync::OnceLock;

use crate::parallel::SendPtr;

/// Rows of an A tile and columns of a B/C tile.
const TILE: usize = 16;
/// The k extent of one tile pair (32 bf16 = 64 bytes per A-tile row).
const TILE_K: usize = 32;
/// u16 elements in one packed tile (16 × 32 bf16, 1 KiB).
const TILE_ELEMS: usize = TILE * TILE_K;
/// Bytes of packed A kept hot per pass over the columns (half a typical 2 MiB L2).
const L2_BUDGET: usize = 1 << 20;

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

/// The bf16 bit pattern nearest to `x` (ties to even, as `round_to_bf16`; NaN stays a
/// quiet NaN even when its payload sits only in the dropped low bits).
#[inline]
fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((bits >> 16) | 0x0040) as u16;
    if x.is_nan() { quiet_nan } else { rounded }
}

/// Run `f(i)` for `i` in `0..count`, on rayon's pool when `parallel`.
fn for_each_index(count: usize, parallel: bool, f: impl Fn(usize) + Sync + Send) {
    #[cfg(feature = "rayon")]
    if parallel && count > 1 {
        use rayon::prelude::*;
        (0..count).into_par_iter().for_each(f);
        return;
    }
    let _ = parallel;
    (0..count).for_each(f);
}

/// `lhs` (m × k, element (i, p) at `i·rs + p·cs`) as bf16 A tiles: tile (i/16, p/32)
/// at `((i/16)·k_tiles + p/32)·512`, row-major 16 × 32 inside; zero padded.
unsafe fn pack_lhs(lhs: *const f32, rs: isize, cs: isize, m: usize, k: usize, row_tiles: usize, k_tiles: usize, parallel: bool) -> Vec<u16> {
    let mut packed = vec![0u16; row_tiles * k_tiles * TILE_ELEMS];
    let out = SendPtr(packed.as_mut_ptr());
    let src = SendPtr(lhs as *mut f32);
    for_each_index(row_tiles, parallel, |tile_row| {
        let (out, src) = (out, src);
        let base = tile_row * k_tiles * TILE_ELEMS;
        let rows = TILE.min(m.saturating_sub(tile_row * TILE));
        let first = (tile_row * TILE) as isize;
        if cs == 1 {
            // Row-major: 32 contiguous values per tile row (vectorised rounding).
            for r in 0..rows {
                let row = unsafe { std::slice::from_raw_parts(src.0.offset((first + r as isize) * rs), k) };
                for (t, chunk) in row.chunks(TILE_K).enumerate() {
                    let at = base + t * TILE_ELEMS + r * TILE_K;
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(at), chunk.len()) };
                    for (d, v) in dst.iter_mut().zip(chunk) {
                        *d = bf16_bits(*v);
                    }
                }
            }
        } else {
            // Column-major or general strides: walk the contiguous direction innermost.
            for p in 0..k {
                let at = base + (p / TILE_K) * TILE_ELEMS + p % TILE_K;
                for r in 0..rows {
                    let value = unsafe { *src.0.offset((first + r as isize) * rs + p as isize * cs) };
                    unsafe { *out.0.add(at + r * TILE_K) = bf16_bits(value) };
                }
            }
        }
    });
    packed
}

/// `rhs` (k × n, element (p, j) at `p·rs + j·cs`) as bf16 B tiles in AMX's pair
/// ("VNNI") layout: tile (j/16, p/32) at `((j/16)·k_tiles + p/32)·512`; inside, row
/// `(p mod 32)/2` holds 16 columns × the pair (p even, p odd).
unsafe fn pack_rhs(rhs: *const f32, rs: isize, cs: isize, k: usize, n: usize, col_tiles: usize, k_tiles: usize, parallel: bool) -> Vec<u16> {
    let mut packed = vec![0u16; col_tiles * k_tiles * TILE_ELEMS];
    let out = SendPtr(packed.as_mut_ptr() as *mut u32);
    let src = SendPtr(rhs as *mut f32);
    let pair_at = |base: usize, p: usize| base / 2 + (p / TILE_K) * (TILE_ELEMS / 2) + ((p % TILE_K) / 2) * TILE;
    for_each_index(col_tiles, parallel, |tile_col| {
        let (out, src) = (out, src);
        let base = tile_col * k_tiles * TILE_ELEMS;
        let cols = TILE.min(n.saturating_sub(tile_col * TILE));
        let first = (tile_col * TILE) as isize;
        let value = |p: usize, c: usize| unsafe { *src.0.offset(p as isize * rs + (first + c as isize) * cs) };
        // One u32 per (pair, column): the even row's bf16 low, the odd row's high.
        let word = |even: f32, odd: f32| (bf16_bits(odd) as u32) << 16 | bf16_bits(even) as u32;
        if cs == 1 {
            for p in (0..k).step_by(2) {
                let even = unsafe { std::slice::from_raw_parts(src.0.offset(p as isize * rs + first), cols) };
                let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(pair_at(base, p)), cols) };
                if p + 1 < k {
                    let odd = unsafe { std::slice::from_raw_parts(src.0.offset((p + 1) as isize * rs + first), cols) };
                    for ((d, e), o) in dst.iter_mut().zip(even).zip(odd) {
                        *d = word(*e, *o);
                    }
                } else {
                    for (d, e) in dst.iter_mut().zip(even) {
                        *d = word(*e, 0.0);
                    }
                }
            }
        } else {
            for c in 0..cols {
                for p in (0..k).step_by(2) {
                    let odd = if p + 1 < k { value(p + 1, c) } else { 0.0 };
                    unsafe { *out.0.add(pair_at(base, p) + c) = word(value(p, c), odd) };
                }
            }
        }
    });
    packed
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

/// One 32 × 32 block of C = A · B over `k_tiles` tile steps, stored row-major into
/// `block` (32 × 32 f32). `a0`/`a1`: the two A tile rows' first tiles; `b0`/`b1`: the
/// two B tile columns' first tiles (consecutive tiles 1 KiB apart).
/// Requires the tile configuration to be loaded on this thread.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block_kernel(a0: *const u16, a1: *const u16, b0: *const u16, b1: *const u16, k_tiles: usize, block: *mut f32) {
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
            c = in(reg) block,
            c1 = in(reg) block.add(16),
            c2 = in(reg) block.add(16 * 32),
            c3 = in(reg) block.add(16 * 32 + 16),
            c_stride = in(reg) 128usize,
            options(nostack),
        );
    }
}

/// `out = lhs · rhs` with bf16-rounded operands and f32 accumulation, on AMX tiles.
/// Strides are in elements; `out` is written (never read) at `i·out_rs + j·out_cs`.
///
/// # Safety
/// [`available`] must be true; the pointers must address `m × k`, `k × n` and `m × n`
/// matrices with the given strides; `out` must not overlap the inputs.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_bf16(
    m: usize,
    n: usize,
    k: usize,
    out: *mut f32,
    out_cs: isize,
    out_rs: isize,
    lhs: *const f32,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    rhs_rs: isize,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let k_tiles = k.div_ceil(TILE_K).max(1);
    let row_pairs = m.div_ceil(2 * TILE);
    let col_pairs = n.div_ceil(2 * TILE);
    let a = unsafe { pack_lhs(lhs, lhs_rs, lhs_cs, m, k, 2 * row_pairs, k_tiles, parallel) };
    let b = unsafe { pack_rhs(rhs, rhs_rs, rhs_cs, k, n, 2 * col_pairs, k_tiles, parallel) };
    let out = SendPtr(out);
    let tile_span = k_tiles * TILE_ELEMS;
    // Row pairs per pass: their A tiles (2 KiB per k step each) stay in L2 while every
    // column pair's B tiles stream past them once per pass.
    let chunk = (L2_BUDGET / (2 * k_tiles * 1024)).clamp(1, row_pairs);
    for first_pair in (0..row_pairs).step_by(chunk) {
        let pairs = first_pair..(first_pair + chunk).min(row_pairs);
        for_each_index(col_pairs, parallel, |col_pair| {
            let out = out;
            let config = TileConfig::full();
            let mut block = [0f32; 4 * TILE * TILE];
            unsafe { core::arch::asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack)) };
            let b0 = b[2 * col_pair * tile_span..].as_ptr();
            let b1 = b[(2 * col_pair + 1) * tile_span..].as_ptr();
            let j0 = col_pair * 2 * TILE;
            let cols = (2 * TILE).min(n - j0);
            for row_pair in pairs.clone() {
                let a0 = a[2 * row_pair * tile_span..].as_ptr();
                let a1 = a[(2 * row_pair + 1) * tile_span..].as_ptr();
                unsafe { block_kernel(a0, a1, b0, b1, k_tiles, block.as_mut_ptr()) };
                let i0 = row_pair * 2 * TILE;
                for r in 0..(2 * TILE).min(m - i0) {
                    let row = unsafe { out.0.offset((i0 + r) as isize * out_rs + j0 as isize * out_cs) };
                    for c in 0..cols {
                        unsafe { *row.offset(c as isize * out_cs) = block[r * 2 * TILE + c] };
                    }
                }
            }
            unsafe { core::arch::asm!("tilerelease", options(nostack)) };
        });
    }
}
