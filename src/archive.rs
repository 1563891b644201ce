//! RFC 5005 archive pages: how a feed's history is cut into pages that stay put.
//!
//! Pages are numbered from the oldest. A page is *sealed* when it fills up (`archive_page_size`
//! posts, or fewer when the size budget says so); its upper bound, the [`Position`] of its newest
//! post then, is kept (in the state store, across restarts). The newest page, after the last
//! bound, is still filling. So a post newer than all others only ever lands on the newest page; a
//! post dated into a sealed page's range lands on that page (which may then hold more than the
//! page size); a deleted post leaves its page smaller. Either way only that page's bytes change.
//! A sealed page that outgrows the size budget hands its newest posts to the next page, the only
//! case where a change reaches past the page it lands in.
//!
//! Pure: the engine renders and writes, this module only says which posts go where and which
//! pages must be written again.

use std::ops::Range;
use std::sync::Arc;

use crate::post::PostMeta;
use crate::site::{History, Mark, Position};

/// One feed's archive: the bounds of its sealed pages, and what each page was last written from.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    /// The upper bound of each sealed page, oldest first; page `n` holds the posts after bound
    /// `n - 1` up to and including bound `n`.
    bounds: Vec<Position>,
    /// What each page was last written from, by page number less one.
    written: Vec<Option<Written>>,
    /// What the last plan found, when the bounds rise (they do, unless the state store was
    /// edited).
    seen: Option<Seen>,
}

/// What a page was written from: whether it was the newest page, and a digest of its posts'
/// versions ([`PostMeta::version`], which a new read of a changed file changes), so
/// that it can be kept across restarts (the scan index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub newest: bool,
    pub digest: u128,
}

impl Written {
    /// What `page` holds, less the posts `left_off` it (a body that could not be rendered): such
    /// a page is due again while the post is in its range, so it gets its place once it renders.
    fn of(page: &Page, history: &[Arc<PostMeta>], left_off: &dyn Fn(&PostMeta) -> bool) -> Written {
        // A version stamps its file's path too: the versions alone tell the posts apart.
        let posts = history[page.range.clone()].iter().filter(|post| !left_off(post));
        Written::from_versions(page, posts.map(|post| post.version))
    }

    fn from_versions(page: &Page, versions: impl Iterator<Item = u64>) -> Written {
        Written { newest: page.newest, digest: digest(versions) }
    }
}

/// XXH3-128 of the versions' little-endian bytes (hashed at once: XXH3's streaming interface
/// fed eight bytes at a time was slower than this copy).
fn digest(versions: impl Iterator<Item = u64>) -> u128 {
    let bytes: Vec<u8> = versions.flat_map(u64::to_le_bytes).collect();
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

/// Where each page started and what each sealed page held when the archive was last planned,
/// and how far into the history's edits that was: a plan applies the edits made since (a
/// handful) rather than finding every page's start and digest again (10,000 pages at
/// 1,000,000 posts).
#[derive(Debug, Clone)]
struct Seen {
    mark: Mark,
    /// Where each page starts in the history, the newest page's last.
    starts: Vec<usize>,
    /// The digest of each sealed page's versions.
    digests: Vec<u128>,
}

/// The digest of the versions of the posts in `range` of `history`.
fn digest_of(history: &History<'_>, range: Range<usize>) -> u128 {
    digest(history.versions[range].iter().copied())
}

/// How a feed's archive bounds changed in a step, for the state store: its first `kept` bounds
/// are as they were, `after` follow them, and there are no more. A sealed page adds one at the
/// end, so a step at 1,000,000 posts writes one row, not the site feed's 10,000.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundsChange {
    pub kept: usize,
    pub after: Vec<Position>,
}

impl BoundsChange {
    /// The change that leaves `bounds` (all of them now), the first `kept` as they were.
    pub fn from(bounds: &[Position], kept: usize) -> BoundsChange {
        let kept = kept.min(bounds.len());
        BoundsChange { kept, after: bounds[kept..].to_vec() }
    }

    /// This change, then another that leaves `bounds` with the first `kept` as they were.
    pub fn then(&self, bounds: &[Position], kept: usize) -> BoundsChange {
        BoundsChange::from(bounds, kept.min(self.kept))
    }
}

