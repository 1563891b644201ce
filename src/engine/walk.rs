//! Writing archive pages: every feed's due pages, oldest first, all feeds at once.
//!
//! A first publish writes every page of every feed, and each post is on a page of the site feed,
//! of its categories and of its tags: three or more per format. The pages are taken in the order
//! of their oldest posts, across feeds, a chunk at a time, so that each post's items are written
//! once ([`ArchiveItems`]) and forgotten once every feed has moved past them: what is kept is
//! about a page's span of each feed, not the history.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use super::{DocumentSink, Engine};
use crate::archive::{Archive, Page};
use crate::documents::{self, ArchiveItems};
use crate::feed::Format;
use crate::post::PostMeta;
use crate::site::{FeedKey, History};

/// How many pages are made at once, each in three formats: enough tasks for every core, and
/// few, since two chunks' documents are held at a time (a first publish at 100,000 posts peaked
/// 55 MB higher with 48, and 85 MB higher with 96).
const CHUNK: usize = 16;

/// A feed's archive being brought up to date: its pages (its history is the site's) and which
/// must be written.
pub(super) struct FeedPages {
    pub key: FeedKey,
    pub archive: Archive,
    pub pages: Vec<(Page, bool)>,
}

impl FeedPages {
    /// The posts of each page that must be written.
    pub fn due_pages<'a>(&'a self, history: &'a [Arc<PostMeta>]) -> impl Iterator<Item = &'a [Arc<PostMeta>]> {
        self.pages.iter().filter(|(_, due)| *due).map(|(page, _)| &history[page.range.clone()])
    }
}

/// What walking a feed's pages did.
#[derive(Debug, Default)]
pub(super) struct Walked {
    pub documents: Vec<String>,
    /// The first page whose end moved (from 0), if any did.
    pub cut: Option<usize>,
    /// The walk stopped at a page whose posts are not rendered yet.
    pub waiting: bool,
}

/// One feed's walk: where it is in its pages, and what it did.
struct Walk<'a> {
    feed: &'a mut FeedPages,
    history: History<'a>,
    /// The page (by index in `feed.pages`) to look from for the next due page.
    next: usize,
    walked: Walked,
    /// Nothing more to write: every due page written, or one waiting for its posts.
    stopped: bool,
    /// The pages before this one (by index) have their posts rendered, as far as the walk
    /// looked (set while pages are picked; none once it is planned again).
    ready_below: usize,
}

/// A page made in every format, or how many of its posts fit when the size budget cuts it.
enum Made {
    Cut(usize),
    Pages(Vec<(String, anyhow::Result<Vec<u8>>)>),
}

