//! The in-memory index of published posts: by category and by tag, newest first.
//!
//! Posts are added and removed one at a time, so the daemon can keep the index current without
//! rebuilding it; [`Site::feed`] picks, for a feed, the newest posts already due.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as Atomic};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use crate::post::PostMeta;
use crate::text::slugify;

const CATEGORY_FOLDER: &str = "categories";
const TAG_FOLDER: &str = "tags";

/// The folders of the category and tag feeds under the feeds folder (the site feed is at its top).
pub const FEED_FOLDERS: [&str; 2] = [CATEGORY_FOLDER, TAG_FOLDER];

/// Which feed: the whole site, one category or one tag (by slug).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeedKey {
    Site,
    Category(String),
    Tag(String),
}

impl FeedKey {
    /// The file path of this feed under the feeds folder, without extension, unencoded.
    pub fn stem(&self) -> String {
        match self {
            FeedKey::Site => "feed".to_owned(),
            FeedKey::Category(slug) => format!("{CATEGORY_FOLDER}/{slug}"),
            FeedKey::Tag(slug) => format!("{TAG_FOLDER}/{slug}"),
        }
    }

    /// The feed whose file path without extension is `stem`: the inverse of [`FeedKey::stem`].
    pub fn from_stem(stem: &str) -> Option<FeedKey> {
        match stem.split_once('/') {
            None if stem == "feed" => Some(FeedKey::Site),
            // A slug never holds `/` or `.` (which archive pages' names do).
            Some((CATEGORY_FOLDER, slug)) if !slug.contains(['/', '.']) => Some(FeedKey::Category(slug.to_owned())),
            Some((TAG_FOLDER, slug)) if !slug.contains(['/', '.']) => Some(FeedKey::Tag(slug.to_owned())),
            _ => None,
        }
    }
}

/// A post's place in a feed: newest first; ties broken by link, then by file, so the order never
/// depends on insertion. Only the pointer is kept (one per post and feed: millions at 1,000,000
/// posts), the date read from the post.
#[derive(Debug, Clone)]
struct Order {
    post: Arc<PostMeta>,
}

impl Order {
    fn of(post: &Arc<PostMeta>) -> Order {
        Order { post: post.clone() }
    }

    fn date(&self) -> DateTime<Utc> {
        self.post.date.to_utc()
    }
}

impl Ord for Order {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A feed's order is its history's, reversed.
        history_order(&other.post, &self.post)
    }
}

/// A post's place in a feed's history (oldest first; a [`Position`] without copying the link
/// and path): by date, then by link and file, each reversed, so the order never depends on
/// insertion.
fn place(post: &PostMeta) -> (DateTime<Utc>, Reverse<&str>, Reverse<&Path>) {
    (post.date.to_utc(), Reverse(&*post.link), Reverse(&*post.path))
}

/// Where `a` comes in a feed's history against `b`.
fn history_order(a: &PostMeta, b: &PostMeta) -> std::cmp::Ordering {
    place(a).cmp(&place(b))
}

impl PartialOrd for Order {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Order {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Order {}

/// A post's place in a feed's history, oldest first (the reverse of a feed's order): where
/// archive pages are cut.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub date: DateTime<Utc>,
    pub link: Reverse<String>,
    pub path: Reverse<PathBuf>,
}

impl Position {
    pub fn of(post: &PostMeta) -> Position {
        Position {
            date: post.date.to_utc(),
            link: Reverse(post.link.to_string()),
            path: Reverse(post.path.to_path_buf()),
        }
    }

    /// Whether `post` comes at or before this position (without copying its link and path).
    pub fn holds(&self, post: &PostMeta) -> bool {
        place(post) <= (self.date, Reverse(self.link.0.as_str()), Reverse(self.path.0.as_path()))
    }

    /// Whether the `i`th post of `history` comes at or before this position: its date tells,
    /// unless it is this position's date.
    pub fn holds_at(&self, history: History<'_>, i: usize) -> bool {
        match history.dates[i].cmp(&self.date) {
            std::cmp::Ordering::Equal => self.holds(&history.posts[i]),
            before_or_after => before_or_after.is_lt(),
        }
    }

