//! `obrol-test-cluster stop`: stops the shared throw-away cluster the black-box tests use.

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("stop") => {
            let dir = obrol_tests::cluster_dir();
            if obrol_api::db::embedded::stop_if_running(&dir, None)? {
                println!("stopped the test cluster in {}", dir.display());
            }
            Ok(())
        }
        _ => anyhow::bail!("usage: obrol-test-cluster stop"),
    }
}
