//! Word documents (docx): headings (by their style), paragraphs, list items and tables,
//! read straight from `word/document.xml` with `quick-xml`.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{zipguard, ExtractError};
use crate::detect::Format;
use crate::document::{squash_whitespace, Block, BlockKind, Extracted};
use crate::limits::pages_for_chars;

use super::sheet::row_text;

pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    zipguard::check(bytes)?;
    let mut archive = zipguard::open(bytes)?;
    let document = zipguard::read_entry(&mut archive, "word/document.xml")?
        .ok_or_else(|| ExtractError::Corrupt("word/document.xml is missing".into()))?;
    let styles = match zipguard::read_entry(&mut archive, "word/styles.xml")? {
        Some(xml) => heading_styles(&String::from_utf8_lossy(&xml)),
        None => HashMap::new(),
    };
    let document = String::from_utf8(document)
        .map_err(|_| ExtractError::Corrupt("the document text is not UTF-8".into()))?;
    let mut walker = Walker::new(&styles);
    walker.walk(&document)?;
    let chars = walker.blocks.iter().map(|b| b.text.chars().count()).sum();
    Ok(Extracted {
        format: Format::Docx,
        pages: pages_for_chars(chars),
        blocks: walker.blocks,
        warnings: Vec::new(),
        title: walker.title,
    })
}

fn attr(e: &BytesStart, local: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        // Style ids and levels never hold entities; the raw value is the value.
        (a.key.local_name().as_ref() == local).then(|| a.value.to_string())
    })
}

fn local(e: &BytesStart) -> Vec<u8> {
    e.local_name().as_ref().as_bytes().to_vec()
}

/// Style id → heading level: the Title style is level 1 and "heading N" is level N + 1, so a
/// document's title sits above its chapters. Word names these styles in English in
/// styles.xml whatever the user's language; `outlineLvl` covers custom heading styles.
fn heading_styles(xml: &str) -> HashMap<String, u8> {
    let mut map = HashMap::new();
    let mut reader = Reader::from_str(xml);
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match local(&e).as_slice() {
                b"style" => current = attr(&e, "styleId"),
                b"name" => {
                    if let (Some(id), Some(name)) = (&current, attr(&e, "val")) {
                        let name = name.to_ascii_lowercase();
                        if name == "title" {
                            map.insert(id.clone(), 1);
                        } else if let Some(n) = name.strip_prefix("heading ") {
                            if let Ok(n) = n.trim().parse::<u8>() {
                                map.insert(id.clone(), n.saturating_add(1).min(7));
                            }
                        }
                    }
                }
                b"outlineLvl" => {
                    if let (Some(id), Some(level)) = (&current, attr(&e, "val")) {
                        if let Ok(level) = level.parse::<u8>() {
                            map.entry(id.clone())
                                .or_insert(level.saturating_add(2).min(7));
                        }
                    }
                }
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    map
}

#[derive(Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    list: bool,
    outline: Option<u8>,
}

struct Walker<'s> {
    styles: &'s HashMap<String, u8>,
    blocks: Vec<Block>,
    title: Option<String>,
    paragraph: Option<Paragraph>,
    in_text: bool,
    /// Open tables, innermost last: rows of cells.
    tables: Vec<Vec<Vec<String>>>,
    cells: Vec<String>,
}

impl<'s> Walker<'s> {
    fn new(styles: &'s HashMap<String, u8>) -> Self {
        Self {
            styles,
            blocks: Vec::new(),
            title: None,
            paragraph: None,
            in_text: false,
            tables: Vec::new(),
            cells: Vec::new(),
        }
    }

    fn push_text(&mut self, text: &str) {
        if self.in_text {
            if let Some(p) = &mut self.paragraph {
                p.text.push_str(text);
            }
        }
    }

