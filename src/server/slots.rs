//! The connection slots: one per `max_connections`, each knowing what its connection is doing, so
//! that when all are taken a new connection takes the slot of the connection that has waited
//! longest without a request in progress: the longest-idle keep-alive connection, or the oldest
//! request head still incomplete (slowloris). A connection whose request is being answered is
//! never evicted. The victim is taken from the address that holds the most slots, so that one
//! client flooding the table evicts its own connections, not those of the others.
//!
//! A slot's state is one atomic word (phase and since when), changed by compare-and-swap, so the
//! accept loop and the connection's own task never disagree on whether a request got through.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What a connection is doing. Only `Head` and `Idle` may be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
enum Phase {
    Free = 0,
    /// Accepted, not yet read from: not evicted, or a flood of new connections would evict each
    /// new connection before its task has had the chance to read a complete head.
    Fresh = 6,
    /// Read from, or bytes of a new request arrived after idling: the head is not complete yet.
    Head = 1,
    /// The request is being answered.
    Busy = 2,
    /// The answer is made but may not be on the wire yet. Evicted only once it has been
    /// answering for longer than the slow-reader grace: a client reading a few bytes at a time.
    Answered = 3,
    /// Keep-alive, waiting for the next request.
    Idle = 4,
    /// Told to go; its task drops it.
    Evicted = 5,
}

const PHASE_SHIFT: u32 = 60;

fn pack(phase: Phase, since_ms: u64) -> u64 {
    (phase as u64) << PHASE_SHIFT | (since_ms & ((1 << PHASE_SHIFT) - 1))
}

fn phase(word: u64) -> Phase {
    match word >> PHASE_SHIFT {
        0 => Phase::Free,
        1 => Phase::Head,
        2 => Phase::Busy,
        3 => Phase::Answered,
        4 => Phase::Idle,
        6 => Phase::Fresh,
        _ => Phase::Evicted,
    }
}

fn since(word: u64) -> u64 {
    word & ((1 << PHASE_SHIFT) - 1)
}

