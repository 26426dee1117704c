//! bf16 matrix products on native bf16 hardware (ept patch).
//!
//! `MatmulPrecision::Bf16` asks for bf16 operands with f32 accumulation. Two kinds of
//! x86-64 hardware do exactly that faster than the f32 GEMM: Intel AMX tiles
//! (`tdpbf16ps`, Sapphire Rapids and later; `amx`) and, on cores that issue it at the
//! f32 FMA rate (AMD Zen 4 and later), AVX512-BF16's `vdpbf16ps` (`avx512_bf16`).
//! [`gemm_bf16`] packs both operands into bf16 tiles (rounding to nearest even, as
//! `round_to_bf16`; zero padding to whole tiles), runs the chosen [`Kernel`]'s 32 × 32
//! block over the packed tiles, and writes the f32 result. Where [`native_kernel`] is
//! `None` callers use the rounding emulation instead.

use std::mem::MaybeUninit;
use std::sync::{Arc, OnceLock};

use super::{amx, avx512_bf16};

use burn_std::Bytes;

use super::operand_cache::{MIN_CACHED_ELEMS, OperandCache};
use super::simd_math::multiversion;
use crate::parallel::SendPtr;

/// Rows of an A tile and columns of a B/C tile.
pub(crate) const TILE: usize = 16;
/// The k extent of one tile pair (32 bf16 = 64 bytes per A-tile row).
const TILE_K: usize = 32;
/// bf16 elements in one packed tile (16 × 32 bf16, 1 KiB).
const TILE_ELEMS: usize = TILE * TILE_K;
/// u32 words (bf16 pairs) in one packed tile.
pub(crate) const TILE_WORDS: usize = TILE_ELEMS / 2;
/// Bytes of packed A kept hot per pass over the columns (half a typical 2 MiB L2).
const L2_BUDGET: usize = 1 << 20;

/// A native bf16 block kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Intel AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX512-BF16 vectors (`vdpbf16ps`).
    Avx512Bf16,
}

/// The block kernel bf16 products use on this CPU, if one beats the rounding emulation
/// (checked once): AMX where the CPU and OS grant it; else AVX512-BF16 on AMD cores,
/// which issue `vdpbf16ps` as fast as an f32 FMA (twice the multiply-adds). Intel cores
/// with AVX512-BF16 but no AMX (Cooper Lake) issue it at half that rate, so there the
/// emulation on the f32 GEMM is as fast and stays.
pub fn native_kernel() -> Option<Kernel> {
    static KERNEL: OnceLock<Option<Kernel>> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        if amx::available() {
            Some(Kernel::Amx)
        } else if avx512_bf16::available() && cpu_vendor_is_amd() {
            Some(Kernel::Avx512Bf16)
        } else {
            None
        }
    })
}

/// Whether CPUID's vendor string is "AuthenticAMD".
fn cpu_vendor_is_amd() -> bool {
    let leaf = core::arch::x86_64::__cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&leaf.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&leaf.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&leaf.ecx.to_le_bytes());
    &vendor == b"AuthenticAMD"
}

/// The bf16 bit pattern nearest to `x` (ties to even, as `round_to_bf16`; NaN stays a
/// quiet NaN even when its payload sits only in the dropped low bits).
#[inline(always)]
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

/// Packed tiles (bf16 pairs: u32 keeps them 4-byte aligned) starting on a 64-byte
/// boundary, so that every 64-byte tile row is one cache line: a `tileloadd` of rows
/// that straddle two lines ran 2.6× slower from L1 (13.1 vs 5.0 ns per `tdpbf16ps`,
/// scratch timing on Sapphire Rapids), and the allocator only promises 16 bytes.
struct PackedTiles {
    words: Vec<u32>,
    /// Words before the first tile (fewer than 16, zero).
    offset: usize,
}

impl core::ops::Deref for PackedTiles {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        &self.words[self.offset..]
    }
}

/// `tiles` packed tiles, written by `fill` through the (64-byte aligned) pointer it is
/// given.
///
/// # Safety
/// `fill` must write every word of every tile (see [`tile_mut`]).
unsafe fn packed_tiles(tiles: usize, fill: impl FnOnce(SendPtr<u32>)) -> PackedTiles {
    const LINE_WORDS: usize = 64 / core::mem::size_of::<u32>();
    let mut words: Vec<u32> = Vec::with_capacity(tiles * TILE_WORDS + LINE_WORDS - 1);
    let offset = words.as_ptr().align_offset(64).min(LINE_WORDS - 1);
    words.resize(offset, 0);
    fill(SendPtr(words.as_mut_ptr().wrapping_add(offset)));
    // SAFETY: the `offset` leading words were zeroed above and `fill` wrote every tile
    // word after them (the caller's contract), all within the capacity reserved.
    unsafe { words.set_len(offset + tiles * TILE_WORDS) };
    PackedTiles { words, offset }
}

