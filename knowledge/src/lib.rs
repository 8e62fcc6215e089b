//! Obrol's knowledge service, as a library the API server calls.
//!
//! - [`detect`] tells a file's format from its bytes, [`extract`] turns it into structured
//!   [`document::Block`]s (run isolated in a child process by the server, see
//!   [`extract::isolated`]), and [`chunk`] cuts the blocks into passages that keep their
//!   heading path and pages.
//! - [`embed`] turns passages into vectors (the local all-MiniLM-L6-v2 model, or an
//!   OpenAI-compatible endpoint), [`fulltext`] is the tantivy BM25 index, and [`fusion`]
//!   merges the two rankings with reciprocal-rank fusion.
//! - [`limits`] holds the per-knowledge-base limits and the page equivalents.
//!
//! PostgreSQL (chunks, vectors, sources) is handled by the server's `knowledge` feature; this
//! crate holds no database code, so every piece here is testable on its own.

pub mod chunk;
pub mod detect;
pub mod document;
pub mod embed;
pub mod extract;
pub mod fulltext;
pub mod fusion;
pub mod limits;
pub mod web;