    /// How many of `history`'s posts, from the oldest, come at or before this position (a
    /// binary search of the dates; the posts are read only where dates tie with this one's).
    pub fn count_held(&self, history: History<'_>) -> usize {
        let before = history.dates.partition_point(|date| *date < self.date);
        let tied = history.dates[before..].partition_point(|date| *date == self.date);
        before + history.posts[before..before + tied].partition_point(|post| self.holds(post))
    }
}

/// One feed's worth of posts, chosen.
#[derive(Debug, Clone)]
pub struct FeedPlan {
    pub key: FeedKey,
    /// The category or tag as its newest post writes it; `None` for the site feed.
    pub name: Option<String>,
    pub items: Vec<Arc<PostMeta>>,
}

/// One feed's posts: in feed order, and (made when first asked for, then kept current post by
/// post) as a history, oldest first, so that an update step does not copy a long history.
#[derive(Debug, Default)]
struct FeedSet {
    set: BTreeSet<Order>,
    /// The posts, oldest first, with their versions and dates alongside.
    history: OnceLock<Columns>,
    /// Posts put into or taken out of `history` since it was last asked for: past a share of its
    /// length (a batch of changes, a first load) it is dropped and made again when asked for.
    patches: AtomicUsize,
}

impl FeedSet {
    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    fn iter(&self) -> std::collections::btree_set::Iter<'_, Order> {
        self.set.iter()
    }

    fn len(&self) -> usize {
        self.set.len()
    }

    fn insert(&mut self, order: Order) {
        self.patch(&order.post, |history, at| history.insert(at, &order.post));
        self.set.insert(order);
    }

    fn remove(&mut self, order: &Order) {
        self.patch(&order.post, |history, at| {
            if history.posts.get(at).is_some_and(|p| history_order(p, &order.post).is_eq()) {
                history.remove(at);
            }
        });
        self.set.remove(order);
    }

    /// Applies `change` at `post`'s place in the history, or drops the history when it has been
    /// patched often since it was asked for (patching costs a copy of the history's tail).
    fn patch(&mut self, post: &PostMeta, change: impl FnOnce(&mut Columns, usize)) {
        let Some(len) = self.history.get().map(|history| history.posts.len()) else { return };
        let patches = self.patches.get_mut();
        *patches += 1;
        if *patches > len / 256 + 16 {
            self.history.take();
        } else if let Some(history) = self.history.get_mut() {
            let at = history.posts.partition_point(|p| history_order(p, post).is_lt());
            change(history, at);
        }
    }

    /// Every post, due or not, oldest first, and their versions.
    fn history(&self) -> History<'_> {
        self.patches.store(0, Atomic::Relaxed);
        self.history.get_or_init(|| Columns::of(self.set.iter().rev().map(|o| o.post.clone()).collect())).view()
    }
}

/// A feed's history held as columns: the posts, oldest first, and alongside each its version and
/// date, so that finding where archive pages start and what they hold reads two arrays rather
/// than a post each (a pointer away, seldom cached: 10,000 pages at 1,000,000 posts).
#[derive(Debug, Default)]
pub struct Columns {
    posts: Vec<Arc<PostMeta>>,
    versions: Vec<u64>,
    dates: Vec<DateTime<Utc>>,
    edits: Edits,
}

impl Columns {
    /// The columns of `posts`, which are oldest first.
    pub fn of(posts: Vec<Arc<PostMeta>>) -> Columns {
        let versions = posts.iter().map(|p| p.version).collect();
        let dates = posts.iter().map(|p| p.date.to_utc()).collect();
        Columns { posts, versions, dates, edits: Edits::new() }
    }

    pub fn view(&self) -> History<'_> {
        History { posts: &self.posts, versions: &self.versions, dates: &self.dates, edits: &self.edits }
    }

    fn insert(&mut self, at: usize, post: &Arc<PostMeta>) {
        self.posts.insert(at, post.clone());
        self.versions.insert(at, post.version);
        self.dates.insert(at, post.date.to_utc());
        self.edits.push(Position::of(post), 1);
    }

    fn remove(&mut self, at: usize) {
        let post = self.posts.remove(at);
        self.versions.remove(at);
        self.dates.remove(at);
        self.edits.push(Position::of(&post), -1);
    }
}

