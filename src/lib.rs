//! crier: a feed publisher. Post files (YAML front matter over HTML or Markdown) in; RSS 2.0,
//! Atom 1.0 and JSON Feed 1.1 for the whole site, every category and every tag out.
//!
//! Layout, from the bottom layer up: each module uses only modules listed before it, so the
//! arrows point one way, from the commands down to the pure leaves (`tests/layers.rs` checks it):
//! - [`text`]: XML-safe characters, slugs, cutting excerpts. Pure.
//! - [`budget`]: work on many items in parallel with a time budget per item.
//! - [`permalink`]: a permalink pattern, parsed once and expanded per post. Pure.
//! - [`post`]: one file's bytes to [`post::PostMeta`] and a body; every failure a [`post::PostError`]. Pure.
//! - [`shape`]: an HTML body's nesting depth and attribute count capped in one linear pass. Pure.
//! - [`template`]: Liquid in a post body, rendered over `site` and `page`; what cannot be, left out. Pure.
//! - [`render`]: a body to sanitized HTML with absolute URLs, and a summary. Pure.
//! - [`config`]: the TOML file and flags, validated into one immutable [`config::Config`].
//! - [`site`]: the index of posts by category and tag, newest first; picks each feed's items. Pure.
//! - [`archive`]: a feed's history cut into RFC 5005 archive pages that stay put. Pure.
//! - [`feed`]: one feed model written as RSS, Atom, JSON Feed, and the OPML list. Pure.
//! - [`documents`]: a site's documents (feeds, OPML, index page), their paths and media types. Pure.
//! - [`pages`]: the HTML pages for people: the index, and a page beside each feed. Pure.
//! - [`redirect`]: other generators' feed URLs mapped to crier's documents. Pure.
//! - [`source`]: the only module that reads the posts folder: walking, fingerprints, reading posts.
//! - [`engine`]: the posts folder's state kept current change by change, and the documents that follow.
//! - [`feeds_dir`]: documents to files with gzip and brotli beside them, atomically.
//! - [`audience`]: subscriber counts and pollers' manners, from the requests; bounded, private.
//! - [`state`]: crier's state across restarts (WebSub subscriptions, gone feeds, archive bounds), one SQLite database.
//! - [`served`]: the served set (bodies, encodings, validators, response policy), swapped whole.
//! - [`http`]: a request to a response over the served set; no sockets.
//! - [`metrics`]: the Prometheus metrics and their text exposition; labels from bounded sets only.
//! - [`websub`]: the built-in WebSub hub (subscriptions, verification, distribution) and pings.
//! - [`watch`]: notify's events as crier's own hints; the only module that knows notify.
//! - [`server`]: the accept loop on a given listener, with limits and graceful shutdown.
//! - [`systemd`]: sd_notify readiness, status and watchdog; socket activation.
//! - [`build`]: the `build` and `check` commands.
//! - [`daemon`]: `crier serve`: the publisher thread, its inbox, signals, wiring.
#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

pub mod archive;
pub mod audience;
pub mod budget;
pub mod build;
pub mod config;
pub mod daemon;
pub mod documents;
pub mod engine;
pub mod feed;
pub mod feeds_dir;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod permalink;
pub mod post;
pub mod redirect;
pub mod render;
pub mod served;
pub mod server;
pub mod shape;
pub mod site;
pub mod source;
pub mod state;
pub mod systemd;
pub mod template;
pub mod text;
pub mod watch;
pub mod websub;
