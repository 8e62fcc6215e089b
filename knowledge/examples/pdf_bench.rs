//! PDF text extraction speed: ours (`obrol_knowledge::extract::extract`, i.e. `pdf-extract`
//! page by page, then the paragraph splitter) against poppler's `pdftotext`.
//!
//! Run (release build):
//!
//! ```text
//! cargo run --release -p obrol-knowledge --example pdf_bench
//! cargo run --release -p obrol-knowledge --example pdf_bench -- some.pdf other.pdf
//! ```
//!
//! With no arguments it measures every PDF under `knowledge/eval/documents`,
//! `tests/fixtures/knowledge` (without the encrypted and the scanned fixture, which have no
//! text to compare) and `../shared/fixtures/documents` (beside the repository) when that directory exists, plus a
//! generated ~100-page PDF: the text of the eval documents (FAQ Markdown and the eval PDFs'
//! text) repeated into one HTML file and converted by LibreOffice
//! (`soffice --headless --convert-to pdf`, profile in /tmp/lo-bench) to
//! `/tmp/obrol-pdf-bench/generated.pdf`. It is generated once and reused; delete it to rebuild.
//!
//! Per file, best of 5 each:
//! - ours: `extract::extract(bytes, name)` in-process (the server runs the same call inside its
//!   `extract-worker` child process, whose start-up is not included here), and separately
//!   `pdf_extract::Document::load_mem` (parsing the file) to show how much of it is parsing;
//! - `pdftotext -layout file -` and `pdftotext file -` run as subprocesses (wall time,
//!   including process start-up), and `pdftotext -v` alone as the start-up cost;
//! - ratios ours / pdftotext with the start-up included and with it subtracted, and pages/s.
//!
//! Output is Markdown tables, to paste into `docs/benchmarks.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const PDFTOTEXT: &str = "pdftotext";
const GENERATED_DIR: &str = "/tmp/obrol-pdf-bench";
const TARGET_PAGES: usize = 100;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed());
        last = Some(out);
    }
    (best, last.expect("runs > 0"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs a command to completion, stdout captured; returns its stdout.
fn run(cmd: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd} could not be started ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

fn pdfs_in(dir: &Path, skip: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
                && !skip.iter().any(|s| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(s))
                })
        })
        .collect();
    out.sort();
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown (headings and paragraphs only) to HTML.
fn markdown_to_html(md: &str, html: &mut String) {
    let mut para = String::new();
    let flush = |para: &mut String, html: &mut String| {
        if !para.trim().is_empty() {
            html.push_str(&format!("<p>{}</p>\n", html_escape(para.trim())));
        }
        para.clear();
    };
    for line in md.lines() {
        let t = line.trim();
        if t.is_empty() {
            flush(&mut para, html);
        } else if let Some(h) = t.strip_prefix('#') {
            flush(&mut para, html);
            let level = 1 + h.chars().take_while(|c| *c == '#').count();
            let text = h.trim_start_matches('#').trim();
            html.push_str(&format!("<h{level}>{}</h{level}>\n", html_escape(text)));
        } else {
            para.push(' ');
            para.push_str(t);
        }
    }
    flush(&mut para, html);
}

/// Plain text (paragraphs separated by blank lines) to HTML paragraphs.
fn text_to_html(text: &str, html: &mut String) {
    for para in text.split("\n\n") {
        let p = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if !p.is_empty() {
            html.push_str(&format!("<p>{}</p>\n", html_escape(&p)));
        }
    }
}

fn page_count(path: &Path) -> Option<usize> {
    let info = run("pdfinfo", &[path.to_str()?]).ok()?;
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:").map(|v| v.trim().parse().ok()))
        .flatten()
}