/// Two bf16 bit patterns in one word, `low` in the low half (AMX's pair order).
#[inline(always)]
fn bf16_pair(low: f32, high: f32) -> u32 {
    (bf16_bits(high) as u32) << 16 | bf16_bits(low) as u32
}

// One A tile: `rows` × `width` elements of the source, element (r, p) at
// `src + r·rs + p·cs`, rounded into `dst` row-major 16 × 32 (a row is 16 pairs
// (p even, p odd)), zero padded. Compiled per instruction set (`multiversion!`): on a
// whole row-major tile the rounding runs lane-wise on vectors.
// SAFETY (caller): `src` addresses those elements; `dst` holds TILE_WORDS.
multiversion!(unsafe pack_lhs_tile(src: *const f32, rs: isize, cs: isize, rows: usize, width: usize, dst: &mut [MaybeUninit<u32>]) {
    let at = |r: usize, p: usize| unsafe { *src.offset(r as isize * rs + p as isize * cs) };
    let value = |r: usize, p: usize| if r < rows && p < width { at(r, p) } else { 0.0 };
    let half = TILE_K / 2;
    for (r, words) in dst.chunks_exact_mut(half).enumerate() {
        if cs == 1 && r < rows && width == TILE_K {
            let row: &[f32; TILE_K] = unsafe { &*(src.offset(r as isize * rs) as *const [f32; TILE_K]) };
            for (w, word) in words.iter_mut().enumerate() {
                word.write(bf16_pair(row[2 * w], row[2 * w + 1]));
            }
        } else {
            for (w, word) in words.iter_mut().enumerate() {
                word.write(bf16_pair(value(r, 2 * w), value(r, 2 * w + 1)));
            }
        }
    }
});

// One B tile in AMX's pair layout: `width` × `cols` elements, element (p, c) at
// `src + p·rs + c·cs`; word (p/2, c) of `dst` holds the pair (p even, p odd) of column
// c; zero padded. Multiversioned like `pack_lhs_tile`: with contiguous rows (a weight
// in the forward pass) each word row is two source rows combined lane by lane; with
// contiguous columns (a transposed weight, the input gradient's `dY·Wᵀ`) each column's
// 32 values round to 16 words, scattered down the tile's word rows.
// SAFETY (caller): as `pack_lhs_tile`.
multiversion!(unsafe pack_rhs_tile(src: *const f32, rs: isize, cs: isize, width: usize, cols: usize, dst: &mut [MaybeUninit<u32>]) {
    let at = |p: usize, c: usize| unsafe { *src.offset(p as isize * rs + c as isize * cs) };
    let value = |p: usize, c: usize| if p < width && c < cols { at(p, c) } else { 0.0 };
    if cs == 1 && cols == TILE && width == TILE_K {
        for (pair, words) in dst.chunks_exact_mut(TILE).enumerate() {
            let even: &[f32; TILE] = unsafe { &*(src.offset(2 * pair as isize * rs) as *const [f32; TILE]) };
            let odd: &[f32; TILE] = unsafe { &*(src.offset((2 * pair + 1) as isize * rs) as *const [f32; TILE]) };
            for (c, word) in words.iter_mut().enumerate() {
                word.write(bf16_pair(even[c], odd[c]));
            }
        }
    } else if rs == 1 && cols == TILE && width == TILE_K {
        for c in 0..TILE {
            let column: &[f32; TILE_K] = unsafe { &*(src.offset(c as isize * cs) as *const [f32; TILE_K]) };
            let mut words = [0u32; TILE];
            for (pair, word) in words.iter_mut().enumerate() {
                *word = bf16_pair(column[2 * pair], column[2 * pair + 1]);
            }
            for (pair, word) in words.iter().enumerate() {
                dst[pair * TILE + c].write(*word);
            }
        }
    } else {
        for (pair, words) in dst.chunks_exact_mut(TILE).enumerate() {
            for (c, word) in words.iter_mut().enumerate() {
                word.write(bf16_pair(value(2 * pair, c), value(2 * pair + 1, c)));
            }
        }
    }
});

