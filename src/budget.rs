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

/// A job returns whether its thread should leave the pool: it was given up on and replaced.
type Job = Box<dyn FnOnce() -> bool + Send>;

/// An item's start stamp once it is done.
const DONE: u64 = u64::MAX;
/// An item's start stamp once it is given up on, and a thread was started in its thread's place.
const GIVEN_UP_REPLACED: u64 = u64::MAX - 1;
/// An item's start stamp once it is given up on, with no replacement (too many are stuck).
const GIVEN_UP: u64 = u64::MAX - 2;
/// An item given up on and replaced whose thread has since ended it and left the pool.
const RETIRED: u64 = u64::MAX - 3;

/// The most threads started in place of stuck ones at a time.
const MAX_STUCK: usize = 64;

/// Threads per core. Reading a post waits on the disk when the page cache does not hold it (a
/// first load of a long history, or a cold machine): with one thread per core a core sits idle
/// during each wait; with two, the other thread's post is parsed meanwhile and the disk gets
/// more reads at once.
const READERS_PER_CORE: usize = 2;

/// The threads that run items: `READERS_PER_CORE` per core, plus a replacement for each thread
/// still busy with an item given up on.
struct Pool {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// Replacement threads started for items given up on whose own threads have not left yet.
    replaced: AtomicUsize,
    epoch: Instant,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            replaced: AtomicUsize::new(0),
            epoch: Instant::now(),
        }));
        for _ in 0..READERS_PER_CORE * std::thread::available_parallelism().map_or(2, usize::from) {
            let _ = pool.spawn_worker();
        }
        pool
    })
}

