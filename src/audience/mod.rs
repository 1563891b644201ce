//! Who reads the feeds: subscriber counts and how pollers behave, from the requests themselves.
//!
//! - Aggregators report their readers in their User-Agent ([`agent`]); per feed and aggregator the
//!   count is the largest reported in the last 24 hours (hourly maxima, 24 kept).
//! - Other clients are counted one by one: a keyed hash of the address (an IPv6 address by its
//!   /64, which privacy extensions keep) and the User-Agent, under a key drawn at random each UTC
//!   day and forgotten after two. Neither is kept or logged in the clear; once a day's key is
//!   gone, its hashes cannot be tied to anyone. A client seen under yesterday's key is found again
//!   and moved under today's, so it counts once in any 24 hours.
//! - Requests per feed and hour (48 kept), with those answered 304 and those without validators.
//!
//! Everything is bounded whatever clients send: [`MAX_CLIENTS`] clients, [`MAX_SOURCES`]
//! aggregators per feed, feeds only those crier serves. [`Saved`] is what `state` keeps across
//! restarts; [`Report`] what `crier stats`, `/stats` and the metrics show.

pub mod agent;
pub mod page;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use agent::Agent;

/// The most clients remembered; the least recently seen go first.
pub const MAX_CLIENTS: usize = 100_000;
/// The most readers one address (an IPv6 /64) counts as, per feed: a household or an office
/// behind one address has a few; a client that changes its User-Agent at every request is one.
pub const MAX_PER_ADDRESS: u16 = 16;
/// The largest subscriber count believed from one report; larger claims count as this.
pub const MAX_REPORTED: u64 = 100_000_000;
/// The most pollers to fix a report lists (the worst first).
pub const MAX_POLLERS: usize = 50;
/// The most aggregators remembered per feed; the one reporting the fewest goes first.
pub const MAX_SOURCES: usize = 32;
/// Feeds shown by name in the metrics; the rest are summed as `other`.
pub const TOP_FEEDS: usize = 100;
/// Aggregators shown by name in the metrics (site-wide, by subscribers); the rest are `other`.
pub const TOP_SOURCES: usize = 10;
/// The `source` of clients counted one by one.
pub const READERS: &str = "readers";

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// Hours of requests kept per feed (the `/stats` chart's span).
pub const HOURS_KEPT: i64 = 48;

/// One request for a feed, as counted.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The feed (its stem, `categories/新闻`).
    pub feed: &'a Arc<str>,
    /// Which of the feed's formats was asked for: asking for another one at once is not
    /// polling too fast.
    pub format: u8,
    pub address: IpAddr,
    /// The User-Agent header's bytes (read as UTF-8, lossily, only for a new client).
    pub user_agent: &'a [u8],
    /// 304: the client's copy was current.
    pub not_modified: bool,
    /// The request carried `If-None-Match` or `If-Modified-Since`.
    pub conditional: bool,
    /// The feed's `ttl`: a client asking again sooner polls too fast.
    pub ttl: Duration,
    /// Unix seconds.
    pub now: i64,
}

#[cfg(test)]
impl<'a> Seen<'a> {
    /// A conditional GET of the RSS format answered 200, for tests: `ttl` is an hour.
    pub fn example(feed: &'a Arc<str>, address: &str, user_agent: &'a str, now: i64) -> Seen<'a> {
        Seen {
            feed,
            format: 0,
            address: address.parse().expect("a test address"),
            user_agent: user_agent.as_bytes(),
            not_modified: false,
            conditional: true,
            ttl: Duration::from_secs(3600),
            now,
        }
    }
}

/// A client as remembered, under a day's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub feed: Arc<str>,
    /// The keyed hash of address and User-Agent (16 bytes).
    pub id: [u8; 16],
    pub family: String,
    /// The keyed hash of the address alone (under the same key): how many readers one address
    /// counts as is bounded.
    pub address: u64,
    pub last_seen: i64,
    pub requests: u32,
    /// Requests without validators.
    pub unconditional: u32,
    /// Requests sooner than the feed's `ttl` after the one before for the same format (with 10 %
    /// slack).
    pub fast: u32,
    /// The format of its last request (not kept across restarts).
    pub last_format: u8,
    /// Counted since the last save.
    pub unsaved: bool,
    /// The subscribers an aggregator reports: counted through its report, not as a reader.
    pub reported: Option<u64>,
    pub crawler: bool,
}

