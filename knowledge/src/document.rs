//! What extraction produces: a flat list of blocks in reading order.

use serde::{Deserialize, Serialize};

use crate::detect::Format;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// A heading of the given level (1 = top).
    Heading(u8),
    Paragraph,
    ListItem,
    /// A self-contained row ("Plan: Pro; Price: 79 USD/month") from a spreadsheet, CSV or a
    /// table in a document. Rows are never merged with their neighbours, so a price list
    /// answers row by row.
    Row,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
    /// 1-based page (PDF pages; the sheet's page equivalent for spreadsheets); `None` for
    /// formats without pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// For rows: the sheet or table they come from, shown as the last element of the
    /// heading path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl Block {
    pub fn new(kind: BlockKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
            page: None,
            context: None,
        }
    }

    pub fn on_page(mut self, page: u32) -> Self {
        self.page = Some(page);
        self
    }
}

/// A document after extraction.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Extracted {
    pub format: Format,
    /// Pages, or page equivalents for formats without pages (see [`crate::limits`]).
    pub pages: u32,
    pub blocks: Vec<Block>,
    /// Things a person should know that did not stop extraction ("page 7 could not be read").
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The document's own title when it has one (HTML `<title>`, DOCX Title style).
    #[serde(default)]
    pub title: Option<String>,
}

impl Extracted {
    pub fn text_chars(&self) -> usize {
        self.blocks.iter().map(|b| b.text.chars().count()).sum()
    }
}

/// Collapses runs of whitespace into single spaces and trims.
pub fn squash_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
