//! Plain text and Markdown, and the paragraph splitter PDF pages share.

use crate::detect::Format;
use crate::document::{squash_whitespace, Block, BlockKind, Extracted};
use crate::limits::pages_for_chars;

use super::sheet::row_text;

fn finish(format: Format, blocks: Vec<Block>) -> Extracted {
    let chars = blocks.iter().map(|b| b.text.chars().count()).sum();
    Extracted {
        format,
        pages: pages_for_chars(chars),
        blocks,
        warnings: Vec::new(),
        title: None,
    }
}

pub fn plain(text: &str) -> Extracted {
    finish(Format::Text, paragraphs_to_blocks(text, None))
}

/// Splits text on blank lines into paragraphs, joining the lines of a paragraph (and words
/// hyphenated across a line break). A short, unpunctuated single line followed by a longer
/// paragraph is taken as a heading, which is how section titles come out of PDFs and text
/// files.
pub fn paragraphs_to_blocks(text: &str, page: Option<u32>) -> Vec<Block> {
    let mut paragraphs: Vec<Vec<&str>> = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if paragraphs.last().is_some_and(|p| !p.is_empty()) {
                paragraphs.push(Vec::new());
            }
        } else if let Some(last) = paragraphs.last_mut() {
            last.push(line);
        }
    }
    let joined: Vec<(usize, String)> = paragraphs
        .iter()
        .filter(|p| !p.is_empty())
        .map(|lines| (lines.len(), join_lines(lines)))
        .collect();
    let mut blocks = Vec::new();
    for (i, (line_count, text)) in joined.iter().enumerate() {
        let next_is_long = joined
            .get(i + 1)
            .is_some_and(|(_, next)| next.chars().count() > 120);
        // A numbered section title ("4.5 Refund times") is a heading wherever it stands; an
        // unnumbered short line only when a real paragraph follows it.
        let heading_like = *line_count == 1 && looks_like_heading(text);
        let kind = if heading_like && (next_is_long || is_numbered_section(text)) {
            BlockKind::Heading(heading_level(text))
        } else if is_bullet(text) {
            BlockKind::ListItem
        } else {
            BlockKind::Paragraph
        };
        let mut block = Block::new(kind, text.clone());
        block.page = page;
        blocks.push(block);
    }
    blocks
}

fn join_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        if out.ends_with('-')
            && out.chars().rev().nth(1).is_some_and(|c| c.is_alphabetic())
            && line.chars().next().is_some_and(|c| c.is_lowercase())
        {
            out.pop();
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    squash_whitespace(&out)
}

fn looks_like_heading(text: &str) -> bool {
    let chars = text.chars().count();
    let words = text.split_whitespace().count();
    (2..=80).contains(&chars)
        && words <= 12
        && !text.ends_with(['.', ',', ';', ':', '!', '?'])
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_uppercase() || c.is_numeric() || !c.is_alphabetic())
}

/// "2. Orders", "4.5 Refund times", "A. Scope": a section number, then a capitalised title
/// of a few words.
fn is_numbered_section(text: &str) -> bool {
    let mut words = text.split_whitespace();
    let (Some(number), Some(title)) = (words.next(), words.next()) else {
        return false;
    };
    let number = number.trim_end_matches(['.', ')']);
    let numeric = !number.is_empty() && number.split('.').all(|p| p.parse::<u32>().is_ok());
    let lettered = number.len() == 1 && number.chars().all(|c| c.is_ascii_uppercase());
    (numeric || lettered)
        && title.chars().next().is_some_and(char::is_uppercase)
        && text.split_whitespace().count() <= 10
}

/// "2.3 Returns" is a level-2 heading; anything else is level 1.
fn heading_level(text: &str) -> u8 {
    let number = text.split_whitespace().next().unwrap_or("");
    let number = number.trim_end_matches('.');
    if !number.is_empty() && number.split('.').all(|p| p.parse::<u32>().is_ok()) {
        number.split('.').count().min(6) as u8
    } else {
        1
    }
}

fn is_bullet(text: &str) -> bool {
    text.starts_with(['•', '◦', '▪', '–']) || text.starts_with("- ") || text.starts_with("* ")
}

