//! Reading ZIP-based formats (docx, xlsx, ods) without being blown up by them.

use std::io::{Cursor, Read};

use super::ExtractError;
use crate::limits::{MAX_COMPRESSION_RATIO, MAX_UNPACKED_BYTES};

fn bomb() -> ExtractError {
    ExtractError::Bomb {
        limit_mb: MAX_UNPACKED_BYTES / (1024 * 1024),
        ratio: MAX_COMPRESSION_RATIO,
    }
}

pub fn open(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, ExtractError> {
    zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::Corrupt(format!("the ZIP container is damaged ({e})")))
}

/// Refuses archives whose declared sizes add up to more than the limit, or with an entry
/// that inflates more than the ratio allows. The declared sizes can lie; [`read_entry`]
/// enforces the limit on what is really inflated, and the child process's memory limit
/// backs both up for parsers that read the archive themselves.
pub fn check(bytes: &[u8]) -> Result<(), ExtractError> {
    let mut archive = open(bytes)?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| ExtractError::Corrupt(format!("a ZIP entry is damaged ({e})")))?;
        let size = entry.size();
        total = total.saturating_add(size);
        let packed = entry.compressed_size().max(1);
        if size > 1024 * 1024 && size / packed > MAX_COMPRESSION_RATIO {
            return Err(bomb());
        }
    }
    if total > MAX_UNPACKED_BYTES {
        return Err(bomb());
    }
    Ok(())
}

/// Reads one entry, stopping at the unpacked-size limit whatever the entry claims.
pub fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(ExtractError::Corrupt(format!("cannot open {name} ({e})"))),
    };
    let mut out = Vec::new();
    entry
        .take(MAX_UNPACKED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| ExtractError::Corrupt(format!("cannot unpack {name} ({e})")))?;
    if out.len() as u64 > MAX_UNPACKED_BYTES {
        return Err(bomb());
    }
    Ok(Some(out))
}