    fn walk(&mut self, xml: &str) -> Result<(), ExtractError> {
        let mut reader = Reader::from_str(xml);
        loop {
            let event = reader.read_event().map_err(|e| {
                ExtractError::Corrupt(format!("the document XML is malformed ({e})"))
            })?;
            match event {
                Event::Start(e) => self.open(&e, false),
                Event::Empty(e) => self.open(&e, true),
                Event::Text(t) => self.push_text(&t.html_content()),
                Event::CData(t) => self.push_text(&t.html_content()),
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => match r.html_content().as_ref() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            _ => String::new(),
                        },
                    };
                    self.push_text(&resolved);
                }
                Event::End(e) => self.close(e.local_name().as_ref().as_bytes()),
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(())
    }

    fn open(&mut self, e: &BytesStart, empty: bool) {
        match local(e).as_slice() {
            b"p" if !empty => self.paragraph = Some(Paragraph::default()),
            b"pStyle" => {
                if let Some(p) = &mut self.paragraph {
                    p.style = attr(e, "val");
                }
            }
            b"outlineLvl" => {
                if let Some(p) = &mut self.paragraph {
                    p.outline = attr(e, "val").and_then(|v| v.parse::<u8>().ok());
                }
            }
            b"numPr" => {
                if let Some(p) = &mut self.paragraph {
                    p.list = true;
                }
            }
            b"t" if !empty => self.in_text = true,
            b"tab" | b"br" | b"cr" => {
                if let Some(p) = &mut self.paragraph {
                    p.text.push(' ');
                }
            }
            b"tbl" if !empty => self.tables.push(Vec::new()),
            b"tr" if !empty => {
                if let Some(table) = self.tables.last_mut() {
                    table.push(Vec::new());
                }
            }
            b"tc" if !empty => self.cells.push(String::new()),
            _ => {}
        }
    }

    fn close(&mut self, name: &[u8]) {
        match name {
            b"t" => self.in_text = false,
            b"p" => {
                let Some(p) = self.paragraph.take() else {
                    return;
                };
                let text = squash_whitespace(&p.text);
                if text.is_empty() {
                    return;
                }
                if let Some(cell) = self.cells.last_mut() {
                    if !cell.is_empty() {
                        cell.push(' ');
                    }
                    cell.push_str(&text);
                    return;
                }
                let level = p
                    .style
                    .as_ref()
                    .and_then(|s| self.styles.get(s).copied())
                    .or_else(|| p.outline.map(|l| l.saturating_add(2).min(7)));
                let kind = match level {
                    Some(level) => BlockKind::Heading(level),
                    None if p.list => BlockKind::ListItem,
                    None => BlockKind::Paragraph,
                };
                if level == Some(1) && self.title.is_none() {
                    self.title = Some(text.clone());
                }
                self.blocks.push(Block::new(kind, text));
            }
            b"tc" => {
                let cell = self.cells.pop().unwrap_or_default();
                if let Some(row) = self.tables.last_mut().and_then(|t| t.last_mut()) {
                    row.push(cell);
                }
            }
            b"tbl" => {
                let Some(rows) = self.tables.pop() else {
                    return;
                };
                let rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .filter(|r| r.iter().any(|c| !c.is_empty()))
                    .collect();
                if let Some(cell) = self.cells.last_mut() {
                    // A table inside a cell is flattened into that cell.
                    let flat: Vec<String> = rows.iter().map(|r| r.join(" | ")).collect();
                    cell.push_str(&flat.join(" "));
                    return;
                }
                let mut rows = rows.into_iter();
                let Some(headers) = rows.next() else {
                    return;
                };
                let mut any = false;
                for row in rows {
                    if let Some(text) = row_text(&headers, &row) {
                        any = true;
                        self.blocks.push(Block::new(BlockKind::Row, text));
                    }
                }
                if !any {
                    self.blocks
                        .push(Block::new(BlockKind::Paragraph, headers.join(" | ")));
                }
            }
            _ => {}
        }
    }
}
