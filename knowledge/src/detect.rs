//! Which format a file is, decided by its bytes; the file name only breaks ties between
//! text formats (CSV, Markdown, plain text), which have no signature.

use serde::{Deserialize, Serialize};
use std::io::{Cursor, Read};

use crate::extract::ExtractError;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Pdf,
    Xlsx,
    Xls,
    Ods,
    Csv,
    Docx,
    Html,
    Markdown,
    Text,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Pdf => "PDF",
            Format::Xlsx => "Excel workbook (xlsx)",
            Format::Xls => "Excel 97-2003 workbook (xls)",
            Format::Ods => "OpenDocument spreadsheet (ods)",
            Format::Csv => "CSV",
            Format::Docx => "Word document (docx)",
            Format::Html => "web page (HTML)",
            Format::Markdown => "Markdown",
            Format::Text => "plain text",
        }
    }

    pub fn is_spreadsheet(self) -> bool {
        matches!(self, Format::Xlsx | Format::Xls | Format::Ods | Format::Csv)
    }
}

const OLE_SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Detects the format of `bytes`. `name` is the uploaded file name, used only to tell CSV and
/// Markdown from plain text.
pub fn detect(bytes: &[u8], name: Option<&str>) -> Result<Format, ExtractError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ExtractError::Empty);
    }
    let head = &bytes[..bytes.len().min(1024)];
    if find(head, b"%PDF-").is_some() {
        return Ok(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return detect_zip(bytes);
    }
    if bytes.starts_with(&OLE_SIGNATURE) {
        return detect_ole(bytes);
    }
    let text = decode_text(bytes).ok_or(ExtractError::Unsupported(
        "it is not a PDF, Excel, OpenDocument or Word file and not text either \
         (it looks like binary data)"
            .into(),
    ))?;
    Ok(detect_text(&text, name))
}

fn detect_text(text: &str, name: Option<&str>) -> Format {
    let lower_name = name.unwrap_or("").to_ascii_lowercase();
    let start: String = text
        .trim_start()
        .chars()
        .take(256)
        .collect::<String>()
        .to_ascii_lowercase();
    if start.starts_with("<!doctype html") || start.starts_with("<html") || {
        // A page that starts with a comment or <head>.
        start.starts_with('<') && start.contains("<body")
    } {
        return Format::Html;
    }
    if lower_name.ends_with(".csv") || lower_name.ends_with(".tsv") {
        return Format::Csv;
    }
    if lower_name.ends_with(".md") || lower_name.ends_with(".markdown") {
        return Format::Markdown;
    }
    if lower_name.ends_with(".html") || lower_name.ends_with(".htm") {
        return Format::Html;
    }
    if lower_name.ends_with(".txt") {
        return Format::Text;
    }
    if looks_like_markdown(text) {
        Format::Markdown
    } else if looks_like_csv(text) {
        Format::Csv
    } else {
        Format::Text
    }
}

fn looks_like_markdown(text: &str) -> bool {
    text.lines().take(200).any(|line| {
        let t = line.trim_start();
        t.starts_with("# ") || t.starts_with("## ") || t.starts_with("### ")
    })
}

/// At least three lines, each with the same non-zero number of commas or semicolons.
fn looks_like_csv(text: &str) -> bool {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    if lines.len() < 3 {
        return false;
    }
    [',', ';', '\t'].iter().any(|&sep| {
        let first = lines[0].matches(sep).count();
        first > 0 && lines.iter().all(|l| l.matches(sep).count() == first)
    })
}

/// UTF-8 (with or without BOM) or UTF-16 with a BOM; `None` for binary data.
pub fn decode_text(bytes: &[u8]) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8(rest.to_vec()).ok();
    }
    if bytes.len() >= 2 && (bytes[..2] == [0xFF, 0xFE] || bytes[..2] == [0xFE, 0xFF]) {
        let little = bytes[0] == 0xFF;
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if little {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        return String::from_utf16(&units).ok();
    }
    let text = std::str::from_utf8(bytes).ok()?;
    // Text files do not contain NUL or most other control characters.
    let controls = text
        .chars()
        .take(8192)
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
        .count();
    (controls == 0).then(|| text.to_string())
}

