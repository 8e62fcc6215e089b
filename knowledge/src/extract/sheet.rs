//! Spreadsheets (xlsx, xls, ods with `calamine`) and CSV (with `csv`). Each data row becomes a
//! self-contained passage that names its columns ("Plan: Pro; Price: 79 USD/month"), under
//! the sheet's name, so a price list can be answered row by row.

use std::io::Cursor;

use calamine::{open_workbook_auto_from_rs, Data, DataType, Reader};

use super::{zipguard, ExtractError};
use crate::detect::Format;
use crate::document::{squash_whitespace, Block, BlockKind, Extracted};
use crate::limits::{pages_for_rows, ROWS_PER_PAGE};

/// Columns beyond this are ignored (a row is a passage, not a data dump).
const MAX_COLUMNS: usize = 64;
/// A cell longer than this is cut.
const MAX_CELL_CHARS: usize = 2_000;

pub fn workbook(bytes: &[u8], format: Format) -> Result<Extracted, ExtractError> {
    if format != Format::Xls {
        zipguard::check(bytes)?;
    }
    let mut book = open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| {
        let message = e.to_string();
        if message.to_ascii_lowercase().contains("password")
            || message.to_ascii_lowercase().contains("encrypt")
        {
            ExtractError::Encrypted
        } else {
            ExtractError::Corrupt(format!("the workbook could not be opened ({message})"))
        }
    })?;
    let mut table = Table::default();
    let mut warnings = Vec::new();
    for name in book.sheet_names() {
        let range = match book.worksheet_range(&name) {
            Ok(range) => range,
            Err(e) => {
                warnings.push(format!("sheet \"{name}\" could not be read ({e})"));
                continue;
            }
        };
        let rows: Vec<Vec<String>> = range
            .rows()
            .map(|row| row.iter().take(MAX_COLUMNS).map(cell_text).collect())
            .collect();
        table.add_sheet(Some(&name), rows);
    }
    Ok(table.finish(format, warnings))
}

fn cell_text(cell: &Data) -> String {
    let text = match cell {
        Data::DateTime(_) => match cell.as_datetime() {
            Some(dt) if dt.time() == chrono::NaiveTime::MIN => dt.date().to_string(),
            Some(dt) => dt.format("%Y-%m-%d %H:%M").to_string(),
            None => cell.to_string(),
        },
        Data::Error(_) => String::new(),
        _ => cell.to_string(),
    };
    clip(squash_whitespace(&text))
}

fn clip(text: String) -> String {
    if text.chars().count() <= MAX_CELL_CHARS {
        text
    } else {
        text.chars().take(MAX_CELL_CHARS).collect()
    }
}

pub fn csv(text: &str) -> Result<Extracted, ExtractError> {
    let delimiter = guess_delimiter(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            ExtractError::Corrupt(format!("CSV row {} cannot be parsed ({e})", i + 1))
        })?;
        rows.push(
            record
                .iter()
                .take(MAX_COLUMNS)
                .map(|c| clip(squash_whitespace(c)))
                .collect(),
        );
    }
    let mut table = Table::default();
    table.add_sheet(None, rows);
    Ok(table.finish(Format::Csv, Vec::new()))
}

/// The separator of a CSV file: whichever of , ; tab | occurs most in its first line, outside
/// quotes (a comma when none does).
pub fn guess_delimiter(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0), (b'|', 0)];
    let mut quoted = false;
    for c in first.bytes() {
        if c == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (sep, n) in counts.iter_mut() {
                if c == *sep {
                    *n += 1;
                }
            }
        }
    }
    counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map(|(sep, _)| *sep)
        .unwrap_or(b',')
}

/// Rows of all sheets, turned into blocks with running page equivalents.
#[derive(Default)]
struct Table {
    blocks: Vec<Block>,
    pages: u32,
}