/// Requests for one feed in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hour {
    pub requests: u64,
    pub not_modified: u64,
    pub unconditional: u64,
}

/// Everything counted, as rows: what `state` keeps, and what a tracker starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// Each UTC day's key (the day as days since the epoch).
    pub keys: Vec<(i64, [u8; 16])>,
    /// Every client, or in [`Audience::changes`] those counted since the last save.
    pub clients: Vec<Client>,
    /// In [`Audience::changes`], the clients forgotten since the last save (feed, id).
    pub gone: Vec<(Arc<str>, [u8; 16])>,
    /// (feed, aggregator, hour as unix s / 3600, the most subscribers reported in it).
    pub reports: Vec<(Arc<str>, String, i64, u64)>,
    /// (feed, hour as unix s / 3600, requests).
    pub hours: Vec<(Arc<str>, i64, Hour)>,
}

/// The client of one connection, once identified: its hash under the day's key, with what it was
/// computed from (the address is the connection's own).
#[derive(Debug, Default)]
pub struct ClientMemo {
    day: i64,
    user_agent: Vec<u8>,
    id: Option<[u8; 16]>,
}

impl ClientMemo {
    fn known(&self, day: i64, seen: &Seen<'_>) -> Option<[u8; 16]> {
        self.id.filter(|_| self.day == day && self.user_agent == seen.user_agent)
    }

    fn remember(&mut self, day: i64, seen: &Seen<'_>, id: [u8; 16]) -> [u8; 16] {
        self.day = day;
        self.user_agent.clear();
        self.user_agent.extend_from_slice(seen.user_agent);
        self.id = Some(id);
        id
    }
}

/// The counts of one serving crier, shared by the request handlers.
#[derive(Debug, Default)]
pub struct Audience {
    data: Mutex<Data>,
}

#[derive(Debug, Default)]
struct Data {
    keys: BTreeMap<i64, [u8; 16]>,
    feeds: HashMap<Arc<str>, FeedData, BuildHasherDefault<FastHasher>>,
    /// Clients in all feeds.
    clients: usize,
}

/// What is counted of one feed.
#[derive(Debug)]
struct FeedData {
    /// By keyed hash.
    clients: HashMap<[u8; 16], Client, BuildHasherDefault<FastHasher>>,
    /// How many of `clients` each address is.
    addresses: HashMap<u64, u16, BuildHasherDefault<FastHasher>>,
    /// Ids of the clients forgotten since the last save.
    gone: Vec<[u8; 16]>,
    /// By aggregator: the most subscribers reported in each hour.
    reports: HashMap<String, BTreeMap<i64, u64>>,
    /// Requests of the last [`HOURS_KEPT`] hours, each in the slot `hour % HOURS_KEPT` with its
    /// hour (an older hour in a slot is an empty one).
    hours: Vec<(i64, Hour)>,
}

impl Default for FeedData {
    fn default() -> FeedData {
        let hours = vec![(i64::MIN, Hour::default()); HOURS_KEPT as usize];
        FeedData {
            clients: HashMap::default(),
            addresses: HashMap::default(),
            gone: Vec::new(),
            reports: HashMap::new(),
            hours,
        }
    }
}

impl FeedData {
    /// Counts the clients of each address again (after clients were forgotten).
    fn count_addresses(&mut self) {
        self.addresses.clear();
        for client in self.clients.values() {
            *self.addresses.entry(client.address).or_default() += 1;
        }
    }

    /// The counts of `hour`, made empty first if its slot held an older one.
    fn hour(&mut self, hour: i64) -> &mut Hour {
        let slot = &mut self.hours[hour.rem_euclid(HOURS_KEPT) as usize];
        if slot.0 != hour {
            *slot = (hour, Hour::default());
        }
        &mut slot.1
    }

    /// The hours kept that are within [`HOURS_KEPT`] of `this_hour`.
    fn hours(&self, this_hour: i64) -> impl Iterator<Item = (i64, Hour)> + '_ {
        self.hours.iter().copied().filter(move |(hour, _)| *hour > this_hour - HOURS_KEPT && *hour <= this_hour)
    }
}

/// A fast hash (FxHash's step) for keys clients do not choose: feed names are crier's own, and
/// client ids are keyed hashes already.
#[derive(Debug, Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