/// The posts put into (+1) or taken out of (-1) a history since it was made, at their places,
/// so that what was worked out from it before (where archive pages start, what they hold) can
/// be brought up to date rather than worked out again from every post. The oldest are forgotten
/// past a hundred or so; a [`Mark`] from before them no longer finds its way.
#[derive(Debug)]
pub struct Edits {
    /// Tells these columns from any made before or after.
    id: u64,
    /// How many edits were forgotten.
    forgotten: u64,
    edits: Vec<(Position, isize)>,
}

/// How far into a history's edits a reader has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    id: u64,
    read: u64,
}

impl Default for Edits {
    fn default() -> Edits {
        Edits::new()
    }
}

impl Edits {
    /// Edits kept: between this many and twice as many. A reader (the feed's archive) reads
    /// them at each step; a batch larger than this is planned afresh anyway. Each feed of a site
    /// keeps its own, so they are few: 351 feeds keep at most 45,000 places.
    const KEEP: usize = 64;

    fn new() -> Edits {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Edits { id: IDS.fetch_add(1, Atomic::Relaxed), forgotten: 0, edits: Vec::new() }
    }

    fn push(&mut self, place: Position, delta: isize) {
        if self.edits.len() == 2 * Edits::KEEP {
            self.edits.drain(..Edits::KEEP);
            self.forgotten += Edits::KEEP as u64;
        }
        self.edits.push((place, delta));
    }

    /// Where the edits end now.
    pub fn mark(&self) -> Mark {
        Mark { id: self.id, read: self.forgotten + self.edits.len() as u64 }
    }

    /// The edits made since `mark`, oldest first; `None` when `mark` is another history's or
    /// from before the edits kept.
    pub fn since(&self, mark: Mark) -> Option<&[(Position, isize)]> {
        let from = usize::try_from(mark.read.checked_sub(self.forgotten)?).ok()?;
        (mark.id == self.id).then(|| self.edits.get(from..)).flatten()
    }
}

/// A feed's posts, oldest first, with their versions ([`PostMeta::version`]) and dates (in UTC)
/// alongside, and the edits of the whole history (also of a part taken or skipped).
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub posts: &'a [Arc<PostMeta>],
    pub versions: &'a [u64],
    pub dates: &'a [DateTime<Utc>],
    pub edits: &'a Edits,
}

impl<'a> History<'a> {
    /// The first `len` posts.
    fn take(self, len: usize) -> History<'a> {
        History { posts: &self.posts[..len], versions: &self.versions[..len], dates: &self.dates[..len], ..self }
    }

    /// The posts from the `start`th on.
    pub fn skip(self, start: usize) -> History<'a> {
        History { posts: &self.posts[start..], versions: &self.versions[start..], dates: &self.dates[start..], ..self }
    }

    pub fn len(&self) -> usize {
        self.posts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.posts.is_empty()
    }
}

/// A post file's path as it is compared, sorted and hashed where there are many: its bytes.
/// std's `Path` compares and hashes a component at a time, which a first load of 100,000 posts
/// spent a second of CPU on. Paths so compared come from walks of the one posts folder, which
/// spell each path alike.
pub fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// A post found by its path: the site's map holds no second copy of every path.
#[derive(Debug)]
struct ByPath(Arc<PostMeta>);

impl PartialEq for ByPath {
    fn eq(&self, other: &Self) -> bool {
        path_bytes(&self.0.path) == path_bytes(&other.0.path)
    }
}

impl Eq for ByPath {}

impl Hash for ByPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the key's own hash: `Borrow<[u8]>` finds it by the key.
        path_bytes(&self.0.path).hash(state);
    }
}

impl Borrow<[u8]> for ByPath {
    fn borrow(&self) -> &[u8] {
        path_bytes(&self.0.path)
    }
}

