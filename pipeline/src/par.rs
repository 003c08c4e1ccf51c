//! Work shared between the calling thread and a pool's helpers, for the stages of a batch
//! that are independent per record (decoding, normalizing).
//!
//! The calling thread works too instead of waiting: on two cores with the Parquet writer
//! busy beside it, a helper that gets little of its core simply takes fewer chunks, and
//! what each result borrows from the batch stays borrowed (no copy to hand work over).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A pool of helper threads and how many of them work beside the caller. Meant for a
/// caller outside any rayon pool: a pool worker waiting in [`Helpers::map`] would run its
/// own pool's jobs meanwhile.
#[derive(Debug)]
pub struct Helpers {
    pool: rayon::ThreadPool,
    count: usize,
}

impl Helpers {
    /// `threads` in all, the caller included; `None` for one (nothing to share).
    pub fn new(threads: usize, name: &'static str) -> Result<Option<Helpers>, rayon::ThreadPoolBuildError> {
        let count = threads.saturating_sub(1);
        if count == 0 {
            return Ok(None);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .thread_name(move |i| format!("{name}-{i}"))
            .build()?;
        Ok(Some(Helpers { pool, count }))
    }

    /// Threads in all, the caller included.
    pub fn threads(&self) -> usize {
        self.count + 1
    }

    /// `f` over `items` in chunks of `chunk`, taken in turn by the caller and the helpers;
    /// the results in the order of `items`.
    /// The results may borrow from `items`.
    pub fn map<'a, T, R, F>(&self, items: &'a [T], chunk: usize, f: F) -> Vec<R>
    where
        T: Sync,
        R: Send,
        F: Fn(&'a T) -> R + Sync,
    {
        let chunk = chunk.max(1);
        let chunks: Vec<&'a [T]> = items.chunks(chunk).collect();
        if chunks.len() < 2 {
            return items.iter().map(f).collect();
        }
        let slots: Vec<Mutex<Vec<R>>> = chunks.iter().map(|_| Mutex::new(Vec::new())).collect();
        let next = AtomicUsize::new(0);
        let work = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(items) = chunks.get(i).copied() else { break };
                let done: Vec<R> = items.iter().map(&f).collect();
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = done;
            }
        };
        self.pool.in_place_scope(|s| {
            for _ in 0..self.count.min(chunks.len() - 1) {
                s.spawn(|_| work());
            }
            work();
        });
        let mut out = Vec::with_capacity(items.len());
        for slot in slots {
            out.extend(slot.into_inner().unwrap_or_else(|e| e.into_inner()));
        }
        out
    }

    /// Runs `side` on a helper while the caller runs `here`; both results.
    pub fn beside<A, B>(&self, side: impl FnOnce() -> A + Send, here: impl FnOnce() -> B) -> (A, B)
    where
        A: Send,
    {
        let mut a = None;
        let b = self.pool.in_place_scope(|s| {
            s.spawn(|_| a = Some(side()));
            here()
        });
        (a.expect("the scope waits for its spawned work"), b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_input_whatever_thread_took_a_chunk() {
        let helpers = Helpers::new(3, "test").expect("pool").expect("helpers for 3 threads");
        assert_eq!(helpers.threads(), 3);
        let items: Vec<u64> = (0..10_007).collect();
        for chunk in [1, 7, 64, 10_007, 20_000] {
            let out = helpers.map(&items, chunk, |x| x * 2);
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>(), "chunk {chunk}");
        }
        assert!(helpers.map(&[] as &[u64], 8, |x| *x).is_empty());
    }

    #[test]
    fn the_work_is_shared_and_may_borrow_the_input() {
        let helpers = Helpers::new(2, "test").expect("pool").expect("a helper");
        let text = String::from("a b c d e f g h");
        let words: Vec<&str> = text.split(' ').collect();
        // Each chunk records the thread that took it; a slow chunk on one thread leaves
        // the rest to the other.
        let out = helpers.map(&words, 1, |w| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            (*w, std::thread::current().id())
        });
        assert_eq!(out.iter().map(|(w, _)| *w).collect::<Vec<_>>(), words);
        let threads: std::collections::HashSet<_> = out.iter().map(|(_, t)| *t).collect();
        assert_eq!(threads.len(), 2, "both threads took chunks: {out:?}");
    }

    #[test]
    fn beside_runs_on_another_thread_and_returns_both() {
        let helpers = Helpers::new(2, "test").expect("pool").expect("a helper");
        let here = std::thread::current().id();
        let mut owned = vec![1, 2, 3];
        let (side, mine) = helpers.beside(
            || {
                owned.push(4);
                std::thread::current().id()
            },
            || 7,
        );
        assert_ne!(side, here);
        assert_eq!((mine, owned), (7, vec![1, 2, 3, 4]));
    }

    #[test]
    fn one_thread_needs_no_pool() {
        assert!(Helpers::new(1, "test").expect("nothing to build").is_none());
        assert!(Helpers::new(0, "test").expect("nothing to build").is_none());
    }
}