impl Audience {
    /// A tracker that goes on from what was saved.
    pub fn from_saved(saved: Saved) -> Audience {
        let mut data = Data { keys: saved.keys.into_iter().collect(), ..Data::default() };
        data.clients = saved.clients.len();
        for client in saved.clients {
            let feed = data.feeds.entry(client.feed.clone()).or_default();
            *feed.addresses.entry(client.address).or_default() += 1;
            feed.clients.insert(client.id, client);
        }
        for (feed, source, hour, count) in saved.reports {
            data.feeds.entry(feed).or_default().reports.entry(source).or_default().insert(hour, count);
        }
        for (feed, hour, counted) in saved.hours {
            *data.feeds.entry(feed).or_default().hour(hour) = counted;
        }
        Audience { data: Mutex::new(data) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one request for a feed. A User-Agent is read only when its client is new: a
    /// client that polls again costs a hash and two map lookups.
    pub fn record(&self, seen: &Seen<'_>) {
        self.record_with(&mut ClientMemo::default(), seen);
    }

    /// Like [`Audience::record`] for a request on a connection whose client `memo` remembers
    /// (from the connection's earlier requests): the client's hash is not computed again.
    pub fn record_with(&self, memo: &mut ClientMemo, seen: &Seen<'_>) {
        let day = seen.now.div_euclid(DAY);
        let id = |key: &[u8; 16]| client_id(key, seen.address, seen.user_agent);
        let mut data = self.lock();
        let key = *data.keys.entry(day).or_insert_with(new_key);
        let today = match memo.known(day, seen) {
            Some(today) => today,
            None => memo.remember(day, seen, id(&key)),
        };
        let yesterday = data.keys.get(&(day - 1)).copied();
        let feed = match data.feeds.get_mut(seen.feed) {
            Some(feed) => feed,
            None => data.feeds.entry(seen.feed.clone()).or_default(),
        };
        let hour = feed.hour(seen.now.div_euclid(HOUR));
        hour.requests += 1;
        hour.not_modified += u64::from(seen.not_modified);
        hour.unconditional += u64::from(!seen.conditional);
        let ids =
            Ids { today, address: || address_id(&key, seen.address), yesterday: || yesterday.map(|key| id(&key)) };
        if feed.client(seen, ids) {
            data.clients += 1;
            if data.clients > MAX_CLIENTS {
                data.expire(seen.now);
            }
        }
    }

    /// Everything there is to save at `now`, with what has expired left out.
    pub fn saved(&self, now: i64) -> Saved {
        self.collect(now, true)
    }

    /// What changed since the last call: the clients counted since (`clients`), those forgotten
    /// (`gone`), and, whole, the keys, reports and hours (small, bounded sets).
    pub fn changes(&self, now: i64) -> Saved {
        self.collect(now, false)
    }

    fn collect(&self, now: i64, whole: bool) -> Saved {
        let mut data = self.lock();
        data.expire(now);
        let mut saved = Saved { keys: data.keys.iter().map(|(day, key)| (*day, *key)).collect(), ..Saved::default() };
        let this_hour = now.div_euclid(HOUR);
        for (name, feed) in &mut data.feeds {
            for client in feed.clients.values_mut() {
                if whole || client.unsaved {
                    client.unsaved = false;
                    saved.clients.push(client.clone());
                }
            }
            saved.gone.extend(feed.gone.drain(..).map(|id| (name.clone(), id)));
            for (source, hours) in &feed.reports {
                saved.reports.extend(hours.iter().map(|(hour, count)| (name.clone(), source.clone(), *hour, *count)));
            }
            saved.hours.extend(feed.hours(this_hour).map(|(hour, counted)| (name.clone(), hour, counted)));
        }
        saved
    }

    /// The counts at `now`.
    pub fn report(&self, now: i64) -> Report {
        let mut data = self.lock();
        data.expire(now);
        Report::of(&data, now, true)
    }

    /// The `crier_feed_subscribers` series at `now` ([`Report::subscriber_series`]).
    pub fn subscriber_series(&self, now: i64) -> BTreeMap<(String, String), u64> {
        let report = {
            let mut data = self.lock();
            data.expire(now);
            Report::of(&data, now, false)
        };
        report.subscriber_series()
    }
}

impl FeedData {
    /// Keeps an aggregator's report; past [`MAX_SOURCES`] for the feed, the one reporting the
    /// fewest makes way (or this one is dropped, if it reports fewer still).
    fn report(&mut self, source: &str, now: i64, count: u64) {
        if !self.reports.contains_key(source) && self.reports.len() >= MAX_SOURCES {
            let most = |hours: &BTreeMap<i64, u64>| hours.values().copied().max().unwrap_or(0);
            let smallest = self.reports.iter().map(|(source, hours)| (most(hours), source)).min();
            match smallest {
                Some((most, _)) if most > count => return,
                Some((_, smallest)) => {
                    let smallest = smallest.clone();
                    self.reports.remove(&smallest);
                }
                None => {}
            }
        }
        let hours = self.reports.entry(source.to_owned()).or_default();
        let most = hours.entry(now.div_euclid(HOUR)).or_default();
        *most = (*most).max(count);
        let oldest = now.div_euclid(HOUR) - 24;
        hours.retain(|hour, _| *hour >= oldest);
    }

    /// Finds the client by its id under today's key, or under yesterday's (then moves it, with
    /// its tallies), and counts its request. Says whether it is a client not counted before.
    fn client(&mut self, seen: &Seen<'_>, ids: Ids<impl FnOnce() -> u64, impl FnOnce() -> Option<[u8; 16]>>) -> bool {
        let id = ids.today;
        if let Some(client) = self.clients.get_mut(&id) {
            let last_seen = client.last_seen;
            client.count(seen, Some(last_seen));
            // An aggregator's report counts for 24 hours from each hour it is made in.
            if let (Some(count), true) = (client.reported, last_seen.div_euclid(HOUR) != seen.now.div_euclid(HOUR)) {
                let family = client.family.clone();
                self.report(&family, seen.now, count);
            }
            return false;
        }
        let address = (ids.address)();
        if self.addresses.get(&address).is_some_and(|n| *n >= MAX_PER_ADDRESS) {
            return false;
        }
        let moved = (ids.yesterday)().and_then(|old| {
            let moved = self.clients.remove(&old)?;
            self.gone.push(old);
            Some(moved)
        });
        let new = moved.is_none();
        let mut client = match moved {
            Some(mut client) => {
                self.forget_address(client.address);
                client.id = id;
                client
            }
            None => {
                let agent = agent::parse(&String::from_utf8_lossy(seen.user_agent));
                if let Some(count) = agent.reported {
                    self.report(&agent.family, seen.now, count);
                }
                Client {
                    feed: seen.feed.clone(),
                    id,
                    family: agent.family,
                    address,
                    last_seen: seen.now,
                    requests: 0,
                    unconditional: 0,
                    fast: 0,
                    reported: agent.reported,
                    crawler: agent.crawler,
                    last_format: seen.format,
                    unsaved: true,
                }
            }
        };
        let previous = (!new).then_some(client.last_seen);
        client.address = address;
        client.count(seen, previous);
        *self.addresses.entry(address).or_default() += 1;
        self.clients.insert(id, client);
        new
    }

    fn forget_address(&mut self, address: u64) {
        if let Some(count) = self.addresses.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                self.addresses.remove(&address);
            }
        }
    }
}

