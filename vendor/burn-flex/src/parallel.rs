//! Row-chunked parallelism for the generic element-wise kernels (ept patch).
//!
//! The SIMD add/sub/mul/div kernels already split very large buffers across rayon's
//! pool, but the closure-based paths (`unary_op`, `scalar_op`, `binary_op` without a
//! SIMD hint, and the broadcast loop nests in `zip`) ran on the calling thread only.
//! Those carry the expensive element functions — `erf` inside GELU and its backward,
//! `exp` — so on a 2-core machine a ViT training step spent over half its wall time on
//! one core. [`for_each_chunk`] hands such a loop to rayon in contiguous chunks once it
//! is large enough to repay the hand-off; below that, or without the `rayon` feature,
//! it runs in place as before. Results are identical: every element is computed by the
//! same function exactly once, only on another thread.
//!
//! [`new_rows`] and [`zeroed_vec`] allocate outputs the same way: a fresh buffer used to
//! be zero-filled by one `memset` on the calling thread before a parallel kernel
//! overwrote it (softmax, layer norm) or before a scatter (autodiff's slice backward);
//! on 2 cores that serial pass left the other core idle. Now each chunk zeroes its own
//! range inside its task, right before writing it.

/// Elements below which a kernel stays on the calling thread (64 Ki: ~10 µs of the
/// cheapest closures, several times rayon's dispatch cost).
pub(crate) const PARALLEL_MIN_ELEMS: usize = 1 << 16;

/// Split `len` elements into contiguous `(start, end)` chunks and run `f` on each,
/// in parallel when worthwhile. `f` must only touch the elements of its chunk.
#[inline]
pub(crate) fn for_each_chunk(len: usize, f: impl Fn(usize, usize) + Sync + Send) {
    for_each_row_chunk(len, 1, f)
}

/// As [`for_each_chunk`] over `rows` rows of `row_elems` elements each: chunks are
/// whole rows, `f` gets the row range `[start, end)`.
#[inline]
pub(crate) fn for_each_row_chunk(rows: usize, row_elems: usize, f: impl Fn(usize, usize) + Sync + Send) {
    #[cfg(feature = "rayon")]
    {
        let threads = rayon::current_num_threads();
        if rows > 1 && rows.saturating_mul(row_elems) >= PARALLEL_MIN_ELEMS && threads > 1 {
            use rayon::prelude::*;
            // A few chunks per thread balance uneven progress; chunks of at least 64
            // elements keep SIMD inner loops and cache lines whole.
            let mut chunk = rows.div_ceil(threads * 4);
            if row_elems < 64 {
                chunk = chunk.next_multiple_of(64usize.div_ceil(row_elems.max(1)));
            }
            (0..rows.div_ceil(chunk)).into_par_iter().for_each(|i| {
                let start = i * chunk;
                f(start, (start + chunk).min(rows));
            });
            return;
        }
    }
    f(0, rows);
}

/// A raw pointer that may cross threads; each chunk writes a disjoint range.
pub(crate) struct SendPtr<T>(pub *mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

// SAFETY: users only dereference disjoint ranges per chunk (see `for_each_chunk`).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The mutable sub-slice `[start, end)` of the buffer this pointer starts.
    ///
    /// # Safety
    /// `[start, end)` must lie inside the buffer and no other live reference may
    /// overlap it.
    #[inline]
    pub(crate) unsafe fn slice<'a>(self, start: usize, end: usize) -> &'a mut [T] {
        unsafe { core::slice::from_raw_parts_mut(self.0.add(start), end - start) }
    }
}

/// `dst[i] = op(dst[i])` over the whole slice, chunked across threads.
#[inline]
pub(crate) fn map_inplace<T: Copy + Send + Sync>(dst: &mut [T], op: impl Fn(T) -> T + Sync + Send) {
    let ptr = SendPtr(dst.as_mut_ptr());
    for_each_chunk(dst.len(), |start, end| {
        // SAFETY: chunks are disjoint sub-ranges of `dst`, borrowed mutably here.
        for x in unsafe { ptr.slice(start, end) } {
            *x = op(*x);
        }
    });
}

/// `dst[i] = op(dst[i], src[i])`, chunked across threads. `src.len() >= dst.len()`.
#[inline]
pub(crate) fn zip_inplace<T: Copy + Send + Sync, S: Copy + Send + Sync>(
    dst: &mut [T],
    src: &[S],
    op: impl Fn(T, S) -> T + Sync + Send,
) {
    assert!(src.len() >= dst.len());
    let ptr = SendPtr(dst.as_mut_ptr());
    for_each_chunk(dst.len(), |start, end| {
        // SAFETY: as in `map_inplace`.
        let out = unsafe { ptr.slice(start, end) };
        for (d, &s) in out.iter_mut().zip(&src[start..end]) {
            *d = op(*d, s);
        }
    });
}

