//! Cutting a document's blocks into passages.
//!
//! Passages follow the document's structure: a heading closes the passage before it, and
//! paragraphs and list items under one heading are packed together up to [`TARGET_TOKENS`].
//! Rows (spreadsheets, tables) are always passages of their own. Sizes are counted in
//! estimated word-piece tokens because the local embedding model reads at most 256 of them:
//! [`MAX_TOKENS`] leaves room for the heading path that is embedded with the text.
//!
//! A passage never spans a page break, so the page it cites is exact.
//!
//! Overlap is only added where structure gives no boundary: when one paragraph is too long
//! for a passage, it is split at sentence ends and each piece repeats the previous piece's
//! last sentence (up to [`OVERLAP_TOKENS`]), so a fact stated across the split is still
//! whole in one passage. Passages that end at a heading or a paragraph end need no overlap;
//! the heading path carries their context. See docs/decisions/0005-knowledge-chunking.md.

use serde::{Deserialize, Serialize};

use crate::document::{Block, BlockKind};

pub const TARGET_TOKENS: usize = 160;
pub const MAX_TOKENS: usize = 220;
pub const OVERLAP_TOKENS: usize = 40;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based order of the passage in its source.
    pub position: u32,
    pub text: String,
    /// Headings above the passage, outermost first (for rows: the sheet or table name last).
    pub heading_path: Vec<String>,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
}

impl Chunk {
    /// What is embedded and indexed: the heading path, then the text.
    pub fn indexed_text(&self) -> String {
        indexed_text(&self.heading_path, &self.text)
    }
}