/// Notes `id` among the forgotten; says true (for `retain`, which then drops it).
fn gone_too(gone: &mut Vec<[u8; 16]>, id: &[u8; 16]) -> bool {
    gone.push(*id);
    true
}

/// How a request's client is found: its id under today's key, and, computed only when it is
/// not found, its address's hash and its id under yesterday's key.
struct Ids<A, Y> {
    today: [u8; 16],
    address: A,
    yesterday: Y,
}

impl Data {
    /// Forgets what is older than the windows: clients unseen for a day, keys older than
    /// yesterday's, reports older than 24 hours, hours older than 48; and, past [`MAX_CLIENTS`],
    /// the least recently seen tenth.
    fn expire(&mut self, now: i64) {
        let this_hour = now.div_euclid(HOUR);
        for feed in self.feeds.values_mut() {
            let gone = &mut feed.gone;
            feed.clients.retain(|id, client| client.last_seen > now - DAY || !gone_too(gone, id));
            feed.count_addresses();
            for hours in feed.reports.values_mut() {
                hours.retain(|hour, _| *hour >= this_hour - 24);
            }
            feed.reports.retain(|_, hours| !hours.is_empty());
        }
        self.clients = self.feeds.values().map(|feed| feed.clients.len()).sum();
        if self.clients > MAX_CLIENTS {
            let mut seen: Vec<i64> =
                self.feeds.values().flat_map(|feed| feed.clients.values().map(|client| client.last_seen)).collect();
            let cut = seen.len() - MAX_CLIENTS * 9 / 10;
            let (_, limit, _) = seen.select_nth_unstable(cut);
            let limit = *limit;
            for feed in self.feeds.values_mut() {
                let gone = &mut feed.gone;
                feed.clients.retain(|id, client| client.last_seen > limit || !gone_too(gone, id));
                feed.count_addresses();
            }
            self.clients = self.feeds.values().map(|feed| feed.clients.len()).sum();
        }
        self.feeds.retain(|_, feed| {
            !feed.clients.is_empty() || !feed.reports.is_empty() || feed.hours(this_hour).next().is_some()
        });
        let today = now.div_euclid(DAY);
        self.keys.retain(|day, _| *day >= today - 1 && *day <= today);
    }
}

