// `sqlx::migrate!` embeds the migrations at compile time, but cannot tell Cargo so on stable
// Rust: without this, editing a migration would not rebuild the server that embeds it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
