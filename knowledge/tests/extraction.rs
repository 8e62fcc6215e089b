//! Extraction of real files of every supported format.

mod common;

use common::{own_file, shared_file};
use obrol_knowledge::chunk::chunk;
use obrol_knowledge::detect::Format;
use obrol_knowledge::document::{BlockKind, Extracted};
use obrol_knowledge::extract::{extract, inspect, ExtractError};

fn all_text(doc: &Extracted) -> String {
    doc.blocks
        .iter()
        .map(|b| b.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn spreadsheets_in_three_formats_give_the_same_rows() {
    let mut seen = Vec::new();
    for (name, format) in [
        ("prices.xlsx", Format::Xlsx),
        ("prices.xls", Format::Xls),
        ("prices.ods", Format::Ods),
    ] {
        let doc = extract(&own_file(name), Some(name)).unwrap();
        assert_eq!(doc.format, format, "{name}");
        let row = doc
            .blocks
            .iter()
            .find(|b| b.text.contains("Kestrelbean barista hotline"))
            .unwrap_or_else(|| panic!("{name}: {:#?}", doc.blocks));
        assert_eq!(row.kind, BlockKind::Row);
        assert_eq!(row.context.as_deref(), Some("Plans"));
        assert!(
            row.text
                .starts_with("Plan: Business; Price: 299 USD/month; Seats: 15; Support: "),
            "{name}: {}",
            row.text
        );
        let addon = doc
            .blocks
            .iter()
            .find(|b| b.text.contains("Zebrawood grinder warranty"))
            .unwrap();
        assert_eq!(addon.context.as_deref(), Some("Add-ons"));
        seen.push(all_text(&doc));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
}

#[test]
fn csv_with_commas_and_semicolons() {
    let doc = extract(&own_file("prices.csv"), Some("prices.csv")).unwrap();
    assert_eq!(doc.format, Format::Csv);
    assert!(all_text(&doc).contains("Email, live chat and the cassowary cold-brew clinic"));
    let doc = extract(
        &own_file("prices-semicolon.csv"),
        Some("prices-semicolon.csv"),
    )
    .unwrap();
    let kettle = doc
        .blocks
        .iter()
        .find(|b| b.text.contains("Pangolin pour-over kettle"))
        .unwrap();
    assert!(
        kettle.text.contains("Gooseneck spout; matte black"),
        "{}",
        kettle.text
    );
    assert!(all_text(&doc).contains("Note: Dark roast, at most 1,5 kg per order"));
}

#[test]
fn docx_headings_lists_and_tables() {
    let doc = extract(&own_file("handbook.docx"), Some("handbook.docx")).unwrap();
    assert_eq!(doc.format, Format::Docx);
    let kinds = |needle: &str| {
        doc.blocks
            .iter()
            .find(|b| b.text.contains(needle))
            .map(|b| b.kind)
            .unwrap_or_else(|| panic!("{needle} missing in {:#?}", doc.blocks))
    };
    assert_eq!(kinds("pelikanroast"), BlockKind::ListItem);
    assert_eq!(kinds("quokka tamper calibration"), BlockKind::ListItem);
    assert_eq!(kinds("Mangosteen dispatch desk"), BlockKind::Row);
    assert!(doc.title.is_some());
    let headings = doc
        .blocks
        .iter()
        .filter(|b| matches!(b.kind, BlockKind::Heading(_)))
        .count();
    assert!(headings >= 4, "{:#?}", doc.blocks);
    let chunks = chunk(&doc.blocks);
    let ritual = chunks
        .iter()
        .find(|c| c.text.contains("hornbill espresso ritual"))
        .unwrap();
    assert!(ritual.heading_path.len() >= 3, "{:?}", ritual.heading_path);
}

#[test]
fn pdf_pages_are_numbered() {
    let bytes = own_file("policy.pdf");
    assert_eq!(inspect(&bytes, Some("policy.pdf")).unwrap().pages, 3);
    let doc = extract(&bytes, Some("policy.pdf")).unwrap();
    assert_eq!(doc.pages, 3);
    for (page, marker) in [(1, "mangrovebloom"), (2, "cardamoth"), (3, "tapirglass")] {
        let block = doc
            .blocks
            .iter()
            .find(|b| b.text.contains(marker))
            .unwrap_or_else(|| panic!("{marker} missing"));
        assert_eq!(block.page, Some(page), "{marker}");
    }
}

#[test]
fn bad_pdfs_get_clear_errors() {
    let encrypted = own_file("policy-encrypted.pdf");
    assert_eq!(
        extract(&encrypted, Some("x.pdf")).unwrap_err(),
        ExtractError::Encrypted
    );
    assert_eq!(
        inspect(&encrypted, Some("x.pdf")).unwrap_err(),
        ExtractError::Encrypted
    );
    assert_eq!(
        extract(&own_file("scanned.pdf"), Some("scan.pdf")).unwrap_err(),
        ExtractError::NoText
    );
    let mut truncated = own_file("policy.pdf");
    truncated.truncate(truncated.len() / 3);
    assert!(matches!(
        extract(&truncated, Some("x.pdf")),
        Err(ExtractError::Corrupt(_)) | Err(ExtractError::NoText)
    ));
    assert_eq!(
        extract(b"", Some("x.pdf")).unwrap_err(),
        ExtractError::Empty
    );
}

/// A PDF with `pages` empty pages (the smallest valid structure).
fn blank_pdf(pages: usize) -> Vec<u8> {
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", i + 3)).collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        )
        .into_bytes(),
    ];
    for _ in 0..pages {
        objects.push(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>".to_vec());
    }
    common::pdf_from_objects(&objects)
}

#[test]
fn a_pdf_over_the_page_limit_is_refused_before_reading_it() {
    let err = inspect(&blank_pdf(1_001), Some("long.pdf")).unwrap_err();
    assert_eq!(
        err,
        ExtractError::TooManyPages {
            pages: 1_001,
            limit: 1_000
        }
    );
    assert_eq!(
        err.to_string(),
        "The file has 1001 pages; a file may have at most 1000 pages."
    );
    assert_eq!(inspect(&blank_pdf(2), Some("ok.pdf")).unwrap().pages, 2);
}

#[test]
fn content_decides_the_format_not_the_name() {
    let doc = extract(&own_file("handbook.docx"), Some("handbook.pdf")).unwrap();
    assert_eq!(doc.format, Format::Docx);
    let err = extract(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0], Some("x.pdf")).unwrap_err();
    assert!(matches!(err, ExtractError::Unsupported(_)), "{err:?}");
}

#[test]
fn text_markdown_and_html() {
    let doc = extract(&own_file("notes.md"), Some("notes.md")).unwrap();
    assert_eq!(doc.format, Format::Markdown);
    let chunks = chunk(&doc.blocks);
    assert!(chunks
        .iter()
        .any(|c| c.text.contains("salakcrema brew ratio") && !c.heading_path.is_empty()));
    let doc = extract(&own_file("notes.txt"), Some("notes.txt")).unwrap();
    assert_eq!(doc.format, Format::Text);
    assert!(all_text(&doc).contains("Rambutanekspres"));

    let doc = extract(&own_file("page.html"), Some("page.html")).unwrap();
    assert_eq!(doc.format, Format::Html);
    let text = all_text(&doc);
    assert!(text.contains("The Lutungroast Coffee Subscription"));
    assert!(text.contains("bekantan decaf"));
    for marker in [
        "stylemarker",
        "scriptmarker",
        "headermarker",
        "navmarker",
        "cookiemarker",
        "breadcrumbmarker",
        "asidemarker",
        "formmarker",
        "footermarker",
    ] {
        assert!(!text.contains(marker), "{marker} leaked: {text}");
    }
}

/// A workbook whose one sheet inflates from a few hundred kilobytes to a gigabyte.
fn zip_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("xl/workbook.xml", options).unwrap();
        zip.write_all(b"<workbook/>").unwrap();
        zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
        let block = vec![b' '; 1 << 20];
        for _ in 0..1024 {
            zip.write_all(&block).unwrap();
        }
        zip.finish().unwrap();
    }
    out.into_inner()
}

