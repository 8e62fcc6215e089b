//! Contact files read as a header row and rows of text: CSV (separated by , ; tab or |, in
//! UTF-8 or in UTF-16 with a byte-order mark) and spreadsheets (xlsx, xls, ods: the first
//! sheet).
//!
//! Rows are numbered as a spreadsheet shows them: the header is usually row 1, the first
//! contact row 2, and blank rows count.
//! Problems with the whole file (not text, no header, no rows, too many columns, a quote that
//! is never closed) refuse the file with a message saying where; problems with one row (a
//! wrong number of values, a value too long) skip that row with a reason.

use std::io::Cursor;

use calamine::{open_workbook_auto_from_rs, Data, DataType, Range, Reader};
use obrol_knowledge::detect::{self, Format};
use obrol_knowledge::extract::{sheet, zipguard, ExtractError};

use crate::error::{ApiError, ApiResult};

/// More columns than this is not a contact file.
pub const MAX_COLUMNS: usize = 500;
/// A longer value skips its row.
pub const MAX_CELL_CHARS: usize = 10_000;

enum Body {
    Csv { text: String, delimiter: u8 },
    Sheet(Range<Data>),
}

pub struct Table {
    body: Body,
    headers: Vec<String>,
    rows: usize,
}

/// One row: its number as a spreadsheet shows it, and its values or why it cannot be used.
pub type Row = (usize, Result<Vec<String>, String>);

fn refuse(message: impl Into<String>) -> ApiError {
    ApiError::validation(message)
}

