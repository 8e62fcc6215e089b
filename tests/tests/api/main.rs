//! Black-box tests of the real `obrol` binary: one test binary, one module per area.

mod auth;
mod channels;
mod cli;
mod contacts;
mod conversations;
mod credentials;
mod embedded;
mod gateway;
mod isolation;
mod knowledge;
mod people;
mod realtime;