/// A new vector of `len` elements, element `i` being `f(i)`, filled chunk-parallel.
#[inline]
pub(crate) fn collect_indexed<T: Send + Sync>(len: usize, f: impl Fn(usize) -> T + Sync + Send) -> alloc::vec::Vec<T> {
    let mut out = alloc::vec::Vec::with_capacity(len);
    let ptr = SendPtr(out.spare_capacity_mut().as_mut_ptr());
    for_each_chunk(len, |start, end| {
        // SAFETY: disjoint ranges of the reserved capacity.
        for (i, slot) in unsafe { ptr.slice(start, end) }.iter_mut().enumerate() {
            slot.write(f(start + i));
        }
    });
    // SAFETY: every index in 0..len was written exactly once above.
    unsafe { out.set_len(len) };
    out
}

/// `op` of every element of a strided view (its `blocks`: contiguous runs, in order) as a
/// new row-major vector; runs are filled chunk-parallel. Replaces a single-threaded
/// element-by-element walk (e.g. attention's `q·scale` on the head view of the fused qkv
/// projection).
pub(crate) fn collect_blocks<E: Copy + Send + Sync, T: Send + Sync>(
    src: &[E],
    blocks: &crate::layout::StridedBlocks<'_>,
    op: impl Fn(E) -> T + Sync + Send,
) -> alloc::vec::Vec<T> {
    let block_starts: alloc::vec::Vec<usize> = blocks.block_starts().collect();
    let block_len = blocks.block_len();
    let len = block_starts.len() * block_len;
    let mut out = alloc::vec::Vec::with_capacity(len);
    let ptr = SendPtr(out.spare_capacity_mut().as_mut_ptr());
    for_each_row_chunk(block_starts.len(), block_len, |first, last| {
        // SAFETY: blocks [first, last) own output elements [first·len, last·len).
        let dst = unsafe { ptr.slice(first * block_len, last * block_len) };
        for (run_out, &start) in dst.chunks_exact_mut(block_len.max(1)).zip(&block_starts[first..last]) {
            for (slot, &x) in run_out.iter_mut().zip(&src[start..start + block_len]) {
                slot.write(op(x));
            }
        }
    });
    // SAFETY: every block, hence every element of 0..len, was written exactly once.
    unsafe { out.set_len(len) };
    out
}

/// Rows of at most this many elements are zeroed and filled together by [`new_rows`], so
/// the zeroes are still in L1/L2 when the kernel overwrites them.
const FILL_BLOCK_ELEMS: usize = 8 * 1024;

/// A new vector of `rows · row_elems` elements written by `fill(first_row, last_row,
/// out)`, chunk-parallel. Each block of rows is zero-initialised just before `fill` sees
/// it (a reference to uninitialised floats would be unsound), so `fill` may leave
/// elements untouched and they read as zero.
pub(crate) fn new_rows<T: bytemuck::Zeroable + Copy + Send + Sync>(
    rows: usize,
    row_elems: usize,
    fill: impl Fn(usize, usize, &mut [T]) + Sync + Send,
) -> alloc::vec::Vec<T> {
    let len = rows * row_elems;
    let mut out = alloc::vec::Vec::with_capacity(len);
    let ptr = SendPtr(out.spare_capacity_mut().as_mut_ptr());
    let block_rows = (FILL_BLOCK_ELEMS / row_elems.max(1)).max(1);
    for_each_row_chunk(rows, row_elems, |first, last| {
        let mut start = first;
        while start < last {
            let end = (start + block_rows).min(last);
            // SAFETY: rows [start, end) are this task's alone; the block is zeroed (a
            // valid bit pattern for `Zeroable` T) before it is viewed as `[T]`.
            let block = unsafe {
                let uninit = ptr.slice(start * row_elems, end * row_elems);
                core::ptr::write_bytes(uninit.as_mut_ptr(), 0, uninit.len());
                core::slice::from_raw_parts_mut(uninit.as_mut_ptr() as *mut T, uninit.len())
            };
            fill(start, end, block);
            start = end;
        }
    });
    // SAFETY: every element of 0..len was zeroed above (and possibly overwritten).
    unsafe { out.set_len(len) };
    out
}

/// A new vector of `len` zeros, zeroed chunk-parallel when large ([`new_rows`] with
/// nothing written over the zeros).
pub(crate) fn zeroed_vec<T: bytemuck::Zeroable + Copy + Send + Sync>(len: usize) -> alloc::vec::Vec<T> {
    new_rows(len, 1, |_, _, _| {})
}