/// The packed tile at `index` of `packed` as uninitialised words.
///
/// # Safety
/// `packed` must have capacity for tile `index` and no other thread may touch it.
unsafe fn tile_mut<'a>(packed: SendPtr<u32>, index: usize) -> &'a mut [MaybeUninit<u32>] {
    unsafe { std::slice::from_raw_parts_mut(packed.0.add(index * TILE_WORDS) as *mut MaybeUninit<u32>, TILE_WORDS) }
}

/// `lhs` (m × k, element (i, p) at `i·rs + p·cs`) as bf16 A tiles: tile (i/16, p/32)
/// at `((i/16)·k_tiles + p/32)·512`, row-major 16 × 32 inside; zero padded; every
/// element written exactly once.
unsafe fn pack_lhs(lhs: *const f32, rs: isize, cs: isize, m: usize, k: usize, row_tiles: usize, k_tiles: usize, parallel: bool) -> PackedTiles {
    let src = SendPtr(lhs as *mut f32);
    let pack = |out: SendPtr<u32>, tile_row: usize| {
        let src = src;
        let rows = TILE.min(m.saturating_sub(tile_row * TILE));
        for t in 0..k_tiles {
            let p0 = t * TILE_K;
            let width = TILE_K.min(k.saturating_sub(p0));
            // SAFETY: the tile's source elements lie inside `lhs`; tile (tile_row, t)
            // belongs to this task alone.
            unsafe {
                let corner = src.0.wrapping_offset((tile_row * TILE) as isize * rs + p0 as isize * cs);
                pack_lhs_tile(corner, rs, cs, rows, width, tile_mut(out, tile_row * k_tiles + t));
            }
        }
    };
    // SAFETY: every tile row, hence every tile, is packed in full.
    unsafe { packed_tiles(row_tiles * k_tiles, |out| for_each_index(row_tiles, parallel, |tile_row| pack(out, tile_row))) }
}

/// `rhs` (k × n, element (p, j) at `p·rs + j·cs`) as bf16 B tiles in AMX's pair
/// ("VNNI") layout: tile (j/16, p/32) at `((j/16)·k_tiles + p/32)·512`; inside, row
/// `(p mod 32)/2` holds 16 columns × the pair (p even, p odd); zero padded.
unsafe fn pack_rhs(rhs: *const f32, rs: isize, cs: isize, k: usize, n: usize, col_tiles: usize, k_tiles: usize, parallel: bool) -> PackedTiles {
    let src = SendPtr(rhs as *mut f32);
    let pack = |out: SendPtr<u32>, tile_col: usize, t: usize| {
        let src = src;
        let cols = TILE.min(n.saturating_sub(tile_col * TILE));
        let p0 = t * TILE_K;
        let width = TILE_K.min(k.saturating_sub(p0));
        // SAFETY: as in `pack_lhs`; each (tile_col, t) is packed by one task.
        unsafe {
            let corner = src.0.wrapping_offset(p0 as isize * rs + (tile_col * TILE) as isize * cs);
            pack_rhs_tile(corner, rs, cs, width, cols, tile_mut(out, tile_col * k_tiles + t));
        }
    };
    // SAFETY: every (tile_col, t) tile is packed in full below.
    unsafe {
        packed_tiles(col_tiles * k_tiles, |out| {
            if cs == 1 {
                // Row-major: one task per band of 32 rows, read front to back (rows are
                // far apart, so walking down a 16-column strip would miss the TLB and
                // the prefetcher on every row).
                for_each_index(k_tiles, parallel, |t| (0..col_tiles).for_each(|tile_col| pack(out, tile_col, t)));
            } else {
                for_each_index(col_tiles, parallel, |tile_col| (0..k_tiles).for_each(|t| pack(out, tile_col, t)));
            }
        })
    }
}

/// Packed right operands kept for reuse (ept patch; see `operand_cache` for the budget):
/// ViT-B/16's weights, both orientations, take ~340 MB.
static PACK_CACHE: OperandCache<Arc<PackedTiles>> = OperandCache::new();

/// A 32 × 32 f32 block for edge tiles, cache-line aligned like the packed tiles.
#[repr(C, align(64))]
struct ScratchBlock([f32; 4 * TILE * TILE]);

