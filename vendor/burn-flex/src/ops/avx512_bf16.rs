//! bf16 matrix products on AVX512-BF16 vector units (ept patch).
//!
//! `vdpbf16ps` multiplies bf16 pairs and adds both products into an f32 lane: the
//! arithmetic `MatmulPrecision::Bf16` asks for. Whether that beats the f32 GEMM depends
//! on the core: on AMD Zen 4 one 512-bit `vdpbf16ps` issues as often as one 512-bit
//! `vfmadd231ps` (3.67 vs 3.63 G instructions/s on one core, `cargo xtask bench
//! --groups isa`), so it does twice the multiply-adds per cycle; on Intel cores without
//! AMX it issues at half the FMA rate and gains nothing (those with AMX use the tile
//! kernel instead, see `bf16_gemm`).
//!
//! [`block_kernel`] computes one 32 × 32 block of C from the packed tiles of
//! `bf16_gemm` — A tiles row-major (16 rows × 16 pairs), B tiles in the pair ("VNNI")
//! layout (16 pair rows × 16 columns) — the same operands and contract as the AMX block
//! kernel. The block is done as four bands of 8 rows × 32 columns: 16 accumulators, two
//! B vectors per pair row, and each A pair broadcast straight from memory.

use core::arch::x86_64::{
    __m512, __m512bh, _mm512_dpbf16_ps, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use super::bf16_gemm::{TILE, TILE_WORDS};

/// Rows of C per register band.
const BAND_ROWS: usize = 8;
/// u32 words (bf16 pairs) in one packed tile row (A: 16 pairs of one row; B: the pair
/// of 16 columns), and pair rows per tile: 16, one zmm of words.
const TILE_WORDS_PER_ROW: usize = TILE;

/// Whether this CPU executes AVX512-BF16 (checked once by the standard library).
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
}

/// One 32 × 32 block of C = A · B over `k_tiles` tile steps, stored at `c`, rows
/// `c_row_stride` f32 apart (columns contiguous). `a0`/`a1`: the two A tile rows' first
/// tiles; `b0`/`b1`: the two B tile columns' first tiles (consecutive tiles
/// `TILE_WORDS` words apart).
///
/// # Safety
/// [`available`] must be true; each pointer must address `k_tiles` packed tiles and `c`
/// a writable 32 × 32 block with the given row stride.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn block_kernel(a0: *const u32, a1: *const u32, b0: *const u32, b1: *const u32, k_tiles: usize, c: *mut f32, c_row_stride: usize) {
    for band in 0..4 {
        let a_tile = if band < 2 { a0 } else { a1 };
        // SAFETY: rows 0..8 or 8..16 of the A tile row.
        let a = unsafe { a_tile.add((band % 2) * BAND_ROWS * TILE_WORDS_PER_ROW) };
        let mut acc: [[__m512; 2]; BAND_ROWS] = [[_mm512_setzero_ps(); 2]; BAND_ROWS];
        for t in 0..k_tiles {
            // SAFETY (whole loop): tile `t` of each operand lies inside the caller's
            // buffers; word offsets stay inside one tile.
            let (a_t, b0_t, b1_t) = unsafe { (a.add(t * TILE_WORDS), b0.add(t * TILE_WORDS), b1.add(t * TILE_WORDS)) };
            for pair in 0..TILE_WORDS_PER_ROW {
                let (left, right): (__m512bh, __m512bh) = unsafe {
                    (
                        core::mem::transmute(_mm512_loadu_si512(b0_t.add(pair * TILE_WORDS_PER_ROW).cast())),
                        core::mem::transmute(_mm512_loadu_si512(b1_t.add(pair * TILE_WORDS_PER_ROW).cast())),
                    )
                };
                for (row, sums) in acc.iter_mut().enumerate() {
                    let word = unsafe { *a_t.add(row * TILE_WORDS_PER_ROW + pair) };
                    // Every lane gets the row's pair (k even, k odd); lane j adds
                    // a_even·b_even[j] + a_odd·b_odd[j].
                    let broadcast: __m512bh = unsafe { core::mem::transmute(_mm512_set1_epi32(word as i32)) };
                    sums[0] = _mm512_dpbf16_ps(sums[0], broadcast, left);
                    sums[1] = _mm512_dpbf16_ps(sums[1], broadcast, right);
                }
            }
        }
        for (row, sums) in acc.iter().enumerate() {
            // SAFETY: row `band·8 + row` of the caller's 32 × 32 block.
            unsafe {
                let out = c.add((band * BAND_ROWS + row) * c_row_stride);
                _mm512_storeu_ps(out, sums[0]);
                _mm512_storeu_ps(out.add(TILE_WORDS_PER_ROW), sums[1]);
            }
        }
    }
}