/// One page: its number (from 1), whether it is the newest, and its posts' range in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub number: usize,
    pub newest: bool,
    pub range: Range<usize>,
}

impl Archive {
    /// The archive whose sealed pages end at `bounds` (as the state store kept them).
    pub fn with_bounds(bounds: Vec<Position>) -> Archive {
        Archive { bounds, written: Vec::new(), seen: None }
    }

    pub fn bounds(&self) -> &[Position] {
        &self.bounds
    }

    /// How many pages there are: the sealed ones and the newest.
    pub fn pages(&self) -> usize {
        self.bounds.len() + 1
    }

    /// Whether page `number` is sealed (its posts no longer change with newer posts).
    pub fn is_sealed(&self, number: usize) -> bool {
        (1..=self.bounds.len()).contains(&number)
    }

    /// Seals the newest page while it holds `page_size` posts or more; says whether any was.
    pub fn seal_full(&mut self, history: History<'_>, page_size: usize) -> bool {
        let page_size = page_size.max(1);
        // Where the newest page starts: after every post the last bound holds (bounds rise, so
        // one binary search, not a walk of every page's end: 10,000 pages at 1,000,000 posts).
        let mut start = self.bounds.last().map_or(0, |bound| bound.count_held(history));
        debug_assert_eq!(Some(start), self.ranges(history).last().map(|p| p.range.start));
        let sealed = history.len() - start >= page_size;
        while history.len() - start >= page_size {
            self.bounds.push(Position::of(&history.posts[start + page_size - 1]));
            start += page_size;
        }
        sealed
    }