fn new_key() -> [u8; 16] {
    let mut key = [0; 16];
    // Without the system's randomness, a fixed key still counts right; it only hides less.
    if let Err(error) = getrandom::fill(&mut key) {
        tracing::warn!("no random key for counting readers ({error}); using a fixed one");
    }
    key
}

/// The address as clients are told apart: an IPv6 address by its /64.
fn address_bytes(address: IpAddr) -> ([u8; 8], usize) {
    match address.to_canonical() {
        IpAddr::V4(v4) => {
            let mut bytes = [0; 8];
            bytes[..4].copy_from_slice(&v4.octets());
            (bytes, 4)
        }
        IpAddr::V6(v6) => {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&v6.octets()[..8]);
            (bytes, 8)
        }
    }
}

/// The keyed hash of an address alone.
fn address_id(key: &[u8; 16], address: IpAddr) -> u64 {
    let (bytes, length) = address_bytes(address);
    let mut hasher = siphasher::sip::SipHasher13::new_with_key(key);
    hasher.write(&bytes[..length]);
    hasher.finish()
}

/// The keyed hash of a client: the address (an IPv6 one by its /64) and the User-Agent.
fn client_id(key: &[u8; 16], address: IpAddr, user_agent: &[u8]) -> [u8; 16] {
    let mut hasher = siphasher::sip128::SipHasher13::new_with_key(key);
    let (bytes, length) = address_bytes(address);
    hasher.write(&bytes[..length]);
    hasher.write_u8(0);
    hasher.write(user_agent);
    siphasher::sip128::Hasher128::finish128(&hasher).as_bytes()
}

impl Client {
    /// Counts a request; `previous` is when this client asked before, if it did.
    fn count(&mut self, seen: &Seen<'_>, previous: Option<i64>) {
        let fast = previous.filter(|_| self.last_format == seen.format).is_some_and(|last| {
            let ttl = i64::try_from(seen.ttl.as_secs()).unwrap_or(i64::MAX);
            ttl > 0 && (seen.now - last).saturating_mul(10) < ttl.saturating_mul(9)
        });
        self.last_format = seen.format;
        self.last_seen = seen.now;
        self.unsaved = true;
        self.requests = self.requests.saturating_add(1);
        self.unconditional = self.unconditional.saturating_add(u32::from(!seen.conditional));
        self.fast = self.fast.saturating_add(u32::from(fast));
    }
}

/// One feed's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    pub feed: Arc<str>,
    /// Aggregators and the subscribers each reports, most first.
    pub aggregators: Vec<(String, u64)>,
    /// Clients counted one by one in the last 24 hours.
    pub readers: u64,
    /// The last [`HOURS_KEPT`] hours, oldest first, one entry per hour (empty hours too).
    pub hours: Vec<(i64, Hour)>,
}

impl FeedRow {
    pub fn subscribers(&self) -> u64 {
        self.aggregators.iter().fold(self.readers, |sum, (_, count)| sum.saturating_add(*count))
    }

    /// Requests over the last [`HOURS_KEPT`] hours, and how many of them were answered 304.
    pub fn requests(&self) -> Hour {
        self.hours.iter().fold(Hour::default(), |sum, (_, hour)| Hour {
            requests: sum.requests + hour.requests,
            not_modified: sum.not_modified + hour.not_modified,
            unconditional: sum.unconditional + hour.unconditional,
        })
    }
}