/// `out = lhs · rhs` with bf16-rounded operands and f32 accumulation, on `kernel`.
/// Strides are in elements; `out` is written (never read) at `i·out_rs + j·out_cs`.
/// `rhs_source`, when the caller knows it, is the buffer `rhs` points into: the packed
/// right operand is then cached for the next product with this view of that buffer
/// (see `PACK_CACHE`).
///
/// # Safety
/// `kernel` must be [`native_kernel`]'s; the pointers must address `m × k`, `k × n` and `m × n`
/// matrices with the given strides; `out` must not overlap the inputs; `rhs` must point
/// into `rhs_source` when that is given.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_bf16(
    kernel: Kernel,
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
    rhs_source: Option<&Arc<Bytes>>,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let k_tiles = k.div_ceil(TILE_K).max(1);
    let row_pairs = m.div_ceil(2 * TILE);
    let col_pairs = n.div_ceil(2 * TILE);
    let a = unsafe { pack_lhs(lhs, lhs_rs, lhs_cs, m, k, 2 * row_pairs, k_tiles, parallel) };
    // SAFETY: the caller's extents and strides.
    let pack = || unsafe { pack_rhs(rhs, rhs_rs, rhs_cs, k, n, 2 * col_pairs, k_tiles, parallel) };
    let b = match rhs_source {
        Some(source) if k * n >= MIN_CACHED_ELEMS => {
            PACK_CACHE.get_or_derive(source, (rhs as usize, rhs_rs, rhs_cs, k, n), || {
                let packed = pack();
                let bytes = packed.len() * 4;
                (Arc::new(packed), bytes)
            })
        }
        _ => Arc::new(pack()),
    };
    let direct_store = out_cs == 1 && out_rs >= n as isize;
    let out = SendPtr(out);
    let tile_span = k_tiles * TILE_WORDS;
    // Row pairs per pass: their A tiles (2 KiB per k step each) stay in L2 while every
    // column pair's B tiles stream past them once per pass.
    let chunk = (L2_BUDGET / (2 * k_tiles * 1024)).clamp(1, row_pairs);
    for first_pair in (0..row_pairs).step_by(chunk) {
        let pairs = first_pair..(first_pair + chunk).min(row_pairs);
        for_each_index(col_pairs, parallel, |col_pair| {
            let out = out;
            let b0 = b[2 * col_pair * tile_span..].as_ptr();
            let b1 = b[(2 * col_pair + 1) * tile_span..].as_ptr();
            let j0 = col_pair * 2 * TILE;
            let cols = (2 * TILE).min(n - j0);
            let column_of_blocks = || {
                let mut block = ScratchBlock([0f32; 4 * TILE * TILE]);
                for row_pair in pairs.clone() {
                    let a0 = a[2 * row_pair * tile_span..].as_ptr();
                    let a1 = a[(2 * row_pair + 1) * tile_span..].as_ptr();
                    let i0 = row_pair * 2 * TILE;
                    let rows = (2 * TILE).min(m - i0);
                    let corner = unsafe { out.0.offset(i0 as isize * out_rs + j0 as isize * out_cs) };
                    // Whole blocks go straight into a row-major `out`, edge blocks through
                    // the scratch block.
                    let whole = direct_store && rows == 2 * TILE && cols == 2 * TILE;
                    let (c, c_row_stride) = if whole { (corner, out_rs as usize) } else { (block.0.as_mut_ptr(), 2 * TILE) };
                    // SAFETY: the packed operands hold `k_tiles` tiles per tile row and
                    // column; `c` is a whole 32 × 32 block; the kernel is this CPU's.
                    unsafe {
                        match kernel {
                            Kernel::Amx => amx::block_kernel(a0, a1, b0, b1, k_tiles, c, c_row_stride),
                            Kernel::Avx512Bf16 => avx512_bf16::block_kernel(a0, a1, b0, b1, k_tiles, c, c_row_stride),
                        }
                    }
                    if whole {
                        continue;
                    }
                    for r in 0..rows {
                        let row = unsafe { corner.offset(r as isize * out_rs) };
                        for c in 0..cols {
                            unsafe { *row.offset(c as isize * out_cs) = block.0[r * 2 * TILE + c] };
                        }
                    }
                }
            };
            match kernel {
                // SAFETY: `kernel` is `native_kernel()`'s, so AMX is available.
                Kernel::Amx => unsafe { amx::with_tiles(column_of_blocks) },
                Kernel::Avx512Bf16 => column_of_blocks(),
            }
        });
    }
}