/// Builds (once) a ~100-page PDF from the eval documents' text with LibreOffice.
fn generated_pdf(eval: &Path) -> Result<PathBuf, String> {
    let dir = PathBuf::from(GENERATED_DIR);
    let pdf = dir.join("generated.pdf");
    if pdf.is_file() {
        println!(
            "generated PDF: reusing {} ({} pages; delete it to rebuild)",
            pdf.display(),
            page_count(&pdf).map_or("?".into(), |n| n.to_string())
        );
        return Ok(pdf);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut body = String::new();
    for name in ["faq-en.md", "faq-id.md"] {
        let md = std::fs::read_to_string(eval.join(name)).map_err(|e| format!("{name}: {e}"))?;
        markdown_to_html(&md, &mut body);
    }
    for p in pdfs_in(eval, &[]) {
        let text = run(PDFTOTEXT, &[p.to_str().unwrap_or_default(), "-"])?;
        body.push_str(&format!(
            "<h1>{}</h1>\n",
            html_escape(&p.file_stem().unwrap_or_default().to_string_lossy())
        ));
        text_to_html(&String::from_utf8_lossy(&text), &mut body);
    }
    // One round of text first, to learn how many pages it fills.
    let convert = |reps: usize| -> Result<usize, String> {
        let mut html = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Seduh Sendiri handbook \
             (benchmark)</title></head><body>\n",
        );
        for r in 0..reps {
            html.push_str(&format!("<h1>Part {}</h1>\n", r + 1));
            html.push_str(&body);
        }
        html.push_str("</body></html>\n");
        let src = dir.join("generated.html");
        std::fs::write(&src, html).map_err(|e| e.to_string())?;
        run(
            "soffice",
            &[
                "-env:UserInstallation=file:///tmp/lo-bench",
                "--headless",
                "--convert-to",
                "pdf:writer_pdf_Export",
                "--outdir",
                GENERATED_DIR,
                src.to_str().unwrap_or_default(),
            ],
        )?;
        page_count(&pdf).ok_or_else(|| "soffice produced no readable PDF".to_string())
    };
    let t = Instant::now();
    let one = convert(1)?;
    let reps = TARGET_PAGES.div_ceil(one.max(1)).max(1);
    let pages = if reps > 1 { convert(reps)? } else { one };
    println!(
        "generated PDF: {} from {reps} copies of the eval documents' text ({one} pages each) \
         = {pages} pages, {} bytes, in {:.1} s with soffice",
        pdf.display(),
        std::fs::metadata(&pdf).map(|m| m.len()).unwrap_or(0),
        t.elapsed().as_secs_f64()
    );
    Ok(pdf)
}

struct Row {
    name: String,
    pages: u32,
    kb: f64,
    ours: Duration,
    parse: Duration,
    layout: Duration,
    plain: Duration,
    ours_chars: usize,
    poppler_chars: usize,
    /// pdftotext process start-ups in the times (one per file).
    startups: u32,
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let eval = root.join("eval/documents");
    let fixtures = root.join("../tests/fixtures/knowledge");
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();