/// The index.
#[derive(Debug, Default)]
pub struct Site {
    /// Hashed with foldhash: a first load of 1,000,000 posts hashes each path here, on one core.
    posts: foldhash::HashSet<ByPath>,
    feeds: BTreeMap<FeedKey, FeedSet>,
}

impl Site {
    pub fn new() -> Site {
        Site::default()
    }

    pub fn len(&self) -> usize {
        self.posts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.posts.is_empty()
    }

    pub fn get(&self, path: &Path) -> Option<&Arc<PostMeta>> {
        self.posts.get(path_bytes(path)).map(|post| &post.0)
    }

    /// Adds or replaces the post at its path; returns the feeds it was in or is now in.
    pub fn insert(&mut self, post: Arc<PostMeta>) -> BTreeSet<FeedKey> {
        let mut touched = self.remove(&post.path);
        let order = Order::of(&post);
        for key in keys_of(&post) {
            self.feeds.entry(key.clone()).or_default().insert(order.clone());
            touched.insert(key);
        }
        self.posts.insert(ByPath(post));
        touched
    }

    /// Adds posts at once (a first load's), each at a path of its own (a path given twice would
    /// leave its first post in the feeds): each feed's order is sorted once, and a feed with no
    /// posts yet is built from it in one go. Returns the feeds they were in or are now in.
    pub fn insert_all(&mut self, posts: Vec<Arc<PostMeta>>) -> BTreeSet<FeedKey> {
        debug_assert_eq!(posts.iter().map(|p| &p.path).collect::<HashSet<_>>().len(), posts.len(), "paths repeat");
        let mut touched = BTreeSet::new();
        let mut orders: foldhash::HashMap<FeedKey, Vec<(DateTime<Utc>, Order)>> = Default::default();
        self.posts.reserve(posts.len());
        for post in posts {
            touched.extend(self.remove(&post.path));
            let order = Order::of(&post);
            for key in keys_of(&post) {
                orders.entry(key).or_default().push((order.date(), order.clone()));
            }
            self.posts.insert(ByPath(post));
        }
        for (key, mut orders) in orders {
            let set = self.feeds.entry(key.clone()).or_default();
            if set.is_empty() {
                // Newest first, as the feed's order; the dates side by side spare reading each
                // post's for every comparison.
                orders.sort_unstable_by(|(a_date, a), (b_date, b)| b_date.cmp(a_date).then_with(|| a.cmp(b)));
                *set = FeedSet { set: orders.into_iter().map(|(_, order)| order).collect(), ..FeedSet::default() };
            } else {
                orders.into_iter().for_each(|(_, order)| set.insert(order));
            }
            touched.insert(key);
        }
        touched
    }

    /// Removes the post at `path`; returns the feeds it was in.
    pub fn remove(&mut self, path: &Path) -> BTreeSet<FeedKey> {
        let Some(ByPath(old)) = self.posts.take(path_bytes(path)) else { return BTreeSet::new() };
        let order = Order::of(&old);
        let keys = keys_of(&old);
        for key in &keys {
            if let Some(set) = self.feeds.get_mut(key) {
                set.remove(&order);
                if set.is_empty() && *key != FeedKey::Site {
                    self.feeds.remove(key);
                }
            }
        }
        keys
    }

    /// One feed at `now`, or `None` when it has no post due.
    pub fn feed(&self, key: &FeedKey, now: DateTime<Utc>, limit: usize) -> Option<FeedPlan> {
        let empty = FeedSet::default();
        // The site feed always exists, even before its first post.
        let set = match self.feeds.get(key) {
            Some(set) => set,
            None if *key == FeedKey::Site => &empty,
            None => return None,
        };
        let limit = if limit == 0 { usize::MAX } else { limit };
        let items: Vec<Arc<PostMeta>> =
            set.iter().filter(|o| o.date() <= now).take(limit).map(|o| o.post.clone()).collect();
        if items.is_empty() && *key != FeedKey::Site {
            return None;
        }
        Some(Site::plan_of(key, items))
    }