#[test]
fn decompression_bombs_are_refused() {
    let bomb = zip_bomb();
    assert!(bomb.len() < 2 * 1024 * 1024, "{}", bomb.len());
    let err = extract(&bomb, Some("prices.xlsx")).unwrap_err();
    assert!(matches!(err, ExtractError::Bomb { .. }), "{err:?}");
}

#[test]
fn shared_documents_written_by_others() {
    if let Some(pdf) = shared_file("multi_page.pdf") {
        let doc = extract(&pdf, Some("multi_page.pdf")).unwrap();
        assert_eq!(doc.pages, 5);
        assert!(all_text(&doc).contains("Word Processor"));
    }
    if let Some(xlsx) = shared_file("xlsx_05_table_with_title.xlsx") {
        let doc = extract(&xlsx, None).unwrap();
        assert!(doc.blocks.iter().any(|b| b.kind == BlockKind::Row));
    }
    if let Some(docx) = shared_file("unit_test_headers.docx") {
        let doc = extract(&docx, None).unwrap();
        assert!(doc
            .blocks
            .iter()
            .any(|b| matches!(b.kind, BlockKind::Heading(_))));
    }
    if let Some(csv) = shared_file("csv-comma-in-cell.csv") {
        extract(&csv, Some("csv-comma-in-cell.csv")).unwrap();
    }
}
