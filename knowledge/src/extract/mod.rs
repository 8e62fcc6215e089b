//! Text extraction. Every parser here reads bytes somebody uploaded, so the server runs them
//! in a child process ([`isolated`]) with a time and memory limit: a parser that panics, loops
//! or allocates without end costs one FAILED source, never the server.

pub mod docx;
pub mod html;
pub mod isolated;
pub mod pdf;
pub mod sheet;
pub mod text;
pub mod zipguard;

use serde::{Deserialize, Serialize};

use crate::detect::{self, Format};
use crate::document::Extracted;
use crate::limits::MAX_PAGES;

/// Why a file could not be turned into text. The messages are shown to the person who
/// uploaded the file.
#[derive(Serialize, Deserialize, thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum ExtractError {
    #[error("The file is empty.")]
    Empty,
    #[error(
        "No text was found in the file. A scanned document needs text recognition (OCR), \
         which is not supported; upload a version with selectable text."
    )]
    NoText,
    #[error("This file type is not supported: {0}.")]
    Unsupported(String),
    #[error("The file is damaged and could not be read: {0}.")]
    Corrupt(String),
    #[error("The file is password-protected. Remove the password and upload it again.")]
    Encrypted,
    #[error("The file has {pages} pages; a file may have at most {limit} pages.")]
    TooManyPages { pages: u32, limit: u32 },
    #[error(
        "The file unpacks to far more data than it holds (over {limit_mb} MB, or more than \
         {ratio}× its packed size); it looks like a decompression bomb and was refused."
    )]
    Bomb { limit_mb: u64, ratio: u64 },
    #[error("Reading the file took longer than {0} seconds and was stopped.")]
    TimedOut(u64),
    #[error("The file could not be read: {0}.")]
    Crashed(String),
}

/// What the upload step needs before anything is stored: the format and the page count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub format: Format,
    pub pages: u32,
}

/// Extracts the blocks of a document, refusing documents over the page limit.
pub fn extract(bytes: &[u8], name: Option<&str>) -> Result<Extracted, ExtractError> {
    let format = detect::detect(bytes, name)?;
    let extracted = match format {
        Format::Pdf => pdf::extract(bytes, MAX_PAGES)?,
        Format::Xlsx | Format::Xls | Format::Ods => sheet::workbook(bytes, format)?,
        Format::Docx => docx::extract(bytes)?,
        Format::Csv | Format::Html | Format::Markdown | Format::Text => {
            let text = detect::decode_text(bytes).ok_or(ExtractError::Corrupt(
                "the text is not valid UTF-8 or UTF-16".into(),
            ))?;
            match format {
                Format::Csv => sheet::csv(&text)?,
                Format::Html => html::extract(&text),
                Format::Markdown => text::markdown(&text),
                _ => text::plain(&text),
            }
        }
    };
    if extracted.pages > MAX_PAGES {
        return Err(ExtractError::TooManyPages {
            pages: extracted.pages,
            limit: MAX_PAGES,
        });
    }
    if extracted.blocks.is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(extracted)
}

/// Format and page count, as cheaply as the format allows (a PDF's page tree is counted
/// without reading its pages; other formats are extracted).
pub fn inspect(bytes: &[u8], name: Option<&str>) -> Result<Inspection, ExtractError> {
    let format = detect::detect(bytes, name)?;
    let pages = if format == Format::Pdf {
        pdf::page_count(bytes)?
    } else {
        extract(bytes, name)?.pages
    };
    if pages > MAX_PAGES {
        return Err(ExtractError::TooManyPages {
            pages,
            limit: MAX_PAGES,
        });
    }
    Ok(Inspection { format, pages })
}
