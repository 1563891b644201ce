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
#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod feed;
pub mod generate;
pub mod post;
pub mod publish;
pub mod render;
pub mod site;
pub mod text;
