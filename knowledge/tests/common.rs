//! Paths shared by the knowledge crate's tests.

#![allow(dead_code)]

use std::path::PathBuf;

#[path = "../../tests/src/pdf.rs"]
mod pdf;
#[allow(unused_imports)] // not every test file that includes this module writes PDFs
pub use pdf::pdf_from_objects;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// Documents this project made with real tools (see tests/fixtures/knowledge/README.md).
pub fn own_file(name: &str) -> Vec<u8> {
    let path = workspace().join("tests/fixtures/knowledge").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Documents written by others, kept outside the project (`../shared/fixtures/documents`).
/// `None` (and a note on stderr) when they are not on this machine.
pub fn shared_file(name: &str) -> Option<Vec<u8>> {
    let dir = workspace().join("../shared/fixtures/documents");
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            eprintln!(
                "SKIPPED: {} is not on this machine; the shared-fixture part of this test did \
                 not run",
                dir.join(name).display()
            );
            None
        }
    }
}

/// The embedding model installed by scripts/bootstrap.
pub fn model_dir() -> PathBuf {
    std::env::var_os("OBROL_EMBEDDING_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".obrol/models/all-MiniLM-L6-v2"))
}