impl Table {
    /// Reads and checks a whole file. CPU-bound: call it off the async runtime.
    pub fn read(name: &str, bytes: &[u8]) -> ApiResult<Table> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(refuse("the file is empty"));
        }
        let format = match detect::detect(bytes, Some(name)) {
            Ok(format) => format,
            // Not UTF-8: read as CSV, which says where the first bad byte is.
            Err(ExtractError::Unsupported(_)) => Format::Csv,
            Err(err) => {
                let message = err.to_string();
                return Err(refuse(message.trim_end_matches('.').to_lowercase()));
            }
        };
        let table = match format {
            Format::Xlsx | Format::Xls | Format::Ods => Self::spreadsheet(bytes, format)?,
            Format::Csv | Format::Text | Format::Markdown => Self::csv(bytes)?,
            other => {
                return Err(refuse(format!(
                "a {} is not a contact file; upload CSV or an Excel or OpenDocument spreadsheet",
                other.label()
            )))
            }
        };
        if table.rows == 0 {
            return Err(refuse(
                "the file has a header row but no rows of contacts under it",
            ));
        }
        Ok(table)
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// How many rows there are under the header.
    pub fn row_count(&self) -> usize {
        self.rows
    }

    pub fn is_spreadsheet(&self) -> bool {
        matches!(self.body, Body::Sheet(_))
    }

    fn csv(bytes: &[u8]) -> ApiResult<Table> {
        let text = detect::decode_text(bytes).ok_or_else(|| not_text(bytes))?;
        let delimiter = sheet::guess_delimiter(&text);
        if let Some(row) = unclosed_quote(&text, delimiter) {
            return Err(refuse(format!(
                "row {row}: a quoted value starts here and is never closed, so the rest of the \
                 file would be read as one value; add the missing quote (\") and upload the file again"
            )));
        }
        let mut table = Table {
            body: Body::Csv { text, delimiter },
            headers: Vec::new(),
            rows: 0,
        };
        let Body::Csv { text, .. } = &table.body else {
            unreachable!("just built as CSV")
        };
        let mut reader = csv_reader(text, delimiter);
        let mut records = reader.byte_records();
        let header = loop {
            match records.next() {
                None => return Err(refuse("the file is empty")),
                Some(Err(err)) => return Err(refuse(format!("the file is not CSV: {err}"))),
                Some(Ok(record)) if record.iter().all(|f| f.trim_ascii().is_empty()) => continue,
                Some(Ok(record)) => break record,
            }
        };
        table.headers = clean_headers(header.iter().map(|f| String::from_utf8_lossy(f)))?;
        let width = table.headers.len();
        let mut rows = 0;
        for record in records {
            let record = record.map_err(|err| refuse(format!("the file is not CSV: {err}")))?;
            if record.iter().all(|f| f.trim_ascii().is_empty()) {
                continue;
            }
            rows += 1;
            if record.len() != width {
                let spread = record
                    .iter()
                    .map(|f| f.iter().filter(|b| **b == b'\n').count())
                    .sum::<usize>();
                if spread > 0 {
                    return Err(refuse(format!(
                        "row {}: a quoted value starts here and runs over {} more lines, so a \
                         closing quote (\") is probably missing; fix the quote and upload the file again",
                        rows + 1,
                        spread
                    )));
                }
            }
        }
        table.rows = rows;
        Ok(table)
    }

    fn spreadsheet(bytes: &[u8], format: Format) -> ApiResult<Table> {
        if format != Format::Xls {
            zipguard::check(bytes).map_err(|e| refuse(e.to_string()))?;
        }
        let mut book = open_workbook_auto_from_rs(Cursor::new(bytes))
            .map_err(|e| refuse(format!("the spreadsheet could not be opened ({e})")))?;
        let range = book
            .worksheet_range_at(0)
            .ok_or_else(|| refuse("the spreadsheet has no sheets"))?
            .map_err(|e| refuse(format!("the first sheet could not be read ({e})")))?;
        if range.width() > MAX_COLUMNS {
            return Err(too_many_columns(range.width()));
        }
        let mut rows = range
            .rows()
            .skip_while(|row| row.iter().all(|c| cell_text(c).trim().is_empty()));
        let header = rows
            .next()
            .ok_or_else(|| refuse("the first sheet is empty"))?;
        let headers = clean_headers(header.iter().map(|c| cell_text(c).into()))?;
        let count = rows
            .filter(|row| !row.iter().all(|c| cell_text(c).trim().is_empty()))
            .count();
        Ok(Table {
            body: Body::Sheet(range),
            headers,
            rows: count,
        })
    }

    /// The rows under the header, skipping the first `skip` (to resume an import).
    pub fn rows(&self, skip: usize) -> Box<dyn Iterator<Item = Row> + Send + '_> {
        let width = self.headers.len();
        let check = move |number: usize, values: Vec<String>| -> Row {
            if values.len() != width {
                return (
                    number,
                    Err(format!(
                        "has {} values where the header has {width} columns (a stray separator or quote?)",
                        values.len()
                    )),
                );
            }
            if values.iter().any(|v| v.chars().count() > MAX_CELL_CHARS) {
                return (
                    number,
                    Err(format!(
                        "has a value longer than {MAX_CELL_CHARS} characters"
                    )),
                );
            }
            (number, Ok(values))
        };
        match &self.body {
            Body::Csv { text, delimiter } => {
                let reader = csv_reader(text, *delimiter);
                let rows = reader
                    .into_byte_records()
                    .filter_map(Result::ok)
                    .filter(|r| !r.iter().all(|f| f.trim_ascii().is_empty()))
                    .skip(1 + skip)
                    .map(move |record| {
                        // The line a record starts on is its row in a spreadsheet (blank
                        // lines included), unless a value above it spans several lines.
                        let line = record.position().map_or(0, |p| p.line() as usize);
                        let values = record
                            .iter()
                            .map(|f| String::from_utf8_lossy(f).trim().to_string())
                            .collect();
                        check(line, values)
                    });
                Box::new(rows)
            }
            Body::Sheet(range) => {
                // The sheet's first used row, counted from 1 as the spreadsheet shows it.
                let first_row = range.start().map_or(1, |(row, _)| row as usize + 1);
                let rows = range
                    .rows()
                    .enumerate()
                    .skip_while(|(_, row)| row.iter().all(|c| cell_text(c).trim().is_empty()))
                    .skip(1)
                    .filter(|(_, row)| !row.iter().all(|c| cell_text(c).trim().is_empty()))
                    .skip(skip)
                    .map(move |(i, row)| {
                        let mut values: Vec<String> = row
                            .iter()
                            .map(|c| cell_text(c).trim().to_string())
                            .collect();
                        // Spreadsheets pad short rows with empty cells; the header decides.
                        values.truncate(width);
                        values.resize(width, String::new());
                        check(first_row + i, values)
                    });
                Box::new(rows)
            }
        }
    }
}

fn csv_reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
}

fn too_many_columns(count: usize) -> ApiError {
    refuse(format!(
        "the file has {count} columns; a contact file has at most {MAX_COLUMNS}"
    ))
}

/// Header names, trimmed; blank ones become "Column N". At least one, at most MAX_COLUMNS.
fn clean_headers<'a>(
    names: impl Iterator<Item = std::borrow::Cow<'a, str>>,
) -> ApiResult<Vec<String>> {
    let mut headers = Vec::new();
    for (i, name) in names.enumerate() {
        if i >= MAX_COLUMNS {
            return Err(refuse(format!(
                "the file has more than {MAX_COLUMNS} columns; a contact file has at most {MAX_COLUMNS}"
            )));
        }
        let name = name.trim();
        headers.push(if name.is_empty() {
            format!("Column {}", i + 1)
        } else {
            name.chars().take(200).collect()
        });
    }
    Ok(headers)
}