impl Table {
    fn add_sheet(&mut self, sheet: Option<&str>, rows: Vec<Vec<String>>) {
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .filter(|r| r.iter().any(|c| !c.is_empty()))
            .collect();
        if rows.is_empty() {
            return;
        }
        let first_page = self.pages + 1;
        let header_at = header_row(&rows);
        let headers = header_at.map(|i| rows[i].clone()).unwrap_or_default();
        for (i, row) in rows.iter().enumerate() {
            let page = first_page + (i as u32) / ROWS_PER_PAGE;
            if Some(i) == header_at {
                continue;
            }
            let block = if header_at.is_some_and(|h| i > h) {
                match row_text(&headers, row) {
                    Some(text) => Block::new(BlockKind::Row, text),
                    None => continue,
                }
            } else {
                // Lines above the header (a title, a note) stay as they are.
                let text = row
                    .iter()
                    .filter(|c| !c.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
                Block::new(BlockKind::Paragraph, text)
            };
            let mut block = block.on_page(page);
            block.context = sheet.map(str::to_string);
            self.blocks.push(block);
        }
        self.pages += pages_for_rows(rows.len());
    }

    fn finish(self, format: Format, warnings: Vec<String>) -> Extracted {
        Extracted {
            format,
            pages: self.pages.max(1),
            blocks: self.blocks,
            warnings,
            title: None,
        }
    }
}

/// The header is the first row, among the first ten, that is all text and at least as wide
/// as half the widest of those rows (a title cell above a table is skipped).
fn header_row(rows: &[Vec<String>]) -> Option<usize> {
    let filled = |r: &Vec<String>| r.iter().filter(|c| !c.is_empty()).count();
    let widest = rows.iter().take(10).map(filled).max().unwrap_or(0);
    if widest < 2 {
        return None;
    }
    rows.iter().take(10).position(|r| {
        let n = filled(r);
        n >= 2
            && n * 2 >= widest
            && r.iter()
                .filter(|c| !c.is_empty())
                .all(|c| c.parse::<f64>().is_err())
    })
}

/// "Header: value; Header: value" for the non-empty cells of a row.
pub(crate) fn row_text(headers: &[String], row: &[String]) -> Option<String> {
    let parts: Vec<String> = row
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| match headers.get(i).filter(|h| !h.is_empty()) {
            Some(h) => format!("{h}: {v}"),
            None => v.clone(),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_name_their_columns() {
        let doc =
            csv("Plan;Price;Seats\r\nBasic;29 USD/month;1\r\nPro;\"79 USD/month\";5\r\n").unwrap();
        let texts: Vec<&str> = doc.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "Plan: Basic; Price: 29 USD/month; Seats: 1",
                "Plan: Pro; Price: 79 USD/month; Seats: 5"
            ]
        );
        assert!(doc.blocks.iter().all(|b| b.kind == BlockKind::Row));
        assert_eq!(doc.pages, 1);
    }

    #[test]
    fn a_title_above_the_header_is_kept_as_a_paragraph() {
        let doc = csv("Duck census,,\nYear,Freshwater,Sea\n2020,12,5\n").unwrap();
        assert_eq!(doc.blocks[0].kind, BlockKind::Paragraph);
        assert_eq!(doc.blocks[0].text, "Duck census");
        assert_eq!(doc.blocks[1].text, "Year: 2020; Freshwater: 12; Sea: 5");
    }

    #[test]
    fn quoted_commas_stay_in_their_cell() {
        let doc = csv("Name,Title\n\"Lozano, Dr\",Head\n").unwrap();
        assert_eq!(doc.blocks[0].text, "Name: Lozano, Dr; Title: Head");
    }

    #[test]
    fn page_equivalents_count_rows() {
        let mut text = String::from("a,b\n");
        for i in 0..120 {
            text.push_str(&format!("x{i},{i}\n"));
        }
        let doc = csv(&text).unwrap();
        assert_eq!(doc.pages, 3);
        assert_eq!(doc.blocks.last().unwrap().page, Some(3));
    }
}