    /// Every post of a feed due at `now`, oldest first: the feed's whole history.
    pub fn history(&self, key: &FeedKey, now: DateTime<Utc>) -> History<'_> {
        static NONE: OnceLock<Columns> = OnceLock::new();
        let Some(set) = self.feeds.get(key) else { return NONE.get_or_init(Columns::default).view() };
        let history = set.history();
        history.take(history.dates.partition_point(|date| *date <= now))
    }

    /// How many posts of a feed are due at `now` (the length of its [`Site::history`]).
    pub fn due_count(&self, key: &FeedKey, now: DateTime<Utc>) -> usize {
        // Newest first: the posts not yet due lead the set.
        self.feeds.get(key).map_or(0, |set| set.len() - set.iter().take_while(|o| o.date() > now).count())
    }

    /// The plan of a feed holding `items` (newest first), named as its newest post writes it.
    pub fn plan_of(key: &FeedKey, items: Vec<Arc<PostMeta>>) -> FeedPlan {
        let name = items.first().and_then(|newest| name_in(newest, key));
        FeedPlan { key: key.clone(), name, items }
    }

    /// Every feed that has a post (due or not).
    pub fn keys(&self) -> BTreeSet<FeedKey> {
        self.feeds.keys().cloned().collect()
    }

    /// The feeds of the posts dated after `from` and up to `to`: those that change when the
    /// clock moves from one to the other.
    pub fn keys_due_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BTreeSet<FeedKey> {
        let Some(site) = self.feeds.get(&FeedKey::Site) else { return BTreeSet::new() };
        site.iter()
            .skip_while(|o| o.date() > to)
            .take_while(|o| o.date() > from)
            .flat_map(|o| keys_of(&o.post))
            .collect()
    }

    /// How many posts are dated after `now`.
    pub fn scheduled(&self, now: DateTime<Utc>) -> usize {
        self.feeds.get(&FeedKey::Site).map_or(0, |set| set.iter().take_while(|o| o.date() > now).count())
    }

    /// The earliest post date after `now`: when the published set changes by itself next.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Newest first: the posts after `now` lead the set, so this costs only the scheduled ones.
        let site = self.feeds.get(&FeedKey::Site)?;
        site.iter().map(|o| o.date()).take_while(|d| *d > now).last()
    }
}

/// The feeds a post belongs to. A post whose category or tag slugs to nothing is only in the others.
fn keys_of(post: &PostMeta) -> BTreeSet<FeedKey> {
    let mut keys = BTreeSet::from([FeedKey::Site]);
    keys.extend(post.categories.iter().map(|c| slugify(c)).filter(|s| !s.is_empty()).map(FeedKey::Category));
    keys.extend(post.tags.iter().map(|t| slugify(t)).filter(|s| !s.is_empty()).map(FeedKey::Tag));
    keys
}

fn name_in(post: &PostMeta, key: &FeedKey) -> Option<String> {
    let (names, slug) = match key {
        FeedKey::Site => return None,
        FeedKey::Category(slug) => (&post.categories, slug),
        FeedKey::Tag(slug) => (&post.tags, slug),
    };
    names.iter().find(|n| slugify(n) == *slug).map(|n| n.to_string())
}

