//! Derived forms of matmul operands kept for reuse (ept patch).
//!
//! A frozen weight multiplies every batch: forward as `W`, backward as the transposed view
//! `Wᵀ`. Whatever a product derives from such an operand — the packed bf16 tiles of `bf16_gemm`, the
//! row-major copy of a transposed f32 weight — is the same every call, and deriving it
//! afresh each time cost several milliseconds per ViT block. An [`OperandCache`] keeps
//! the derived form keyed by the buffer it came from and the view read from it.
//!
//! Soundness: an entry holds only a `Weak` to the source buffer, and burn-flex mutates
//! buffers only through `Arc::get_mut` (which refuses while a `Weak` exists) or
//! `Arc::make_mut` (which then moves the data and disassociates the `Weak`): so an entry
//! whose `Weak` still upgrades to the same allocation describes unmodified data. Entries
//! whose buffer is gone are dropped at the next insertion; past the byte budget the least
//! recently used go.
//!
//! Memory knob: each cache holds at most [`DEFAULT_BUDGET_BYTES`] of payload unless the
//! environment variable [`BUDGET_ENV`] (MiB per cache, read once) says otherwise; `0`
//! turns caching off (every product derives its operands afresh: slower, leaner).

use std::sync::{Arc, Mutex, OnceLock, Weak};

use burn_std::Bytes;

/// Operands with fewer elements are derived afresh each call (cheap; not worth an entry).
pub(crate) const MIN_CACHED_ELEMS: usize = 1 << 16;

/// How an operand is read from its buffer: first element's address or offset, the two
/// strides and the two extents.
pub(crate) type OperandView = (usize, isize, isize, usize, usize);

/// One cached derived form.
struct Entry<P> {
    source: Weak<Bytes>,
    view: OperandView,
    payload: P,
    bytes: usize,
    last_use: u64,
}

/// Payload each cache may hold by default: ViT-B/16's weights, both orientations, take
/// ~340 MB as packed bf16 tiles or as row-major f32 copies.
pub(crate) const DEFAULT_BUDGET_BYTES: usize = 512 << 20;

/// The environment variable that overrides [`DEFAULT_BUDGET_BYTES`], in MiB per cache.
pub(crate) const BUDGET_ENV: &str = "BURN_FLEX_OPERAND_CACHE_MB";

/// `BURN_FLEX_OPERAND_CACHE_MB`'s value as a byte budget: `None` when unset; an error
/// naming the variable when it is not a whole number of MiB.
fn parse_budget(value: Option<&str>) -> Result<Option<usize>, String> {
    let Some(text) = value else { return Ok(None) };
    let mib: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{BUDGET_ENV}={text:?} is not a whole number of MiB"))?;
    mib.checked_mul(1 << 20)
        .map(Some)
        .ok_or_else(|| format!("{BUDGET_ENV}={text:?} is too large"))
}

/// The byte budget of each operand cache, from the environment once (a bad value is
/// reported on stderr and the default kept: a memory hint must not stop a run).
pub fn budget_bytes() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let value = std::env::var(BUDGET_ENV).ok();
        match parse_budget(value.as_deref()) {
            Ok(budget) => budget.unwrap_or(DEFAULT_BUDGET_BYTES),
            Err(message) => {
                eprintln!("warning: {message}; keeping {} MiB", DEFAULT_BUDGET_BYTES >> 20);
                DEFAULT_BUDGET_BYTES
            }
        }
    })
}

/// Recently derived forms of operands, at most [`budget_bytes`] of payload.
pub(crate) struct OperandCache<P> {
    state: Mutex<(Vec<Entry<P>>, u64)>,
}

impl<P: Clone> OperandCache<P> {
    pub(crate) const fn new() -> Self {
        Self {
            state: Mutex::new((Vec::new(), 0)),
        }
    }

    /// The form derived from `view` of `source`: the cached one when this very buffer
    /// was seen with this view, else `derive()`'s (payload, size in bytes), then cached.
    pub(crate) fn get_or_derive(
        &self,
        source: &Arc<Bytes>,
        view: OperandView,
        derive: impl FnOnce() -> (P, usize),
    ) -> P {
        let same_buffer = |entry: &Entry<P>| {
            entry.view == view && entry.source.upgrade().is_some_and(|live| Arc::ptr_eq(&live, source))
        };
        if let Ok(mut state) = self.state.lock() {
            let (entries, clock) = &mut *state;
            *clock += 1;
            if let Some(entry) = entries.iter_mut().find(|entry| same_buffer(entry)) {
                entry.last_use = *clock;
                return entry.payload.clone();
            }
        }
        let (payload, bytes) = derive();
        let budget = budget_bytes();
        if bytes > budget {
            return payload; // would be evicted at once; also the `0` = off case
        }
        if let Ok(mut state) = self.state.lock() {
            let (entries, clock) = &mut *state;
            entries.retain(|entry| entry.source.strong_count() > 0);
            entries.push(Entry {
                source: Arc::downgrade(source),
                view,
                payload: payload.clone(),
                bytes,
                last_use: *clock,
            });
            let mut total: usize = entries.iter().map(|entry| entry.bytes).sum();
            while total > budget {
                let oldest = (0..entries.len())
                    .min_by_key(|&i| entries[i].last_use)
                    .expect("over budget, so non-empty");
                total -= entries.swap_remove(oldest).bytes;
            }
        }
        payload
    }
}

