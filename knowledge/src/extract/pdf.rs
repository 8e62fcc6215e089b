//! PDF text, page by page, with `pdf-extract`.
//!
//! `pdf-extract` panics on some real files and is slow on others; the server only calls
//! this inside the isolated child process. Within it, each page is read on its own and a
//! page that fails (or panics) becomes a warning instead of ending the document.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pdf_extract::{Document, PlainTextOutput};

use super::text::paragraphs_to_blocks;
use super::ExtractError;
use crate::detect::Format;
use crate::document::Extracted;

fn load(bytes: &[u8]) -> Result<Document, ExtractError> {
    let loaded = catch_unwind(AssertUnwindSafe(|| Document::load_mem(bytes)))
        .map_err(|_| ExtractError::Corrupt("the PDF structure could not be parsed".into()))?;
    let mut doc = match loaded {
        Ok(doc) => doc,
        Err(err) => {
            let message = err.to_string();
            if message.to_ascii_lowercase().contains("decrypt")
                || message.to_ascii_lowercase().contains("password")
                || message.to_ascii_lowercase().contains("encrypt")
            {
                return Err(ExtractError::Encrypted);
            }
            return Err(ExtractError::Corrupt(format!(
                "not a readable PDF ({message})"
            )));
        }
    };
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        // An empty user password opens "owner-only" protected files; anything else needs
        // the password, which we do not ask for.
        return Err(ExtractError::Encrypted);
    }
    Ok(doc)
}

pub fn page_count(bytes: &[u8]) -> Result<u32, ExtractError> {
    let doc = load(bytes)?;
    let pages = doc.get_pages().len();
    if pages == 0 {
        return Err(ExtractError::Corrupt("the PDF has no pages".into()));
    }
    Ok(pages.try_into().unwrap_or(u32::MAX))
}

pub fn extract(bytes: &[u8], max_pages: u32) -> Result<Extracted, ExtractError> {
    let doc = load(bytes)?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let count: u32 = pages.len().try_into().unwrap_or(u32::MAX);
    if count == 0 {
        return Err(ExtractError::Corrupt("the PDF has no pages".into()));
    }
    if count > max_pages {
        return Err(ExtractError::TooManyPages {
            pages: count,
            limit: max_pages,
        });
    }
    let mut blocks = Vec::new();
    let mut failed = Vec::new();
    for page in pages {
        let mut text = String::new();
        let read = catch_unwind(AssertUnwindSafe(|| {
            let mut output = PlainTextOutput::new(&mut text);
            pdf_extract::output_doc_page(&doc, &mut output, page)
        }));
        match read {
            Ok(Ok(())) => blocks.extend(paragraphs_to_blocks(&text, Some(page))),
            Ok(Err(_)) | Err(_) => failed.push(page),
        }
    }
    if failed.len() == count as usize {
        return Err(ExtractError::Corrupt(
            "none of its pages could be read by the PDF reader".into(),
        ));
    }
    let warnings = if failed.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{} of {count} pages could not be read and were skipped (pages {})",
            failed.len(),
            summarize_pages(&failed)
        )]
    };
    Ok(Extracted {
        format: Format::Pdf,
        pages: count,
        blocks,
        warnings,
        title: None,
    })
}

fn summarize_pages(pages: &[u32]) -> String {
    let mut shown: Vec<String> = pages.iter().take(10).map(u32::to_string).collect();
    if pages.len() > 10 {
        shown.push("…".into());
    }
    shown.join(", ")
}