/// The row (as a spreadsheet numbers it) where a quoted value opens that the file never
/// closes, read the way the CSV parser reads: a quote opens a value only at its start, and
/// `""` inside a quoted value is a literal quote.
fn unclosed_quote(text: &str, delimiter: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut row = 1;
    let mut row_has_content = false;
    let mut at_field_start = true;
    let mut quoted_since: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted_since.is_some() {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted_since = None;
                }
            }
        } else if b == b'\n' {
            if row_has_content {
                row += 1;
            }
            row_has_content = false;
            at_field_start = true;
        } else if b == delimiter {
            row_has_content = true;
            at_field_start = true;
        } else if b == b'"' && at_field_start {
            row_has_content = true;
            quoted_since = Some(row);
        } else {
            if !b.is_ascii_whitespace() {
                row_has_content = true;
            }
            at_field_start = false;
        }
        i += 1;
    }
    quoted_since
}

/// Why bytes that should be text are not: where the first byte that is not UTF-8 is.
fn not_text(bytes: &[u8]) -> ApiError {
    match std::str::from_utf8(bytes) {
        Err(err) => {
            let at = err.valid_up_to();
            let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
            refuse(format!(
                "the file is not UTF-8 text (line {line} has the byte 0x{:02X}); save it as \
                 \"CSV UTF-8\" (Excel) or with UTF-8 encoding and upload it again",
                bytes[at]
            ))
        }
        Ok(_) => refuse("the file holds control characters, so it is not a CSV file"),
    }
}

/// A cell as text: whole numbers without ".0" (phone numbers typed as numbers), dates as
/// YYYY-MM-DD, errors as empty.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty | Data::Error(_) => String::new(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::DateTime(_) => match cell.as_datetime() {
            Some(dt) if dt.time() == chrono::NaiveTime::MIN => dt.date().to_string(),
            Some(dt) => dt.format("%Y-%m-%d %H:%M").to_string(),
            None => cell.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(table: &Table) -> Vec<Row> {
        table.rows(0).collect()
    }

    #[test]
    fn csv_with_semicolons_bom_and_quotes() {
        let table = Table::read(
            "people.csv",
            "\u{feff}Name;Phone;Note\n\"Lim, Ana\";+62 812 0000 0001;\"says \"\"hi\"\"\"\n\nBudi;;\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(table.headers(), ["Name", "Phone", "Note"]);
        assert_eq!(table.row_count(), 2);
        assert_eq!(
            rows(&table),
            vec![
                (
                    2,
                    Ok(vec![
                        "Lim, Ana".to_string(),
                        "+62 812 0000 0001".to_string(),
                        "says \"hi\"".to_string()
                    ])
                ),
                (
                    3,
                    Ok(vec!["Budi".to_string(), String::new(), String::new()])
                ),
            ]
        );
        assert_eq!(table.rows(1).count(), 1, "resuming skips rows done");
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_read() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "Name,Email\nDewi,dewi@example.com\n".encode_utf16() {
            bytes.extend(unit.to_le_bytes());
        }
        let table = Table::read("export.csv", &bytes).unwrap();
        assert_eq!(table.headers(), ["Name", "Email"]);
        assert_eq!(table.row_count(), 1);
    }

    #[test]
    fn bad_files_are_refused_saying_where() {
        let message = |bytes: &[u8]| match Table::read("x.csv", bytes) {
            Err(err) => err.message(),
            Ok(_) => panic!("{:?} was accepted", String::from_utf8_lossy(bytes)),
        };
        assert!(message(b"").contains("empty"));
        assert!(message(b"Name,Phone\n").contains("no rows"));
        assert!(message(b"Name,City\nAna,S\xE3o Paulo\n").contains("line 2"));
        let unclosed = message(b"Name,Note\nAna,\"fine\nBudi,ok\nChen,ok\n");
        assert!(
            unclosed.contains("row 2") && unclosed.contains("quote"),
            "{unclosed}"
        );
        let wide = format!("{}\n{}\n", "c,".repeat(1_000_000), "v,".repeat(3));
        assert!(message(wide.as_bytes()).contains("more than 500 columns"));
    }

    #[test]
    fn rows_with_the_wrong_shape_are_skipped_with_a_reason() {
        let table = Table::read(
            "x.csv",
            b"Name,Phone\nAna,+6281200000001\nBudi\nChen,+6591234567,extra\n",
        )
        .unwrap();
        let results = rows(&table);
        assert!(results[0].1.is_ok());
        assert!(results[1].1.as_ref().unwrap_err().contains("has 1 values"));
        assert_eq!(results[2].0, 4);
        assert!(results[2].1.is_err());
    }
}