impl Pool {
    fn spawn_worker(&'static self) -> bool {
        let spawned = std::thread::Builder::new().name("crier-post".into()).spawn(move || self.work());
        if let Err(error) = &spawned {
            tracing::error!("cannot start a thread for reading posts: {error}");
        }
        spawned.is_ok()
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
            if job() {
                // Given up on and replaced: the replacement does this thread's work now.
                self.replaced.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }

    fn submit(&self, jobs: impl Iterator<Item = Job>) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).extend(jobs);
        self.ready.notify_all();
    }

    /// Reserves a replacement for a thread about to be given up on, unless many are already
    /// replaced: then the pool works with fewer threads until those items end.
    fn reserve_replacement(&self) -> bool {
        self.replaced.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_STUCK).then_some(n + 1)).is_ok()
    }

    /// Milliseconds since the pool started, plus one (zero means "not started").
    fn stamp(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// Where an item's result waits for the caller.
type Slot<R> = Mutex<Option<Result<R, Skipped>>>;

/// One call's items as the pool's threads and the caller share them.
struct Batch<R> {
    /// Each item's state: 0 queued, a [`Pool::stamp`] while it runs, then [`DONE`] or, if the
    /// watcher claimed it first, [`GIVEN_UP`] or [`GIVEN_UP_REPLACED`] (then [`RETIRED`] once its
    /// thread has left). Exactly one side wins each claim.
    started: Box<[AtomicU64]>,
    results: Box<[Slot<R>]>,
    /// Items done, and items given up on: when they add up to all, the caller is woken.
    done: AtomicUsize,
    given_up: AtomicUsize,
    caller: std::thread::Thread,
}

impl<R> Batch<R> {
    fn settled(&self) -> bool {
        self.done.load(Ordering::Acquire) + self.given_up.load(Ordering::Acquire) >= self.started.len()
    }
}

/// Runs `work` on every item in parallel; each result in the items' order, or why there is none.
/// `progress` is called while items get done (at least every half second while they do).
pub fn map<T, R, F>(items: Vec<T>, budget: Duration, progress: &dyn Fn(), work: F) -> Vec<Result<R, Skipped>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
{
    let pool = pool();
    let batch = Arc::new(Batch {
        started: items.iter().map(|_| AtomicU64::new(0)).collect(),
        results: items.iter().map(|_| Mutex::new(None)).collect(),
        done: AtomicUsize::new(0),
        given_up: AtomicUsize::new(0),
        caller: std::thread::current(),
    });
    let work = Arc::new(work);
    pool.submit(items.into_iter().enumerate().map(|(index, item)| {
        let (batch, work) = (batch.clone(), work.clone());
        Box::new(move || {
            let stamp = pool.stamp();
            batch.started[index].store(stamp, Ordering::Release);
            let result = catch_unwind(AssertUnwindSafe(|| work(item))).map_err(|panic| {
                let message = panic.downcast_ref::<&str>().map(|s| (*s).to_owned());
                let message = message.or_else(|| panic.downcast_ref::<String>().cloned());
                Skipped::Panicked(message.unwrap_or_else(|| "a panic without a message".to_owned()))
            });
            *batch.results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            match batch.started[index].compare_exchange(stamp, DONE, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    batch.done.fetch_add(1, Ordering::AcqRel);
                    if batch.settled() {
                        batch.caller.unpark();
                    }
                    false
                }
                // Given up on: leave the pool if a replacement took this thread's place.
                Err(_) => batch.started[index]
                    .compare_exchange(GIVEN_UP_REPLACED, RETIRED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok(),
            }
        }) as Job
    }));
    let given_up = watch(pool, &batch, budget, progress);
    let result = |(slot, given_up): (&Slot<R>, Option<Duration>)| match given_up {
        Some(ran) => Err(Skipped::OverBudget(ran)),
        None => slot.lock().unwrap_or_else(|e| e.into_inner()).take().expect("an item not given up on is done"),
    };
    batch.results.iter().zip(given_up).map(result).collect()
}

/// Waits until every item of `batch` is done or given up on, giving up on any that has run
/// longer than `budget`; the pool's threads wake the caller only once, at the end. Returns how
/// long each item given up on had run.
fn watch<R>(pool: &'static Pool, batch: &Batch<R>, budget: Duration, progress: &dyn Fn()) -> Vec<Option<Duration>> {
    let check_every = (budget / 4).clamp(Duration::from_millis(5), Duration::from_millis(500));
    let budget_ms = budget.as_millis() as u64;
    let mut given_up = vec![None; batch.started.len()];
    let mut done_before = 0;
    while !batch.settled() {
        std::thread::park_timeout(check_every);
        let done = batch.done.load(Ordering::Acquire);
        if done != done_before {
            done_before = done;
            progress();
        }
        let now = pool.stamp();
        for (index, started) in batch.started.iter().enumerate() {
            let since = started.load(Ordering::Acquire);
            // An item may start after `now` was read: it has run for no time yet.
            let ran = now.saturating_sub(since);
            if since == 0 || since >= RETIRED || ran <= budget_ms {
                continue;
            }
            let replace = pool.reserve_replacement();
            let claim = if replace { GIVEN_UP_REPLACED } else { GIVEN_UP };
            if started.compare_exchange(since, claim, Ordering::AcqRel, Ordering::Acquire).is_err() {
                // It finished just now: not given up on.
                if replace {
                    pool.replaced.fetch_sub(1, Ordering::AcqRel);
                }
                continue;
            }
            given_up[index] = Some(Duration::from_millis(ran));
            batch.given_up.fetch_add(1, Ordering::AcqRel);
            progress();
            let unreplace =
                || started.compare_exchange(GIVEN_UP_REPLACED, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire);
            if replace && !pool.spawn_worker() && unreplace().is_ok() {
                // No replacement after all: the stuck thread stays in the pool when its item ends.
                pool.replaced.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    given_up
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
        assert!(calls.load(Ordering::Relaxed) >= 2, "progress was reported as items were done and given up on");
    }

    #[test]
    fn an_item_finishing_as_it_is_given_up_on_counts_once() {
        // Item 0 overruns the budget and then finishes while items 1 and 2 still run: it must
        // be either done or given up on, never both (which once ended the call early).
        for _ in 0..3 {
            let results = map(vec![260u64, 150, 150], Duration::from_millis(200), &|| {}, |ms| {
                std::thread::sleep(Duration::from_millis(ms));
                ms
            });
            assert_eq!(results[1], Ok(150));
            assert_eq!(results[2], Ok(150));
        }
    }

    #[test]
    fn stuck_items_leave_threads_for_the_others() {
        // Two items stuck for seconds while 58 quick ones wait: the stuck threads are replaced
        // (not healthy ones retired), so the quick items finish long before the stuck ones.
        let release = Arc::new(AtomicBool::new(false));
        let stuck = release.clone();
        let results = map((0..60u32).collect(), Duration::from_millis(100), &|| {}, move |n| {
            while (n == 0 || n == 21) && !stuck.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(10));
            n
        });
        release.store(true, Ordering::Release);
        assert!(
            matches!(results[0], Err(Skipped::OverBudget(_))) && matches!(results[21], Err(Skipped::OverBudget(_)))
        );
        // The stuck items end only once the call has returned: returning at all is the claim.
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 58);
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