    /// Every page, oldest first; the last is the newest.
    pub fn ranges(&self, history: History<'_>) -> Vec<Page> {
        let mut pages = Vec::with_capacity(self.pages());
        let mut start = 0;
        // Pages mostly hold as many posts as the one before: that guess, checked by two dates,
        // spares a binary search on most pages.
        let mut guess = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            let rest = history.skip(start);
            let ends_at = |len: usize| {
                len > 0
                    && len <= rest.len()
                    && bound.holds_at(rest, len - 1)
                    && (len == rest.len() || !bound.holds_at(rest, len))
            };
            let len = if ends_at(guess) { guess } else { bound.count_held(rest) };
            pages.push(Page { number: i + 1, newest: false, range: start..start + len });
            start += len;
            guess = len;
        }
        pages.push(Page { number: self.pages(), newest: true, range: start..history.len() });
        pages
    }

    /// Every page, oldest first, with whether it must be written.
    pub fn plan(&mut self, history: History<'_>) -> Vec<(Page, bool)> {
        self.catch_up(history);
        let Some(seen) = &self.seen else { return self.plan_afresh(history) };
        let count = seen.starts.len();
        let plan = (0..count)
            .map(|i| {
                let end = seen.starts.get(i + 1).copied().unwrap_or(history.len());
                let page = Page { number: i + 1, newest: i + 1 == count, range: seen.starts[i].min(end)..end };
                let digest = seen.digests.get(i).copied();
                let digest = digest.unwrap_or_else(|| digest_of(&history, page.range.clone()));
                let due = self.written.get(i).copied().flatten() != Some(Written { newest: page.newest, digest });
                (page, due)
            })
            .collect();
        debug_assert_eq!(plan, self.plan_afresh(history), "the plan from edits is the plan from scratch");
        plan
    }

    /// The plan found from every post.
    fn plan_afresh(&self, history: History<'_>) -> Vec<(Page, bool)> {
        let ranges = self.ranges(history).into_iter();
        ranges.map(|page| (page.clone(), self.is_due(&page, history.versions))).collect()
    }

    /// Brings what the last plan found up to date with the history: its edits since moved the
    /// starts of the pages after theirs and changed their own page's digest; the pages sealed
    /// since are found. Found afresh when the edits since are not known (another history, too
    /// many) or the bounds do not rise.
    fn catch_up(&mut self, history: History<'_>) {
        let seen = self.seen.take().and_then(|seen| self.caught_up(seen, history));
        self.seen = seen.or_else(|| self.look(history));
    }

    /// `seen` brought up to date (see [`Archive::catch_up`]); `None` when it cannot be.
    fn caught_up(&self, mut seen: Seen, history: History<'_>) -> Option<Seen> {
        let sealed = seen.starts.len() - 1;
        let edits = history.edits.since(seen.mark).filter(|_| sealed <= self.bounds.len())?;
        let mut changed = std::collections::BTreeSet::new();
        for (place, delta) in edits {
            let page = self.bounds[..sealed].partition_point(|bound| bound < place);
            seen.starts[page + 1..].iter_mut().for_each(|start| *start = start.saturating_add_signed(*delta));
            changed.extend((page < sealed).then_some(page));
        }
        for page in changed {
            seen.digests[page] = digest_of(&history, seen.starts[page]..seen.starts[page + 1]);
        }
        for bound in &self.bounds[sealed..] {
            let start = seen.starts[seen.starts.len() - 1];
            let end = start + bound.count_held(history.skip(start));
            seen.digests.push(digest_of(&history, start..end));
            seen.starts.push(end);
        }
        seen.mark = history.edits.mark();
        Some(seen)
    }

    /// Every page's start and sealed page's digest, found from every post; `None` (each plan
    /// is then made afresh) when the bounds do not rise, or when the last is dated after every
    /// post due: then a post not due yet (left out of `history`, its edits still listed) may
    /// fall in a sealed page, as the bounds a clock set back left in the state store allow.
    /// Once the last bound's date is due, every bound's is for good (the engine's time only
    /// moves on, and new bounds are due posts' places).
    fn look(&self, history: History<'_>) -> Option<Seen> {
        let after_all = |bound: &Position| history.dates.last().is_none_or(|last| bound.date > *last);
        if !self.bounds.is_sorted() || self.bounds.last().is_some_and(after_all) {
            return None;
        }
        let pages = self.ranges(history);
        let sealed = &pages[..pages.len() - 1];
        Some(Seen {
            mark: history.edits.mark(),
            starts: pages.iter().map(|page| page.range.start).collect(),
            digests: sealed.iter().map(|page| digest_of(&history, page.range.clone())).collect(),
        })
    }

    /// Whether `page` must be written: its place or its posts (any version) changed since it
    /// was. `versions` are those of the feed's history.
    pub fn is_due(&self, page: &Page, versions: &[u64]) -> bool {
        match self.written.get(page.number - 1) {
            Some(Some(written)) => {
                *written != Written::from_versions(page, versions[page.range.clone()].iter().copied())
            }
            _ => true,
        }
    }

    /// Records that `page` was written, without the posts `left_off` it.
    pub fn wrote(&mut self, page: &Page, history: &[Arc<PostMeta>], left_off: &dyn Fn(&PostMeta) -> bool) {
        self.set_written(page.number, Some(Written::of(page, history, left_off)));
    }

    /// What each page was last written from, by page number.
    pub fn written(&self) -> impl Iterator<Item = (usize, Written)> + '_ {
        self.written.iter().enumerate().filter_map(|(i, w)| w.map(|w| (i + 1, w)))
    }

    /// Takes what page `number` was written from (as kept across a restart), or forgets it
    /// (`None`: the page is written again, e.g. when its file went missing).
    pub fn set_written(&mut self, number: usize, written: Option<Written>) {
        if number == 0 {
            return;
        }
        if self.written.len() < number {
            self.written.resize(number, None);
        }
        self.written[number - 1] = written;
    }

    /// `page` fits only its oldest `fits` posts (at least one): it ends after them, and the rest
    /// move to the next page (a new one, when it was the newest).
    pub fn cut(&mut self, page: &Page, fits: usize, history: &[Arc<PostMeta>]) {
        self.seen = None;
        let bound = Position::of(&history[page.range.start + fits.clamp(1, page.range.len().max(1)) - 1]);
        match self.bounds.get_mut(page.number - 1) {
            Some(sealed) => *sealed = bound,
            None => self.bounds.push(bound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Columns;
    use chrono::DateTime;

    /// Post `n`, a new version of it each call.
    fn post(n: u32) -> Arc<PostMeta> {
        static VERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let date = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap() + chrono::Duration::days(n.into());
        let version = VERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(PostMeta { title: n.to_string().into(), version, ..PostMeta::example(&format!("{n}.md"), date) })
    }

    thread_local! {
        /// The same version of each post from one call to the next, as the engine keeps them.
        static POSTS: Vec<Arc<PostMeta>> = (0..=20).map(post).collect();
    }

    fn history(days: impl IntoIterator<Item = u32>) -> Vec<Arc<PostMeta>> {
        let mut posts: Vec<Arc<PostMeta>> =
            days.into_iter().map(|d| POSTS.with(|posts| posts[d as usize].clone())).collect();
        posts.sort_by_key(|p| Position::of(p));
        posts
    }

    fn columns(posts: &[Arc<PostMeta>]) -> Columns {
        Columns::of(posts.to_vec())
    }

    fn sizes(archive: &Archive, history: &[Arc<PostMeta>]) -> Vec<usize> {
        archive.ranges(columns(history).view()).iter().map(|page| page.range.len()).collect()
    }

    fn due(archive: &Archive, history: &[Arc<PostMeta>]) -> Vec<Page> {
        let versions: Vec<u64> = history.iter().map(|p| p.version).collect();
        archive.ranges(columns(history).view()).into_iter().filter(|page| archive.is_due(page, &versions)).collect()
    }

    fn write_all(archive: &mut Archive, history: &[Arc<PostMeta>]) -> Vec<usize> {
        let due = due(archive, history);
        due.iter().for_each(|page| archive.wrote(page, history, &|_| false));
        due.iter().map(|page| page.number).collect()
    }

    #[test]
    fn pages_fill_from_the_oldest_and_stay_put() {
        let mut archive = Archive::default();
        let posts = history(1..=7);
        assert!(archive.seal_full(columns(&posts).view(), 3));
        assert_eq!(sizes(&archive, &posts), [3, 3, 1]);
        assert_eq!(write_all(&mut archive, &posts), [1, 2, 3]);
        // A newer post: only the newest page changes.
        let posts = history(1..=8);
        assert!(!archive.seal_full(columns(&posts).view(), 3));
        assert_eq!(write_all(&mut archive, &posts), [3]);
        // The newest page fills: it is sealed (gaining its next-archive link), and an empty
        // newest page follows.
        let posts = history(1..=9);
        assert!(archive.seal_full(columns(&posts).view(), 3));
        assert_eq!(sizes(&archive, &posts), [3, 3, 3, 0]);
        assert_eq!(write_all(&mut archive, &posts), [3, 4]);
        // A backdated post lands on the page of its date, which grows; no other page moves.
        let posts = history((1..=9).chain([0]));
        assert!(!archive.seal_full(columns(&posts).view(), 3));
        assert_eq!(sizes(&archive, &posts), [4, 3, 3, 0]);
        assert_eq!(write_all(&mut archive, &posts), [1]);
        // A deleted post leaves its page smaller.
        let posts = history((1..=9).chain([0]).filter(|d| *d != 5));
        assert_eq!(sizes(&archive, &posts), [4, 2, 3, 0]);
        assert_eq!(write_all(&mut archive, &posts), [2]);
        // Nothing changed: nothing to write. An edited post is a new version: its page changes.
        assert!(write_all(&mut archive, &posts).is_empty());
        let mut edited = posts.clone();
        edited[7] = post(8);
        assert_eq!(write_all(&mut archive, &edited), [3]);
    }

    #[test]
    fn a_pages_digest_is_that_of_its_versions_bytes_as_the_state_store_keeps_it() {
        // Digests saved by earlier builds stay comparable: XXH3-128 of the little-endian bytes.
        let page = Page { number: 1, newest: false, range: 0..3 };
        let versions = [7u64, u64::MAX, 1 << 40];
        let bytes: Vec<u8> = versions.iter().flat_map(|v| v.to_le_bytes()).collect();
        let written = Written::from_versions(&page, versions.into_iter());
        assert_eq!(written.digest, xxhash_rust::xxh3::xxh3_128(&bytes));
        assert_ne!(written.digest, Written::from_versions(&page, [7u64, u64::MAX].into_iter()).digest);
    }

    #[test]
    fn bounds_changed_twice_in_a_step_keep_only_what_neither_change_touched() {
        let bounds: Vec<Position> = history(1..=6).iter().map(|p| Position::of(p)).collect();
        // A page sealed (bound 3 added), then in the same step a later page cut (bound 5 moved).
        let sealed = BoundsChange::from(&bounds[..4], 3);
        assert_eq!(sealed, BoundsChange { kept: 3, after: bounds[3..4].to_vec() });
        let then_cut = sealed.then(&bounds, 5);
        assert_eq!(then_cut, BoundsChange { kept: 3, after: bounds[3..].to_vec() });
        // Kept never counts past the bounds there are.
        assert_eq!(BoundsChange::from(&bounds[..2], 4), BoundsChange { kept: 2, after: Vec::new() });
    }

    #[test]
    fn the_same_bounds_give_the_same_pages_after_a_restart() {
        let posts = history(1..=10);
        let mut before = Archive::default();
        before.seal_full(columns(&posts).view(), 4);
        let after = Archive::with_bounds(before.bounds().to_vec());
        assert_eq!(after.ranges(columns(&posts).view()), before.ranges(columns(&posts).view()));
        assert_eq!(due(&after, &posts).len(), 3, "a fresh engine writes every page once");
    }

    #[test]
    fn a_bound_dated_after_every_post_due_does_not_let_posts_to_come_into_the_plan() {
        // Bounds a clock set back left in the store: the last is dated day 17, the engine's time
        // is day 12. A post of day 13, not due yet, is edited in; then its day comes.
        use crate::site::{FeedKey, Site};
        let day =
            |n: i64| DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap().to_utc() + chrono::Duration::days(n);
        let mut site = Site::new();
        (1..=9).for_each(|n| drop(site.insert(post(n))));
        let late = Position { date: day(17), ..Position::of(&post(17)) };
        let mut archive = Archive::with_bounds(vec![
            Position::of(&post(3)),
            Position::of(&site.history(&FeedKey::Site, day(30)).posts[5]),
            late,
        ]);
        let mut check = |site: &Site, now: i64| {
            let history = site.history(&FeedKey::Site, day(now));
            assert_eq!(archive.plan(history), archive.plan_afresh(history), "at day {now}");
        };
        check(&site, 12);
        site.insert(post(13));
        check(&site, 12);
        check(&site, 14);
        site.insert(post(15));
        check(&site, 14);
        check(&site, 20);
    }

    #[test]
    fn a_page_over_budget_hands_its_newest_posts_on() {
        let mut archive = Archive::default();
        let posts = history(1..=10);
        archive.seal_full(columns(&posts).view(), 4);
        assert_eq!(sizes(&archive, &posts), [4, 4, 2]);
        let pages = archive.ranges(columns(&posts).view());
        // The first page fits only its two oldest posts: two move to the second page.
        archive.cut(&pages[0], 2, &posts);
        assert_eq!(sizes(&archive, &posts), [2, 6, 2]);
        // The newest page fits only one: it is sealed after it, and a new newest page follows.
        let pages = archive.ranges(columns(&posts).view());
        archive.cut(pages.last().unwrap(), 1, &posts);
        assert_eq!(sizes(&archive, &posts), [2, 6, 1, 1]);
    }

    #[test]
    fn ranges_are_those_a_binary_search_of_each_bound_finds() {
        // Histories with tied dates and links, bounds sorted or not, repeated or not.
        let mut state = 1u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        for _ in 0..2000 {
            let n = (next() % 30) as usize;
            let mut posts: Vec<Arc<PostMeta>> = (0..n)
                .map(|i| {
                    let date = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap()
                        + chrono::Duration::days((next() % 6) as i64);
                    let link = format!("l{}", next() % 3);
                    Arc::new(PostMeta {
                        link: link.into(),
                        version: next(),
                        ..PostMeta::example(&format!("{i}.md"), date)
                    })
                })
                .collect();
            posts.sort_by_key(|p| Position::of(p));
            let count = if n == 0 { 0 } else { next() % 6 };
            let mut bounds: Vec<Position> = (0..count).map(|_| Position::of(&posts[next() as usize % n])).collect();
            if next() % 2 == 0 {
                bounds.sort();
            }
            let pages = Archive::with_bounds(bounds.clone()).ranges(columns(&posts).view());
            let mut start = 0;
            for (page, bound) in pages.iter().zip(&bounds) {
                let end = start + posts[start..].partition_point(|p| bound.holds(p));
                assert_eq!(page.range, start..end);
                start = end;
            }
            assert_eq!(pages.last().unwrap().range, start..posts.len());
        }
    }
}