/// A client address as a slot records it.
fn peer_key(peer: IpAddr) -> u64 {
    let v6 = match peer {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    xxhash_rust::xxh3::xxh3_64(&v6.octets())
}

struct Entry {
    state: AtomicU64,
    /// Which client address holds the slot (a hash of it).
    peer: AtomicU64,
    evict: Notify,
}

/// The table of slots.
pub struct Slots {
    entries: Box<[Entry]>,
    free: Mutex<Vec<usize>>,
    freed: Notify,
    epoch: Instant,
    /// How long an answer may take to be read before its connection may be evicted.
    slow_reader_ms: u64,
}

/// A slot held by one connection; dropping it frees the slot.
pub struct Slot {
    slots: Arc<Slots>,
    index: usize,
}

impl Slots {
    pub fn new(count: usize, slow_reader: Duration) -> Arc<Slots> {
        let entries = (0..count)
            .map(|_| Entry { state: AtomicU64::new(0), peer: AtomicU64::new(0), evict: Notify::new() })
            .collect();
        Arc::new(Slots {
            entries,
            free: Mutex::new((0..count).rev().collect()),
            freed: Notify::new(),
            epoch: Instant::now(),
            slow_reader_ms: slow_reader.as_millis() as u64,
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A free slot for a new connection; when none is free, evicts the connection that has waited
    /// longest without a request in progress and takes its slot. Waits only while every
    /// connection is being answered.
    pub async fn acquire(self: &Arc<Slots>, peer: IpAddr) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(index) = self.free.lock().expect("the free list is never poisoned").pop() {
                self.entries[index].peer.store(peer_key(peer), Ordering::Release);
                self.entries[index].state.store(pack(Phase::Fresh, self.now_ms()), Ordering::Release);
                return Slot { slots: self.clone(), index };
            }
            if let Some(index) = self.evict_one() {
                tracing::debug!("all connection slots taken: evicted the connection in slot {index}");
            }
            // The evicted connection's task frees its slot; if the chosen one got a request
            // through first, look again shortly.
            let _ = tokio::time::timeout(Duration::from_millis(20), freed).await;
        }
    }

    /// Evicts the longest-waiting idle or incomplete connection of the address that holds the
    /// most slots, if it has one.
    ///
    /// A connection evicted and not yet gone makes room already: nothing more is evicted until
    /// its slot is free, so one newcomer never evicts two.
    fn evict_one(&self) -> Option<usize> {
        let states: Vec<(usize, u64, u64)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.state.load(Ordering::Acquire), e.peer.load(Ordering::Acquire)))
            .collect();
        if states.iter().any(|&(_, w, _)| phase(w) == Phase::Evicted) {
            return None;
        }
        // The address holding the most slots, in any phase, pays; while none of its connections
        // may be evicted (just accepted, or being answered), the newcomer waits for one that may.
        let mut held: HashMap<u64, usize> = HashMap::new();
        for &(_, w, peer) in &states {
            if phase(w) != Phase::Free {
                *held.entry(peer).or_default() += 1;
            }
        }
        let most = held.values().copied().max()?;
        let now = self.now_ms();
        let evictable = |w: u64| match phase(w) {
            Phase::Head | Phase::Idle => true,
            Phase::Answered => now.saturating_sub(since(w)) > self.slow_reader_ms,
            _ => false,
        };
        let (index, word, _) = states
            .into_iter()
            .filter(|&(_, w, peer)| held.get(&peer) == Some(&most) && evictable(w))
            .min_by_key(|&(_, w, _)| since(w))?;
        let entry = &self.entries[index];
        let evicted = pack(Phase::Evicted, self.now_ms());
        entry.state.compare_exchange(word, evicted, Ordering::AcqRel, Ordering::Acquire).ok()?;
        entry.evict.notify_one();
        Some(index)
    }

    /// Moves slot `index` from one of `from` to `to`, unless something else moved it first.
    fn transition(&self, index: usize, from: &[Phase], to: Phase) {
        let state = &self.entries[index].state;
        let now = self.now_ms();
        let _ = state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| from.contains(&phase(w)).then(|| pack(to, now)));
    }
}

impl Slot {
    /// The service got a complete request head.
    pub fn answering(&self) {
        self.slots.transition(self.index, &[Phase::Fresh, Phase::Head, Phase::Idle], Phase::Busy);
    }

    /// The service made its answer.
    pub fn answered(&self) {
        self.slots.transition(self.index, &[Phase::Busy], Phase::Answered);
    }

    /// Completes when the slot's connection is evicted.
    pub async fn evicted(&self) {
        let entry = &self.slots.entries[self.index];
        // A notification left over from the slot's previous connection is not for this one.
        while phase(entry.state.load(Ordering::Acquire)) != Phase::Evicted {
            entry.evict.notified().await;
        }
    }