pub fn indexed_text(heading_path: &[String], text: &str) -> String {
    if heading_path.is_empty() {
        text.to_string()
    } else {
        format!("{}\n{}", heading_path.join(" › "), text)
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// Word pieces a BERT vocabulary needs for `text`, estimated: CJK characters are one piece
/// each; other words about one piece per five characters (English averages 1.3 per word,
/// Indonesian and Dutch a little more).
pub fn estimate_tokens(text: &str) -> usize {
    text.split_whitespace()
        .map(|word| {
            let cjk = word.chars().filter(|&c| is_cjk(c)).count();
            let rest = word.chars().filter(|&c| !is_cjk(c)).count();
            cjk + if rest > 0 { rest.div_ceil(5) } else { 0 }
        })
        .sum()
}

struct Builder {
    chunks: Vec<Chunk>,
    headings: Vec<(u8, String)>,
    parts: Vec<String>,
    tokens: usize,
    pages: Option<(u32, u32)>,
    context: Option<String>,
}

impl Builder {
    fn path(&self) -> Vec<String> {
        let mut path: Vec<String> = self.headings.iter().map(|(_, h)| h.clone()).collect();
        path.extend(self.context.clone());
        path
    }

    fn emit(&mut self, text: String, heading_path: Vec<String>, pages: Option<(u32, u32)>) {
        if text.trim().is_empty() {
            return;
        }
        self.chunks.push(Chunk {
            position: self.chunks.len() as u32,
            text,
            heading_path,
            page_start: pages.map(|p| p.0),
            page_end: pages.map(|p| p.1),
        });
    }

    fn flush(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        let text = self.parts.join("\n");
        let path = self.path();
        let pages = self.pages;
        self.emit(text, path, pages);
        self.parts.clear();
        self.tokens = 0;
        self.pages = None;
    }

    fn note_page(&mut self, page: Option<u32>) {
        if let Some(p) = page {
            self.pages = Some(match self.pages {
                Some((a, b)) => (a.min(p), b.max(p)),
                None => (p, p),
            });
        }
    }

    fn add_text(&mut self, text: &str, page: Option<u32>) {
        let tokens = estimate_tokens(text);
        if tokens > MAX_TOKENS {
            self.flush();
            let path = self.path();
            let pages = page.map(|p| (p, p));
            for piece in split_long(text) {
                self.emit(piece, path.clone(), pages);
            }
            return;
        }
        // A passage stays on one page, so its page number is exact.
        let new_page = matches!((self.pages, page), (Some((_, last)), Some(p)) if p != last);
        if (self.tokens + tokens > TARGET_TOKENS || new_page) && !self.parts.is_empty() {
            self.flush();
        }
        self.parts.push(text.to_string());
        self.tokens += tokens;
        self.note_page(page);
    }
}

pub fn chunk(blocks: &[Block]) -> Vec<Chunk> {
    let mut b = Builder {
        chunks: Vec::new(),
        headings: Vec::new(),
        parts: Vec::new(),
        tokens: 0,
        pages: None,
        context: None,
    };
    for block in blocks {
        if block.context != b.context {
            // A new sheet or table: its blocks sit under its name.
            b.flush();
            b.context = block.context.clone();
        }
        match block.kind {
            BlockKind::Heading(level) => {
                b.flush();
                while b.headings.last().is_some_and(|(l, _)| *l >= level) {
                    b.headings.pop();
                }
                b.headings.push((level, block.text.clone()));
            }
            BlockKind::Paragraph => b.add_text(&block.text, block.page),
            BlockKind::ListItem => {
                let item = block
                    .text
                    .trim_start_matches(['•', '◦', '▪', '-', '*', ' ']);
                b.add_text(&format!("• {item}"), block.page)
            }
            BlockKind::Row => {
                b.flush();
                let path = b.path();
                let pages = block.page.map(|p| (p, p));
                if estimate_tokens(&block.text) > MAX_TOKENS {
                    for piece in split_long(&block.text) {
                        b.emit(piece, path.clone(), pages);
                    }
                } else {
                    b.emit(block.text.clone(), path, pages);
                }
            }
        }
    }
    b.flush();
    b.chunks
}

/// Splits text that is too long for one passage at sentence ends, repeating the last
/// sentence of each piece at the start of the next.
fn split_long(text: &str) -> Vec<String> {
    let sentences = sentences(text);
    let mut pieces = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut tokens = 0;
    for sentence in sentences {
        let t = estimate_tokens(&sentence);
        if t > MAX_TOKENS {
            if !current.is_empty() {
                pieces.push(current.join(" "));
                current.clear();
                tokens = 0;
            }
            pieces.extend(split_words(&sentence));
            continue;
        }
        if tokens + t > TARGET_TOKENS && !current.is_empty() {
            pieces.push(current.join(" "));
            let last = current.last().cloned().unwrap_or_default();
            current.clear();
            tokens = 0;
            let last_tokens = estimate_tokens(&last);
            if last_tokens <= OVERLAP_TOKENS && last_tokens + t <= MAX_TOKENS {
                current.push(last);
                tokens = last_tokens;
            }
        }
        current.push(sentence);
        tokens += t;
    }
    if !current.is_empty() {
        pieces.push(current.join(" "));
    }
    pieces
}

fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if estimate_tokens(&current) + estimate_tokens(word) > TARGET_TOKENS && !current.is_empty()
        {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Sentence ends: `.`, `!`, `?` (and their CJK forms) followed by a space or the end.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        let ends = matches!(c, '。' | '！' | '？')
            || (matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()));
        if ends {
            let s = current.trim().to_string();
            if !s.is_empty() {
                out.push(s);
            }
            current.clear();
        }
    }
    let s = current.trim().to_string();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn para(text: &str) -> Block {
        Block::new(BlockKind::Paragraph, text)
    }

    #[test]
    fn headings_close_passages_and_form_the_path() {
        let blocks = vec![
            Block::new(BlockKind::Heading(1), "Policies"),
            Block::new(BlockKind::Heading(2), "Returns"),
            para("Return within 30 days.").on_page(2),
            Block::new(BlockKind::Heading(2), "Warranty"),
            para("Grinders have two years.").on_page(3),
            Block::new(BlockKind::Heading(1), "Contact"),
            para("Write to us."),
        ];
        let chunks = chunk(&blocks);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].heading_path, vec!["Policies", "Returns"]);
        assert_eq!(chunks[0].page_start, Some(2));
        assert_eq!(chunks[1].heading_path, vec!["Policies", "Warranty"]);
        assert_eq!(chunks[2].heading_path, vec!["Contact"]);
        assert_eq!(chunks[2].position, 2);
        assert_eq!(
            chunks[1].indexed_text(),
            "Policies › Warranty\nGrinders have two years."
        );
    }

    #[test]
    fn rows_stay_alone_and_keep_their_sheet() {
        let mut row = Block::new(BlockKind::Row, "Plan: Pro; Price: 79 USD/month").on_page(1);
        row.context = Some("Plans".into());
        let chunks = chunk(&[row.clone(), row]);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].heading_path, vec!["Plans"]);
    }

    #[test]
    fn small_paragraphs_are_packed_and_long_ones_split_with_overlap() {
        let small: Vec<Block> = (0..10)
            .map(|i| para(&format!("Fact number {i}.")))
            .collect();
        assert_eq!(chunk(&small).len(), 1);

        let long: String = (0..120)
            .map(|i| format!("Sentence {i} says something about coffee beans and roasting."))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = chunk(&[para(&long)]);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(estimate_tokens(&c.text) <= MAX_TOKENS, "{}", c.text);
        }
        // Each piece starts with the sentence the previous one ended with.
        let last_of_first = sentences(&chunks[0].text).pop().unwrap();
        assert!(chunks[1].text.starts_with(&last_of_first));
    }

    #[test]
    fn cjk_counts_per_character() {
        assert_eq!(estimate_tokens("配送 料金"), 4);
        assert_eq!(estimate_tokens("ongkos kirim"), 3);
    }
}
