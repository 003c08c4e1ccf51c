//! The allocator's settings, shared by `idgw` and the benchmark binaries that run the
//! pipeline (they include this file), so a benchmark measures what the product runs.

/// How long mimalloc keeps freed memory before handing it back to the kernel.
///
/// mimalloc's own default is 1,000 ms. The pipeline frees buffers of megabytes all the time
/// (Arrow batches, Parquet pages, compressed column chunks) and asks for the same sizes again
/// a little later; after a second, the memory was already returned, and taking it back cost
/// a page fault and a zeroed page per 4 KiB. Replaying 962,047 events: 325,000 page faults
/// against 195,000 (the rest are first touches of the working set) and a third less system
/// time (docs/benchmarks.md, "mimalloc's purge delay"). Ten seconds keeps a busy worker's
/// buffers and still gives an idle worker's memory back.
pub const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// mimalloc's environment variable for the same option: when set, the operator's value wins.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// mimalloc's number for its `purge_delay` option (`mi_option_e` in mimalloc.h, version 3).
/// The Rust bindings name no constant for it; the test below checks it still means purge
/// delay in the mimalloc that is linked.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set. Call it first in `main`,
/// before any thread starts.
pub fn configure() {
    if std::env::var_os(PURGE_DELAY_ENV).is_some() {
        return;
    }
    // mimalloc reads its options from the environment when the process starts, before
    // `main`; this is the only way to change one afterwards.
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores one integer in mimalloc's option table and takes no
    // pointers. The store is not atomic: it is sound because it runs before any other
    // thread exists to read the option (see above).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// The purge delay mimalloc uses now, in milliseconds.
#[cfg(test)]
fn purge_delay_ms() -> std::ffi::c_long {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_get` reads one integer from mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 must be mimalloc's purge delay: its default is 1,000 ms when the
    /// environment does not set it, and `configure` leaves it at ours. (`configure` wants no
    /// other thread allocating: this is the only test of its binary, and in the benches'
    /// library mimalloc is not the allocator at all.)
    #[test]
    fn the_purge_delay_is_the_option_we_set() {
        if std::env::var_os(PURGE_DELAY_ENV).is_some() {
            eprintln!("SKIP: {PURGE_DELAY_ENV} is set in this environment; the default cannot be seen");
            return;
        }
        assert_eq!(
            purge_delay_ms(),
            1_000,
            "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay"
        );
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
