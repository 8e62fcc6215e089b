//! The knowledge-base limits of PRODUCT.md §9, and what a "page" is for formats without
//! pages.
//!
//! - PDF: a page is a page.
//! - Spreadsheets and CSV: [`ROWS_PER_PAGE`] rows make a page (a printed A4 page of a table
//!   holds about 50 rows), counted per sheet and rounded up.
//! - Everything else (DOCX, Markdown, plain text, web pages): [`CHARS_PER_PAGE`] characters
//!   of extracted text make a page (a printed page of prose holds about 3,000 characters),
//!   rounded up.

/// Sources per knowledge base.
pub const MAX_SOURCES: u32 = 10;
/// Bytes over all sources of a knowledge base (uploaded files, fetched pages, pasted text).
pub const MAX_BYTES: u64 = 20 * 1024 * 1024;
/// Pages (or page equivalents) per source.
pub const MAX_PAGES: u32 = 1_000;

pub const ROWS_PER_PAGE: u32 = 50;
pub const CHARS_PER_PAGE: usize = 3_000;

/// The most a ZIP-based file (docx, xlsx, ods) may unpack to, and the most one entry may
/// grow by compared with its compressed size; beyond either it is treated as a
/// decompression bomb.
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
pub const MAX_COMPRESSION_RATIO: u64 = 200;

pub fn pages_for_rows(rows: usize) -> u32 {
    rows.div_ceil(ROWS_PER_PAGE as usize)
        .try_into()
        .unwrap_or(u32::MAX)
}

pub fn pages_for_chars(chars: usize) -> u32 {
    chars
        .div_ceil(CHARS_PER_PAGE)
        .max(1)
        .try_into()
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_equivalents_round_up() {
        assert_eq!(pages_for_rows(1), 1);
        assert_eq!(pages_for_rows(50), 1);
        assert_eq!(pages_for_rows(51), 2);
        assert_eq!(pages_for_chars(0), 1);
        assert_eq!(pages_for_chars(3_001), 2);
    }
}