pub fn markdown(text: &str) -> Extracted {
    let mut blocks = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut in_fence = false;
    let flush = |paragraph: &mut Vec<&str>, blocks: &mut Vec<Block>| {
        if !paragraph.is_empty() {
            blocks.push(Block::new(BlockKind::Paragraph, join_lines(paragraph)));
            paragraph.clear();
        }
    };
    let flush_table = |table: &mut Vec<Vec<String>>, blocks: &mut Vec<Block>| {
        if table.is_empty() {
            return;
        }
        let headers = table.remove(0);
        if table.is_empty() {
            blocks.push(Block::new(BlockKind::Paragraph, headers.join(" | ")));
        }
        for row in table.drain(..) {
            if let Some(text) = row_text(&headers, &row) {
                blocks.push(Block::new(BlockKind::Row, text));
            }
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            flush(&mut paragraph, &mut blocks);
            continue;
        }
        if in_fence {
            if !trimmed.is_empty() {
                paragraph.push(trimmed);
            }
            continue;
        }
        if trimmed.starts_with('|') {
            flush(&mut paragraph, &mut blocks);
            let cells: Vec<String> = trimmed
                .trim_matches('|')
                .split('|')
                .map(|c| squash_whitespace(&strip_inline(c)))
                .collect();
            let separator = cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
            if !separator {
                table.push(cells);
            }
            continue;
        }
        flush_table(&mut table, &mut blocks);
        if trimmed.is_empty() {
            flush(&mut paragraph, &mut blocks);
            continue;
        }
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            flush(&mut paragraph, &mut blocks);
            let title = strip_inline(trimmed[hashes..].trim().trim_end_matches('#'));
            if !title.trim().is_empty() {
                blocks.push(Block::new(
                    BlockKind::Heading(hashes as u8),
                    squash_whitespace(&title),
                ));
            }
            continue;
        }
        if let Some(item) = list_item(trimmed) {
            flush(&mut paragraph, &mut blocks);
            blocks.push(Block::new(
                BlockKind::ListItem,
                squash_whitespace(&strip_inline(item)),
            ));
            continue;
        }
        // A continuation line of a list item belongs to it.
        if paragraph.is_empty() && line.starts_with("  ") {
            if let Some(last) = blocks.last_mut().filter(|b| b.kind == BlockKind::ListItem) {
                last.text.push(' ');
                last.text
                    .push_str(&squash_whitespace(&strip_inline(trimmed)));
                continue;
            }
        }
        paragraph.push(trimmed);
    }
    flush(&mut paragraph, &mut blocks);
    flush_table(&mut table, &mut blocks);
    for block in &mut blocks {
        if block.kind == BlockKind::Paragraph {
            block.text = squash_whitespace(&strip_inline(&block.text));
        }
    }
    blocks.retain(|b| !b.text.is_empty());
    finish(Format::Markdown, blocks)
}

fn list_item(line: &str) -> Option<&str> {
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(bullet) {
            return Some(rest);
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && digits <= 3 {
        let rest = &line[digits..];
        if let Some(rest) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some(rest);
        }
    }
    None
}

/// Drops Markdown emphasis and turns links into their text.
fn strip_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' | '_' | '`' => {
                // Keep underscores inside words (snake_case, e-mail addresses).
                let inside_word = chars[i] == '_'
                    && i > 0
                    && chars[i - 1].is_alphanumeric()
                    && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric());
                if inside_word {
                    out.push('_');
                }
            }
            '!' if chars.get(i + 1) == Some(&'[') => {}
            '[' => {
                // [text](url) → text
                if let Some(close) = chars[i..].iter().position(|&c| c == ']') {
                    let end = i + close;
                    if chars.get(end + 1) == Some(&'(') {
                        if let Some(paren) = chars[end..].iter().position(|&c| c == ')') {
                            out.extend(&chars[i + 1..end]);
                            i = end + paren + 1;
                            continue;
                        }
                    }
                }
                out.push('[');
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_structure() {
        let doc = markdown(
            "# Shipping\n\nWe ship **daily**.\nSee [rates](https://x).\n\n## Zones\n\n\
             - Java: 2 days\n- Bali: 3 days\n\n| Zone | Fee |\n|---|---|\n| Java | 10k |\n",
        );
        let got: Vec<(BlockKind, &str)> = doc
            .blocks
            .iter()
            .map(|b| (b.kind, b.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (BlockKind::Heading(1), "Shipping"),
                (BlockKind::Paragraph, "We ship daily. See rates."),
                (BlockKind::Heading(2), "Zones"),
                (BlockKind::ListItem, "Java: 2 days"),
                (BlockKind::ListItem, "Bali: 3 days"),
                (BlockKind::Row, "Zone: Java; Fee: 10k"),
            ]
        );
    }

    #[test]
    fn plain_text_paragraphs_and_headings() {
        let long = "Pengiriman ke seluruh Indonesia memakan waktu dua sampai lima hari kerja \
                    tergantung lokasi, dan ongkos kirim dihitung dari berat paket.";
        assert!(!is_numbered_section(
            "3 kg of beans cost 20 dollars each week here"
        ));
        assert!(!is_numbered_section("2020 was a good year"));
        let mut doc = plain(&format!(
            "3. Pengiriman\n\n3.1 Ongkos kirim\n\n{long}\n\nsecond para-\ngraph here."
        ));
        assert_eq!(doc.blocks.remove(0).kind, BlockKind::Heading(1));
        assert_eq!(doc.blocks[0].kind, BlockKind::Heading(2));
        assert_eq!(doc.blocks[1].kind, BlockKind::Paragraph);
        assert_eq!(doc.blocks[2].text, "second paragraph here.");
        assert_eq!(doc.pages, 1);
    }
}