/// How one User-Agent family polls, over the clients seen in the last 24 hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRow {
    pub family: String,
    pub clients: u64,
    pub requests: u64,
    pub unconditional: u64,
    pub fast: u64,
    /// Clients that asked more than once and never sent validators.
    pub never_revalidate: u64,
}

/// The counts at one moment, feeds with the most subscribers first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub now: i64,
    pub feeds: Vec<FeedRow>,
    /// Families that poll without validators or faster than the feed's `ttl`, worst first.
    pub misbehaving: Vec<FamilyRow>,
}

impl Report {
    /// The report; pollers only `with_families` (the metrics need none).
    fn of(data: &Data, now: i64, with_families: bool) -> Report {
        let this_hour = now.div_euclid(HOUR);
        let mut feeds = Vec::new();
        let mut families: BTreeMap<&str, FamilyRow> = BTreeMap::new();
        for (name, feed) in &data.feeds {
            let kept: BTreeMap<i64, Hour> = feed.hours(this_hour).collect();
            let hours =
                (this_hour - HOURS_KEPT + 1..=this_hour).map(|h| (h, kept.get(&h).copied().unwrap_or_default()));
            let mut row = FeedRow { feed: name.clone(), aggregators: Vec::new(), readers: 0, hours: hours.collect() };
            for (source, hours) in &feed.reports {
                row.aggregators.push((source.clone(), hours.values().copied().max().unwrap_or(0)));
            }
            for client in feed.clients.values() {
                row.readers += u64::from(client.reported.is_none() && !client.crawler);
                if !with_families {
                    continue;
                }
                let family = families.entry(&client.family).or_insert_with(|| FamilyRow {
                    family: client.family.clone(),
                    clients: 0,
                    requests: 0,
                    unconditional: 0,
                    fast: 0,
                    never_revalidate: 0,
                });
                family.clients += 1;
                family.never_revalidate += u64::from(client.requests > 1 && client.unconditional == client.requests);
                family.requests += u64::from(client.requests);
                family.unconditional += u64::from(client.unconditional);
                family.fast += u64::from(client.fast);
            }
            feeds.push(row);
        }
        for feed in &mut feeds {
            feed.aggregators.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        feeds.sort_by(|a, b| b.subscribers().cmp(&a.subscribers()).then_with(|| a.feed.cmp(&b.feed)));
        let mut misbehaving: Vec<FamilyRow> =
            families.into_values().filter(|f| f.never_revalidate > 0 || f.fast > 0).collect();
        misbehaving.sort_by_key(|f| std::cmp::Reverse(f.never_revalidate.saturating_add(f.fast)));
        misbehaving.truncate(MAX_POLLERS);
        Report { now, feeds, misbehaving }
    }

    /// The `crier_feed_subscribers` series, bounded: the [`TOP_FEEDS`] feeds with the most
    /// subscribers by name and the rest summed as `other`; by source, the [`TOP_SOURCES`]
    /// aggregators with the most subscribers site-wide, the rest as `other`, and [`READERS`].
    pub fn subscriber_series(&self) -> BTreeMap<(String, String), u64> {
        let mut by_source: HashMap<&str, u64> = HashMap::new();
        for feed in &self.feeds {
            for (source, count) in &feed.aggregators {
                let sum = by_source.entry(source).or_default();
                *sum = sum.saturating_add(*count);
            }
        }
        let mut sources: Vec<(&str, u64)> = by_source.into_iter().collect();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let named: std::collections::HashSet<&str> = sources.iter().take(TOP_SOURCES).map(|(s, _)| *s).collect();
        let mut series = BTreeMap::new();
        for (rank, feed) in self.feeds.iter().enumerate() {
            let name = if rank < TOP_FEEDS { feed.feed.to_string() } else { "other".to_owned() };
            let counts = feed.aggregators.iter().map(|(source, count)| {
                let source = match source.as_str() {
                    // An aggregator may call itself what crier's own sources are called.
                    READERS | "other" => format!("{source} (aggregator)"),
                    _ if named.contains(source.as_str()) => source.clone(),
                    _ => "other".to_owned(),
                };
                (source, *count)
            });
            for (source, count) in counts.chain([(READERS.to_owned(), feed.readers)]) {
                let sum: &mut u64 = series.entry((name.clone(), source)).or_default();
                *sum = sum.saturating_add(count);
            }
        }
        series
    }
}

#[cfg(test)]
mod tests;
