//! Obrol's API server as a library: `App::build(config)` assembles it; `main.rs` is a thin
//! command line around it. One folder per feature (`users/`, `teams/`, `companies/`,
//! `audit/`, `auth/`, `knowledge/`, `contacts/`), each with its rules in `mod.rs`, SQL in `store.rs` and GraphQL in
//! `graphql.rs`; shared machinery beside them.

pub mod app;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod companies;
pub mod config;
pub mod contacts;
pub mod conversations;
pub mod db;
pub mod error;
pub mod events;
pub mod graphiql;
pub mod graphql;
pub mod jobs;
pub mod knowledge;
pub mod seed;
pub mod teams;
pub mod users;
