//! crier: a feed publisher. Post files (YAML front matter over HTML or Markdown) in; RSS 2.0,
//! Atom 1.0 and JSON Feed 1.1 for the whole site, every category and every tag out.
//!
//! Layout, from the bottom up:
//! - [`text`]: XML-safe characters, slugs, cutting excerpts.
//! - [`config`]: the TOML file and flags, validated into one [`config::Config`].
//! - [`post`]: one file's bytes to [`post::PostMeta`] and a body; every failure a [`post::PostError`].
//! - [`render`]: a body to sanitized HTML with absolute URLs, and a summary.
//! - [`site`]: the index of posts by category and tag, newest first; picks each feed's items.
//! - [`feed`]: one feed model written as RSS, Atom, JSON Feed, and the OPML list.
//! - [`publish`]: documents to files with gzip and brotli beside them, atomically.
//! - [`generate`]: reading posts and writing one feed's documents; `crier build`.
//! - [`engine`]: the posts folder's state kept current change by change, and the documents that follow.
//! - [`published`]: the served set (bodies, encodings, validators), swapped whole.
//! - [`http`]: a request to a response: routing, conditional GET, encodings; no sockets.
//! - [`watch`]: notify's events as crier's own hints; the only module that knows notify.
//! - [`server`]: the accept loop on a given listener, with limits and graceful shutdown.
//! - [`systemd`]: sd_notify readiness, status and watchdog; socket activation.
//! - [`daemon`]: `crier serve`, the publisher thread wiring engine, watcher and server.
#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
pub mod engine;
pub mod feed;
pub mod generate;
pub mod http;
pub mod post;
pub mod publish;
pub mod published;
pub mod render;
pub mod server;
pub mod site;
pub mod systemd;
pub mod text;
pub mod watch;