fn detect_zip(bytes: &[u8]) -> Result<Format, ExtractError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::Corrupt(format!("the ZIP container is damaged ({e})")))?;
    let has = |archive: &zip::ZipArchive<Cursor<&[u8]>>, name: &str| {
        archive
            .file_names()
            .any(|n| n.is_ok_and(|n| n.eq_ignore_ascii_case(name)))
    };
    if has(&archive, "word/document.xml") {
        return Ok(Format::Docx);
    }
    if has(&archive, "xl/workbook.xml") || has(&archive, "xl/workbook.bin") {
        return Ok(Format::Xlsx);
    }
    if has(&archive, "mimetype") {
        let mut mime = String::new();
        if let Ok(file) = archive.by_name("mimetype") {
            let _ = file.take(200).read_to_string(&mut mime);
        }
        if mime.trim() == "application/vnd.oasis.opendocument.spreadsheet" {
            return Ok(Format::Ods);
        }
        if mime
            .trim()
            .starts_with("application/vnd.oasis.opendocument.text")
        {
            return Err(ExtractError::Unsupported(
                "OpenDocument text (odt) is not supported yet; save it as DOCX or PDF".into(),
            ));
        }
    }
    if has(&archive, "ppt/presentation.xml") {
        return Err(ExtractError::Unsupported(
            "PowerPoint files are not supported; save the slides as PDF".into(),
        ));
    }
    Err(ExtractError::Unsupported(
        "it is a ZIP archive but not a Word, Excel or OpenDocument spreadsheet file".into(),
    ))
}

fn detect_ole(bytes: &[u8]) -> Result<Format, ExtractError> {
    // Old Office files share one container; the workbook stream names the spreadsheet.
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect() };
    if find(bytes, &utf16("Workbook")).is_some() || find(bytes, &utf16("Book")).is_some() {
        return Ok(Format::Xls);
    }
    if find(bytes, &utf16("WordDocument")).is_some() {
        return Err(ExtractError::Unsupported(
            "old Word documents (.doc) are not supported; save it as DOCX or PDF".into(),
        ));
    }
    if find(bytes, &utf16("EncryptedPackage")).is_some() {
        return Err(ExtractError::Encrypted);
    }
    Err(ExtractError::Unsupported(
        "it is an old Office file that is neither an Excel workbook nor a Word document".into(),
    ))
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_formats_follow_content_then_name() {
        assert_eq!(
            detect(b"%PDF-1.7\n...", Some("x.txt")).unwrap(),
            Format::Pdf
        );
        assert_eq!(
            detect(b"<!DOCTYPE html><html><body>x</body></html>", Some("a.pdf")).unwrap(),
            Format::Html
        );
        assert_eq!(detect(b"a,b\n1,2\n", Some("p.csv")).unwrap(), Format::Csv);
        assert_eq!(
            detect(b"a;b\n1;2\n3;4\n", Some("prices")).unwrap(),
            Format::Csv
        );
        assert_eq!(
            detect(b"# Title\n\nbody", Some("notes")).unwrap(),
            Format::Markdown
        );
        assert_eq!(detect(b"hello there", None).unwrap(), Format::Text);
    }

    #[test]
    fn empty_and_binary_are_refused() {
        assert!(matches!(detect(b"", None), Err(ExtractError::Empty)));
        assert!(matches!(detect(b"  \n\t", None), Err(ExtractError::Empty)));
        assert!(matches!(
            detect(&[0, 159, 146, 150, 0, 1, 2], Some("x.pdf")),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            detect(b"PK\x03\x04garbage", None),
            Err(ExtractError::Corrupt(_))
        ));
    }

    #[test]
    fn utf16_text_is_decoded() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend("Ongkos kirim".encode_utf16().flat_map(|u| u.to_le_bytes()));
        assert_eq!(decode_text(&bytes).unwrap(), "Ongkos kirim");
    }
}