#[cfg(test)]
impl Site {
    /// Every feed that has a post due at `now`: its newest `limit` due posts (0: all).
    fn feeds(&self, now: DateTime<Utc>, limit: usize) -> Vec<FeedPlan> {
        let mut plans = vec![self.feed(&FeedKey::Site, now, limit).unwrap_or(FeedPlan {
            key: FeedKey::Site,
            name: None,
            items: Vec::new(),
        })];
        plans.extend(self.feeds.keys().filter(|k| **k != FeedKey::Site).filter_map(|k| self.feed(k, now, limit)));
        plans
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn post(path: &str, date: &str, categories: &[&str], tags: &[&str]) -> Arc<PostMeta> {
        Arc::new(PostMeta {
            categories: categories.iter().map(|s| crate::text::Term::new(s)).collect(),
            tags: tags.iter().map(|s| crate::text::Term::new(s)).collect(),
            ..PostMeta::example(path, DateTime::parse_from_rfc3339(date).unwrap())
        })
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().to_utc()
    }

    fn paths(plan: &FeedPlan) -> Vec<&str> {
        plan.items.iter().map(|p| p.path.to_str().unwrap()).collect()
    }

    #[test]
    fn newest_first_ties_by_link_and_limit() {
        let mut site = Site::new();
        site.insert(post("b", "2021-01-01T00:00:00+08:00", &["News"], &[]));
        site.insert(post("a", "2021-01-01T00:00:00+08:00", &["news"], &[]));
        site.insert(post("c", "2021-01-02T00:00:00Z", &[], &["x"]));
        site.insert(post("d", "2020-12-31T17:00:00-08:00", &[], &[]));
        let feeds = site.feeds(now(), 3);
        assert_eq!(paths(&feeds[0]), ["c", "d", "a"]);
        let news = feeds.iter().find(|f| f.key == FeedKey::Category("news".into())).unwrap();
        assert_eq!(paths(news), ["a", "b"]);
        // Both spell the category; the newest post ("a", first by link) decides the title.
        assert_eq!(news.name.as_deref(), Some("news"));
        assert_eq!(site.feeds(now(), 0)[0].items.len(), 4);
    }

    #[test]
    fn a_history_lists_its_edits_since_a_mark_while_it_keeps_them() {
        let mut site = Site::new();
        site.insert(post("a", "2021-01-01T00:00:00Z", &[], &[]));
        let mark = site.history(&FeedKey::Site, now()).edits.mark();
        assert_eq!(site.history(&FeedKey::Site, now()).edits.since(mark), Some(&[][..]));
        // An edit is its old version out, its new one in; a new post is one in.
        site.insert(post("a", "2021-02-01T00:00:00Z", &[], &[]));
        site.insert(post("b", "2021-03-01T00:00:00Z", &[], &[]));
        let history = site.history(&FeedKey::Site, now());
        let edits: Vec<(String, isize)> =
            history.edits.since(mark).unwrap().iter().map(|(place, delta)| (place.date.to_rfc3339(), *delta)).collect();
        let day = |d: &str| format!("2021-{d}T00:00:00+00:00");
        assert_eq!(edits, [(day("01-01"), -1), (day("02-01"), 1), (day("03-01"), 1)]);
        // Another feed's history, or one made again, does not know the mark.
        let other = Site::new();
        assert_eq!(other.history(&FeedKey::Site, now()).edits.since(mark), None);
        // Past twice the edits kept, the oldest are forgotten: a mark before them is lost.
        let recent = history.edits.mark();
        let edit = |site: &mut Site, i: usize| {
            site.insert(post("b", &format!("2022-01-01T00:{:02}:{:02}Z", i / 60, i % 60), &[], &[]));
            site.history(&FeedKey::Site, now()).edits.mark()
        };
        for i in 0..Edits::KEEP / 2 {
            edit(&mut site, i);
        }
        let history = site.history(&FeedKey::Site, now());
        assert_eq!(history.edits.since(recent).map(<[_]>::len), Some(Edits::KEEP));
        assert_eq!(history.edits.since(mark).map(<[_]>::len), Some(Edits::KEEP + 3));
        let last = (Edits::KEEP / 2..Edits::KEEP).map(|i| edit(&mut site, i)).last().unwrap();
        let history = site.history(&FeedKey::Site, now());
        assert_eq!((history.edits.since(mark), history.edits.since(recent)), (None, None));
        assert_eq!(history.edits.since(last), Some(&[][..]));
    }

    #[test]
    fn insert_replaces_and_reports_touched_feeds() {
        let mut site = Site::new();
        site.insert(post("a", "2021-01-01T00:00:00Z", &["old"], &["t"]));
        let touched = site.insert(post("a", "2021-01-01T00:00:00Z", &["new"], &["t"]));
        let expected: BTreeSet<FeedKey> =
            [FeedKey::Site, FeedKey::Category("old".into()), FeedKey::Category("new".into()), FeedKey::Tag("t".into())]
                .into();
        assert_eq!(touched, expected);
        assert!(site.feed(&FeedKey::Category("old".into()), now(), 10).is_none());
        assert_eq!(site.len(), 1);
        site.remove(Path::new("a"));
        assert!(site.is_empty());
        assert_eq!(site.feeds(now(), 10).len(), 1, "the site feed always exists");
    }

    #[test]
    fn future_posts_wait_for_their_time() {
        let mut site = Site::new();
        site.insert(post("now", "2021-01-01T00:00:00Z", &[], &[]));
        site.insert(post("later", "2021-06-01T00:00:00Z", &["soon"], &[]));
        let t = DateTime::parse_from_rfc3339("2021-03-01T00:00:00Z").unwrap().to_utc();
        let feeds = site.feeds(t, 10);
        assert_eq!(paths(&feeds[0]), ["now"]);
        assert_eq!(feeds.len(), 1, "a category with only future posts has no feed yet");
        assert_eq!(site.next_due(t).unwrap().to_rfc3339(), "2021-06-01T00:00:00+00:00");
        site.insert(post("much-later", "2021-09-01T00:00:00Z", &[], &[]));
        assert_eq!(site.next_due(t).unwrap().to_rfc3339(), "2021-06-01T00:00:00+00:00", "the earliest due");
        site.remove(Path::new("much-later"));
        assert_eq!(site.next_due(now()), None);
        assert_eq!(site.scheduled(t), 1);
        assert_eq!(site.scheduled(now()), 0);
        let due = site.keys_due_between(t, now());
        assert_eq!(due, BTreeSet::from([FeedKey::Site, FeedKey::Category("soon".into())]));
        assert!(site.keys_due_between(now(), now()).is_empty());
    }

    #[test]
    fn a_kept_history_follows_every_change() {
        // A history asked for between changes is patched; one changed often is made again.
        let mut site = Site::new();
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        for round in 0..400 {
            let path = format!("p{}", next() % 150);
            match next() % 4 {
                0 => {
                    site.remove(Path::new(&path));
                }
                _ => {
                    // Few distinct dates, so that ties (by link, then path) are common.
                    let date = format!("2021-01-{:02}T00:00:00Z", 1 + next() % 5);
                    let tags = if next() % 2 == 0 { vec!["t"] } else { vec![] };
                    site.insert(post(&path, &date, &[], &tags));
                }
            }
            if (round % 3 == 0 && !(150..250).contains(&round)) || round > 350 {
                let t = DateTime::parse_from_rfc3339("2021-01-03T12:00:00Z").unwrap().to_utc();
                for key in [FeedKey::Site, FeedKey::Tag("t".into())] {
                    let history = site.history(&key, t);
                    let versions: Vec<u64> = history.posts.iter().map(|p| p.version).collect();
                    assert_eq!(history.versions, versions);
                    let dates: Vec<DateTime<Utc>> = history.posts.iter().map(|p| p.date.to_utc()).collect();
                    assert_eq!(history.dates, dates);
                    let kept: Vec<&str> = history.posts.iter().map(|p| p.path.to_str().unwrap()).collect();
                    let mut fresh: Vec<&str> = site.feeds.get(&key).map_or(Vec::new(), |set| {
                        set.iter().filter(|o| o.date() <= t).map(|o| o.post.path.to_str().unwrap()).collect()
                    });
                    fresh.reverse();
                    assert_eq!(kept, fresh, "round {round}, {key:?}");
                }
            }
        }
    }

    #[test]
    fn chinese_names_share_a_slug_feed() {
        let mut site = Site::new();
        site.insert(post("a", "2021-01-01T00:00:00Z", &[], &["青岛 财经"]));
        site.insert(post("b", "2021-01-02T00:00:00Z", &[], &["青岛-财经"]));
        let feed = site.feed(&FeedKey::Tag("青岛-财经".into()), now(), 10).unwrap();
        assert_eq!(feed.items.len(), 2);
        assert_eq!(feed.name.as_deref(), Some("青岛-财经"));
        assert_eq!(feed.key.stem(), "tags/青岛-财经");
    }
}