impl Engine {
    /// Writes every feed's due pages (one feed's in order, from the oldest, pages of all feeds
    /// in the order of their oldest posts). A page over the size budget is cut and written again;
    /// a page whose posts are not all rendered yet stops its feed's walk until they are (a cut can
    /// hand posts to a page that was not due). The walks come back in the order of `work`.
    pub(super) fn walk_all(
        &self,
        work: &mut [FeedPages],
        failed: &HashSet<PathBuf>,
        sink: &dyn DocumentSink,
    ) -> Vec<Walked> {
        let mut walks: Vec<Walk<'_>> = work
            .iter_mut()
            .map(|feed| {
                let history = self.site.history(&feed.key, self.due_until);
                Walk { feed, history, next: 0, walked: Walked::default(), stopped: false, ready_below: 0 }
            })
            .collect();
        let mut items = ArchiveItems::default();
        // A chunk's documents are handed over while the next chunk is made: neither waits for
        // the other's last task, and at most two chunks' documents are held.
        let mut made: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let hand_over = std::mem::take(&mut made);
            let ((), next) = rayon::join(
                || hand_over.into_par_iter().for_each(|(rel, bytes)| sink.accept(&rel, bytes)),
                || self.make_chunk(&mut walks, &mut items, failed),
            );
            match next {
                Some(next) => made = next,
                None => break,
            }
        }
        #[cfg(test)]
        self.items_counted.lock().unwrap().push((items.written, items.most_kept));
        walks.into_iter().map(|walk| walk.walked).collect()
    }

    /// Makes the next chunk of pages and takes what was made; none when no walk has a page left.
    fn make_chunk(
        &self,
        walks: &mut [Walk<'_>],
        items: &mut ArchiveItems,
        failed: &HashSet<PathBuf>,
    ) -> Option<Vec<(String, Vec<u8>)>> {
        let picked = self.pick(walks, failed);
        if picked.is_empty() {
            return None;
        }
        let posts = picked.iter().flat_map(|&(w, p)| &walks[w].history.posts[walks[w].feed.pages[p].0.range.clone()]);
        items.add(&self.config, posts, &self.rendered);
        let made = self.make_pages(walks, &picked, items);
        let made = take_made(walks, &picked, made, failed);
        // No page still to write holds a post older than the oldest post of a walk's next page.
        match walks.iter().filter(|walk| !walk.stopped).filter_map(Walk::next_start).min() {
            Some(date) => items.forget_before(date),
            None => items.clear(),
        }
        Some(made)
    }

    /// The next pages to make, at most [`CHUNK`]: those whose oldest posts are oldest, of every
    /// walk, several of one walk in order. A walk whose next page waits for its posts stops.
    fn pick(&self, walks: &mut [Walk<'_>], failed: &HashSet<PathBuf>) -> Vec<(usize, usize)> {
        // Each page looked at once, unless its walk is planned again.
        let ready = |walk: &mut Walk<'_>, p: usize| {
            let page = &walk.feed.pages[p].0;
            let ready = p < walk.ready_below
                || walk.history.posts[page.range.clone()]
                    .iter()
                    .all(|m| self.rendered.contains_key(&m.path) || failed.contains(&*m.path));
            if ready {
                walk.ready_below = walk.ready_below.max(p + 1);
            }
            ready
        };
        let mut heap = BinaryHeap::new();
        for (w, walk) in walks.iter_mut().enumerate().filter(|(_, walk)| !walk.stopped) {
            match walk.due_from(walk.next) {
                Some(p) if ready(walk, p) => heap.push(Reverse((walk.start(p), w, p))),
                Some(_) => (walk.walked.waiting, walk.stopped) = (true, true),
                None => walk.stopped = true,
            }
        }
        let mut picked = Vec::with_capacity(CHUNK);
        while picked.len() < CHUNK {
            let Some(Reverse((_, w, p))) = heap.pop() else { break };
            picked.push((w, p));
            let walk = &mut walks[w];
            // A later page of the same walk, unless it waits: its walk stops when it comes first.
            if let Some(next) = walk.due_from(p + 1).filter(|next| ready(walk, *next)) {
                heap.push(Reverse((walk.start(next), w, next)));
            }
        }
        picked
    }

    /// Each picked page in every format (each page and format a task of its own: the daemon's
    /// change is often one page); or, when the size budget lets in only some of a page's posts,
    /// how many (oldest first) fit: as many as the first format (in [`Format::ALL`]'s order)
    /// that was cut.
    fn make_pages(&self, walks: &[Walk<'_>], picked: &[(usize, usize)], items: &ArchiveItems) -> Vec<Made> {
        let tasks: Vec<(usize, usize, Format)> =
            picked.iter().flat_map(|&(w, p)| Format::ALL.map(|format| (w, p, format))).collect();
        let mut made: Vec<FormatMade> = tasks
            .into_par_iter()
            .map(|(w, p, format)| {
                let (walk, page) = (&walks[w], &walks[w].feed.pages[p].0);
                let key = &walk.feed.key;
                let posts = &walk.history.posts[page.range.clone()];
                let page = documents::Page { number: page.number, newest: page.newest, posts };
                let rel = documents::archive_path(key, page.number, format);
                (rel, documents::archive_page(&self.config, key, page, format, &self.rendered, items), posts.len())
            })
            .collect();
        let mut pages = Vec::with_capacity(picked.len());
        while !made.is_empty() {
            let formats: Vec<FormatMade> = made.drain(..Format::ALL.len()).collect();
            let mut cut = formats.iter().filter_map(|(_, made, all)| Some((made.as_ref().ok()?.1, *all)));
            pages.push(match cut.find(|(fits, all)| fits < all) {
                Some((fits, _)) => Made::Cut(fits),
                None => {
                    Made::Pages(formats.into_iter().map(|(rel, made, _)| (rel, made.map(|(bytes, _)| bytes))).collect())
                }
            });
        }
        pages
    }
}

/// A page in one format: its path, its bytes and how many of its posts they hold, and how many
/// posts it has.
type FormatMade = (String, anyhow::Result<(Vec<u8>, usize)>, usize);

/// Takes what was made for the `picked` pages, in order: a page cut by the size budget is cut
/// in its archive and its walk planned again from it (the walk's later pages in this chunk are
/// dropped, to be made again from the new plan); a page made is noted as written and its
/// documents returned, to be handed over. A page that cannot be written is logged, not retried.
fn take_made(
    walks: &mut [Walk<'_>],
    picked: &[(usize, usize)],
    made: Vec<Made>,
    failed: &HashSet<PathBuf>,
) -> Vec<(String, Vec<u8>)> {
    let mut planned_again = vec![false; walks.len()];
    let mut accepted = Vec::new();
    for (&(w, p), made) in picked.iter().zip(made) {
        if planned_again[w] {
            continue;
        }
        let walk = &mut walks[w];
        let page = walk.feed.pages[p].0.clone();
        match made {
            Made::Cut(fits) => {
                walk.feed.archive.cut(&page, fits, walk.history.posts);
                // The bound of this page changed (or was added, for the newest).
                walk.walked.cut = Some(walk.walked.cut.map_or(page.number - 1, |first| first.min(page.number - 1)));
                walk.feed.pages = walk.feed.archive.plan(walk.history);
                (walk.next, planned_again[w]) = (p, true);
                walk.ready_below = 0;
            }
            Made::Pages(documents) => {
                walk.feed.archive.wrote(&page, walk.history.posts, &|post| failed.contains(&*post.path));
                for (rel, bytes) in documents {
                    match bytes {
                        Ok(bytes) => accepted.push((rel.clone(), bytes)),
                        Err(error) => tracing::error!("cannot generate {rel}: {error:#}"),
                    }
                    walk.walked.documents.push(rel);
                }
                walk.next = p + 1;
            }
        }
    }
    accepted
}

impl Walk<'_> {
    /// The first due page from `from` on, by index.
    fn due_from(&self, from: usize) -> Option<usize> {
        (from..self.feed.pages.len()).find(|p| self.feed.pages[*p].1)
    }

    /// The date of page `p`'s oldest post.
    fn start(&self, p: usize) -> chrono::DateTime<chrono::Utc> {
        let range = &self.feed.pages[p].0.range;
        self.history.dates.get(range.start).copied().unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// The date of the oldest post of the walk's next due page, if it has one.
    fn next_start(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.due_from(self.next).map(|p| self.start(p))
    }
}