    println!("== PDF extraction benchmark: ours (pdf-extract 0.12, page by page) vs poppler pdftotext ==");
    let version = Command::new(PDFTOTEXT)
        .arg("-v")
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stderr).to_string()
                + &String::from_utf8_lossy(&o.stdout);
            s.lines().next().unwrap_or("").to_string()
        })
        .unwrap_or_else(|e| format!("pdftotext not runnable: {e}"));
    println!(
        "{version}; cores: {}; load at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );

    let files: Vec<PathBuf> = if args.is_empty() {
        let mut files = pdfs_in(&eval, &[]);
        files.extend(pdfs_in(&fixtures, &["encrypted", "scanned"]));
        println!("skipped on purpose: tests/fixtures/knowledge/policy-encrypted.pdf (password), scanned.pdf (image only, no text)");
        // The shared fixtures sit beside the repository (../shared/fixtures in the brief).
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/documents");
        if shared.is_dir() {
            files.extend(pdfs_in(&shared, &[]));
        } else {
            println!("{}: skipped: not on this machine", shared.display());
        }
        match generated_pdf(&eval) {
            Ok(p) => files.push(p),
            Err(e) => println!("generated PDF: skipped: {e}"),
        }
        files
    } else {
        args
    };

    // Process start-up of pdftotext alone.
    let (startup, _) = best_of(20, || run(PDFTOTEXT, &["-v"]).ok());
    // `pdftotext -v` exits with status 0 on poppler 22; if not, `run` fails fast anyway.
    println!(
        "pdftotext start-up (`pdftotext -v`, best of 20): {:.2} ms",
        ms(startup)
    );
    println!();

    let mut rows = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                println!("{}: skipped: {e}", path.display());
                continue;
            }
        };
        let extracted = match obrol_knowledge::extract::extract(&bytes, Some(&name)) {
            Ok(x) => x,
            Err(e) => {
                println!("{}: skipped: our extraction fails: {e}", path.display());
                continue;
            }
        };
        let p = path.to_str().unwrap_or_default();
        let (ours, x) = best_of(RUNS, || {
            obrol_knowledge::extract::extract(&bytes, Some(&name))
        });
        let (parse, _) = best_of(RUNS, || {
            pdf_extract::Document::load_mem(&bytes).map(|d| d.get_pages().len())
        });
        let (layout, layout_out) = best_of(RUNS, || run(PDFTOTEXT, &["-layout", p, "-"]));
        let (plain, plain_out) = best_of(RUNS, || run(PDFTOTEXT, &[p, "-"]));
        if let Err(e) = layout_out.as_ref().and(plain_out.as_ref()) {
            println!("{}: skipped: {e}", path.display());
            continue;
        }
        let count = |t: &str| t.chars().filter(|c| !c.is_whitespace()).count();
        let ours_chars = x
            .map(|x| x.blocks.iter().map(|b| count(&b.text)).sum())
            .unwrap_or(0);
        let poppler_chars = count(&String::from_utf8_lossy(&plain_out.unwrap_or_default()));
        rows.push(Row {
            name,
            pages: extracted.pages,
            kb: bytes.len() as f64 / 1024.0,
            ours,
            parse,
            layout,
            plain,
            ours_chars,
            poppler_chars,
            startups: 1,
        });
    }

    println!("Per file, best of {RUNS} (ms). \"net\" = pdftotext time minus its start-up ({:.2} ms). Load: {}", ms(startup), loadavg());
    println!();
    println!("| file | pages | KB | ours ms | of which parse | pdftotext -layout ms | pdftotext ms | ours / -layout | ours / plain | ours / -layout net | ours / plain net | ours pages/s | -layout pages/s | chars ours / pdftotext |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let line = |r: &Row| {
        let net = |d: Duration| {
            d.saturating_sub(startup * r.startups)
                .max(Duration::from_micros(1))
        };
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} |",
            r.name,
            r.pages,
            r.kb,
            ms(r.ours),
            ms(r.parse),
            ms(r.layout),
            ms(r.plain),
            r.ours.as_secs_f64() / r.layout.as_secs_f64(),
            r.ours.as_secs_f64() / r.plain.as_secs_f64(),
            r.ours.as_secs_f64() / net(r.layout).as_secs_f64(),
            r.ours.as_secs_f64() / net(r.plain).as_secs_f64(),
            r.pages as f64 / r.ours.as_secs_f64(),
            r.pages as f64 / r.layout.as_secs_f64(),
            r.ours_chars as f64 / r.poppler_chars.max(1) as f64,
        );
    };
    for r in &rows {
        line(r);
    }
    if !rows.is_empty() {
        // Totals: sums of the best times; start-up subtracted once per file for "net".
        line(&Row {
            name: format!("**total ({} files)**", rows.len()),
            pages: rows.iter().map(|r| r.pages).sum(),
            kb: rows.iter().map(|r| r.kb).sum(),
            ours: rows.iter().map(|r| r.ours).sum(),
            parse: rows.iter().map(|r| r.parse).sum(),
            layout: rows.iter().map(|r| r.layout).sum(),
            plain: rows.iter().map(|r| r.plain).sum(),
            ours_chars: rows.iter().map(|r| r.ours_chars).sum(),
            poppler_chars: rows.iter().map(|r| r.poppler_chars).sum(),
            startups: rows.len() as u32,
        });
    }
    println!();
    println!("load at end: {}", loadavg());
}