    /// The connection's stream, reporting to this slot when bytes arrive and when answers are out.
    pub fn track<S>(self: &Arc<Slot>, stream: S) -> Tracked<S> {
        Tracked { stream, slot: self.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.entries[self.index].state.store(pack(Phase::Free, 0), Ordering::Release);
        self.slots.free.lock().expect("the free list is never poisoned").push(self.index);
        self.slots.freed.notify_one();
    }
}

/// A connection's stream that tells its slot when a new request starts (bytes after idling)
/// and when an answer has been flushed (back to idle).
pub struct Tracked<S> {
    stream: S,
    slot: Arc<Slot>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        let from: &[Phase] = if buf.filled().len() > before { &[Phase::Fresh, Phase::Idle] } else { &[Phase::Fresh] };
        self.slot.slots.transition(self.slot.index, from, Phase::Head);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(cx);
        if matches!(result, Poll::Ready(Ok(()))) {
            self.slot.slots.transition(self.slot.index, &[Phase::Answered], Phase::Idle);
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(slots: &Slots, index: usize, phase: Phase, since_ms: u64) {
        slots.entries[index].state.store(pack(phase, since_ms), Ordering::Release);
    }

    #[test]
    fn evicts_the_longest_waiting_of_idle_and_incomplete_never_a_busy_one() {
        let slots = Slots::new(4, Duration::from_secs(3600));
        set(&slots, 0, Phase::Busy, 1);
        set(&slots, 1, Phase::Head, 30);
        set(&slots, 2, Phase::Idle, 20);
        set(&slots, 3, Phase::Answered, 5);
        let fresh = Slots::new(1, Duration::from_secs(3600));
        set(&fresh, 0, Phase::Fresh, 0);
        assert_eq!(fresh.evict_one(), None, "a connection not yet read from is not evicted");
        assert_eq!(slots.evict_one(), Some(2), "idle since 20 has waited longest");
        assert_eq!(phase(slots.entries[2].state.load(Ordering::Acquire)), Phase::Evicted);
        assert_eq!(slots.evict_one(), None, "nothing more while the evicted one is still there");
        set(&slots, 2, Phase::Busy, 40);
        assert_eq!(slots.evict_one(), Some(1), "then the incomplete head");
        set(&slots, 1, Phase::Busy, 40);
        assert_eq!(slots.evict_one(), None, "a connection being answered is never evicted");
    }

    #[test]
    fn the_address_holding_the_most_slots_loses_one_first() {
        let slots = Slots::new(7, Duration::from_secs(3600));
        let (flood, other) = (peer_key("192.0.2.1".parse().unwrap()), peer_key("198.51.100.7".parse().unwrap()));
        for (index, peer, phase, since_ms) in [
            (0, other, Phase::Head, 1),
            (1, flood, Phase::Head, 10),
            (2, flood, Phase::Head, 5),
            (3, flood, Phase::Fresh, 2),
            (4, other, Phase::Idle, 3),
            (5, flood, Phase::Busy, 0),
            (6, flood, Phase::Busy, 0),
        ] {
            set(&slots, index, phase, since_ms);
            slots.entries[index].peer.store(peer, Ordering::Release);
        }
        let free = |index| set(&slots, index, Phase::Free, 0);
        assert_eq!(slots.evict_one(), Some(2), "the flood's oldest, though the other client's are older");
        free(2);
        assert_eq!(slots.evict_one(), Some(1));
        free(1);
        assert_eq!(slots.evict_one(), None, "the flood's others are not yet read from or answered: wait");
        set(&slots, 3, Phase::Head, 2);
        assert_eq!(slots.evict_one(), Some(3));
        free(3);
        free(5);
        assert_eq!(slots.evict_one(), Some(0), "two slots each: the oldest of both");
    }

    #[test]
    fn a_slow_reader_may_be_evicted_after_its_grace() {
        let slots = Slots::new(2, Duration::from_millis(20));
        set(&slots, 0, Phase::Answered, slots.now_ms());
        set(&slots, 1, Phase::Busy, 0);
        assert_eq!(slots.evict_one(), None, "an answer being read within its grace stays");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(slots.evict_one(), Some(0), "an answer read for longer than its grace may go");
    }

    #[test]
    fn a_request_that_got_through_is_not_evicted() {
        let slots = Slots::new(1, Duration::from_secs(3600));
        set(&slots, 0, Phase::Head, 1);
        let word = slots.entries[0].state.load(Ordering::Acquire);
        slots.transition(0, &[Phase::Head, Phase::Idle], Phase::Busy);
        let evicted = pack(Phase::Evicted, 2);
        assert!(slots.entries[0].state.compare_exchange(word, evicted, Ordering::AcqRel, Ordering::Acquire).is_err());
        assert_eq!(slots.evict_one(), None);
    }
}
