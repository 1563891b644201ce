//! Work on many items in parallel with a time budget per item: the last line of defence against
//! an input that is slow in a way no limit foresaw. An item over budget is given up on (its
//! result, if it ever comes, is dropped), its thread is replaced so the others keep their
//! parallelism, and the caller gets every other result without waiting for it. An item whose
//! work panics is reported the same way instead of taking the caller down.
//!
//! Rust cannot stop a thread, so a given-up item keeps one core busy until it finishes; its
//! thread then leaves the pool.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Why an item has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Its work ran longer than the budget.
    OverBudget(Duration),
    /// Its work panicked, with this message.
    Panicked(String),
}

type Job = Box<dyn FnOnce() + Send>;

/// The start stamp of an item that is done.
const DONE: u64 = u64::MAX;

/// The most threads started in place of stuck ones at a time.
const MAX_STUCK: usize = 64;

/// The threads that run items: as many as there are cores, plus a replacement for each thread
/// still busy with an item given up on.
struct Pool {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// Threads to retire: one for each replacement started, taken by whichever thread finishes a
    /// job first, so that the count of threads free for new work stays the same.
    retire: AtomicUsize,
    epoch: Instant,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            retire: AtomicUsize::new(0),
            epoch: Instant::now(),
        }));
        for _ in 0..std::thread::available_parallelism().map_or(2, usize::from) {
            pool.spawn_worker();
        }
        pool
    })
}

impl Pool {
    fn spawn_worker(&'static self) {
        let spawned = std::thread::Builder::new().name("crier-post".into()).spawn(move || self.work());
        if let Err(error) = spawned {
            tracing::error!("cannot start a thread for reading posts: {error}");
        }
    }

    fn work(&self) {
        loop {
            let job = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    match queue.pop_front() {
                        Some(job) => break job,
                        None => queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner()),
                    }
                }
            };
            job();
            let retire = self.retire.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            if retire.is_ok() {
                return;
            }
        }
    }

    fn submit(&self, jobs: impl Iterator<Item = Job>) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).extend(jobs);
        self.ready.notify_all();
    }

    /// Starts a thread in place of one busy with an item given up on, unless many already are:
    /// then the pool works with fewer threads until those items end.
    fn replace_stuck_thread(&'static self) {
        let replaced =
            self.retire.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_STUCK).then_some(n + 1));
        if replaced.is_ok() {
            self.spawn_worker();
        }
    }

    /// Milliseconds since the pool started, plus one (zero means "not started").
    fn stamp(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// Runs `work` on every item in parallel; each result in the items' order, or why there is none.
/// `progress` is called each time an item is done or given up on.
pub fn map<T, R, F>(items: Vec<T>, budget: Duration, progress: &dyn Fn(), work: F) -> Vec<Result<R, Skipped>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
{
    let pool = pool();
    let count = items.len();
    let started: Arc<[AtomicU64]> = (0..count).map(|_| AtomicU64::new(0)).collect();
    let (sender, receiver) = mpsc::channel::<(usize, Result<R, Skipped>)>();
    let work = Arc::new(work);
    pool.submit(items.into_iter().enumerate().map(|(index, item)| {
        let (sender, started, work) = (sender.clone(), started.clone(), work.clone());
        Box::new(move || {
            started[index].store(pool.stamp(), Ordering::Release);
            let result = catch_unwind(AssertUnwindSafe(|| work(item))).map_err(|panic| {
                let message = panic.downcast_ref::<&str>().map(|s| (*s).to_owned());
                Skipped::Panicked(message.or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default())
            });
            // Done: its result may wait in the channel a while, but no longer runs.
            started[index].store(DONE, Ordering::Release);
            let _ = sender.send((index, result));
        }) as Job
    }));
    drop(sender);
    collect(pool, &receiver, &started, budget, progress)
}

/// Gathers the results, giving up on any item that has run longer than `budget`.
fn collect<R>(
    pool: &'static Pool,
    receiver: &mpsc::Receiver<(usize, Result<R, Skipped>)>,
    started: &[AtomicU64],
    budget: Duration,
    progress: &dyn Fn(),
) -> Vec<Result<R, Skipped>> {
    let mut results: Vec<Option<Result<R, Skipped>>> = std::iter::repeat_with(|| None).take(started.len()).collect();
    let mut left = results.len();
    let check_every = (budget / 4).max(Duration::from_millis(5));
    let budget_ms = budget.as_millis() as u64;
    let mut next_check = Instant::now() + check_every;
    while left > 0 {
        match receiver.recv_timeout(next_check.saturating_duration_since(Instant::now())) {
            Ok((index, result)) if results[index].is_none() => {
                results[index] = Some(result);
                left -= 1;
                progress();
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() < next_check {
            continue;
        }
        next_check = Instant::now() + check_every;
        let now = pool.stamp();
        for (index, slot) in results.iter_mut().enumerate() {
            let since = started[index].load(Ordering::Acquire);
            // An item may start after `now` was read: it has run for no time yet.
            let ran = now.saturating_sub(since);
            if slot.is_none() && since != 0 && since != DONE && ran > budget_ms {
                *slot = Some(Err(Skipped::OverBudget(Duration::from_millis(ran))));
                left -= 1;
                progress();
                pool.replace_stuck_thread();
            }
        }
    }
    results.into_iter().map(|r| r.unwrap_or(Err(Skipped::Panicked("no result".into())))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn results_come_in_order() {
        let squares = map((0..1000u64).collect(), Duration::from_secs(60), &|| {}, |n| n * n);
        assert_eq!(squares, (0..1000u64).map(|n| Ok(n * n)).collect::<Vec<_>>());
    }

    #[test]
    fn quick_items_are_never_over_budget() {
        // The budget is checked every 25 ms while 200,000 quick items run: some start after a
        // check has read the clock, many are done while their results wait in the channel.
        let results = map((0..200_000u32).collect(), Duration::from_millis(100), &|| {}, |n| n);
        let over: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
        assert!(over.is_empty(), "{} quick items given up on, e.g. {:?}", over.len(), over[0]);
    }

    #[test]
    fn an_item_over_budget_is_given_up_on_and_the_others_finish() {
        let release = Arc::new(AtomicBool::new(false));
        let stuck = release.clone();
        let calls = AtomicUsize::new(0);
        let results = map(
            (0..20u32).collect(),
            Duration::from_millis(200),
            &|| _ = calls.fetch_add(1, Ordering::Relaxed),
            move |n| {
                // Item 3 is stuck until the test lets it go, long after the call returned.
                while n == 3 && !stuck.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                n
            },
        );
        release.store(true, Ordering::Release);
        assert!(
            matches!(results[3], Err(Skipped::OverBudget(d)) if d >= Duration::from_millis(200)),
            "{:?}",
            results[3]
        );
        let others: Vec<u32> =
            results.iter().enumerate().filter(|(i, _)| *i != 3).map(|(_, r)| *r.as_ref().unwrap()).collect();
        assert_eq!(others, (0..20).filter(|&n| n != 3).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 20, "progress was reported for each item");
    }

    #[test]
    fn a_panic_is_reported_not_raised() {
        let results = map(vec![1, 0, 2], Duration::from_secs(60), &|| {}, |n: u32| {
            assert!(n != 0, "zero is not allowed");
            n
        });
        assert_eq!(results[0], Ok(1));
        assert_eq!(results[1], Err(Skipped::Panicked("zero is not allowed".into())));
        assert_eq!(results[2], Ok(2));
    }
}
