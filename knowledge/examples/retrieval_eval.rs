//! Retrieval evaluation: how well do BM25, vectors and the hybrid of the two find the passages
//! that answer real-looking customer questions?
//!
//! The set lives in `knowledge/eval/` (see its README): five documents of a fictional coffee
//! roastery (two Markdown FAQs in English and Indonesian, a price-list workbook, an English and
//! an Indonesian PDF policy) and 74 questions in English, Indonesian and Dutch, each labelled
//! with the phrases that identify the passages answering it.
//!
//! What the example does, in memory and without PostgreSQL:
//!
//! 1. extracts and chunks every document with the functions ingestion uses (in this process;
//!    the server runs extraction in a child process), and puts all passages into one knowledge
//!    base: a tantivy index in RAM (BM25 over each passage's `indexed_text`) and one
//!    all-MiniLM-L6-v2 vector per passage;
//! 2. ranks the passages for every question three ways, as the server's search does:
//!    - **BM25**: the full-text index's top 50;
//!    - **vectors**: cosine similarity to the question's vector, computed exactly over every
//!      passage (so does the server for a knowledge base this small; for a large one it walks
//!      pgvector's HNSW index with `ef_search = 64`, which is near-exact);
//!    - **hybrid**: reciprocal-rank fusion (k = 60) of the BM25 top 50 and the vector top 50;
//! 3. scores the top 10 of each ranking with Recall@5, MRR@10 and nDCG@10, overall, per
//!    question language and per question kind, and prints the table with the passage count and
//!    timings.
//!
//! Relevance follows the set's README: a passage is relevant to a label when it comes from the
//! label's file and its whitespace-collapsed text contains the label's phrase. Each label is
//! counted once, at its best rank; a passage that carries several labels of one question counts
//! once, with the highest grade among them. Labels that match no passage are reported as
//! warnings (they point at extraction or chunking problems) and left out of the scores.
//!
//! Run it (release mode: the embedding model is slow in a debug build):
//!
//! ```text
//! cargo run --release -p obrol-knowledge --example retrieval_eval
//! cargo run --release -p obrol-knowledge --example retrieval_eval -- --details  # per question
//! cargo run --release -p obrol-knowledge --example retrieval_eval -- --json     # JSON, stdout
//! cargo run --release -p obrol-knowledge --example retrieval_eval -- --passages # all, stderr
//! ```
//!
//! The set is read from `OBROL_EVAL_DIR` when it is set (same layout: `documents/` and
//! `questions.json`). The model is read from `OBROL_EMBEDDING_MODEL_DIR`, or from
//! `.obrol/models/all-MiniLM-L6-v2` in the workspace (installed by `scripts/bootstrap`).
//!
//! Exit status: 0 when hybrid beats both BM25 and vectors on overall nDCG@10; 1 when it does
//! not (so the example can serve as a regression check); 2 when the set or the model cannot be
//! loaded.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use obrol_knowledge::chunk::{self, Chunk};
use obrol_knowledge::embed::local::{LocalEmbedder, MAX_TOKENS};
use obrol_knowledge::extract;
use obrol_knowledge::fulltext::{Change, FullText};
use obrol_knowledge::fusion::{reciprocal_rank_fusion, K};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// Passages taken from each ranking before fusion (the server's `CANDIDATES`).
const CANDIDATES: usize = 50;
/// Depth of the evaluated rankings.
const DEPTH: usize = 10;
const RECALL_AT: usize = 5;

const DOCUMENTS: [&str; 5] = [
    "faq-en.md",
    "faq-id.md",
    "price-list.xlsx",
    "shipping-returns-policy.pdf",
    "kebijakan-garansi.pdf",
];

const COMPANY: Uuid = Uuid::from_u128(0xC0FFEE);
const KNOWLEDGE_BASE: Uuid = Uuid::from_u128(0xBEA45);

#[derive(Deserialize)]
struct QuestionFile {
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    id: String,
    lang: String,
    kind: String,
    question: String,
    relevant: Vec<Label>,
}

#[derive(Deserialize)]
struct Label {
    file: String,
    contains: String,
    grade: u8,
}

/// One passage of the knowledge base.
struct Passage {
    id: Uuid,
    file: &'static str,
    chunk: Chunk,
    /// `chunk.text`, normalised for label matching.
    matchable: String,
}

/// The three rankings, in the order used by every `[_; 3]` below.
const MODES: [&str; 3] = ["bm25", "vectors", "hybrid"];

/// The three scores of one ranking for one question.
#[derive(Clone, Copy, Default)]
struct Scores {
    recall: f64,
    mrr: f64,
    ndcg: f64,
}

/// What one question got from each mode.
struct Outcome {
    question: usize,
    scores: [Scores; 3],
    /// 1-based rank of the first relevant passage in the top 10, per mode.
    first_hit: [Option<usize>; 3],
    top: [Vec<usize>; 3],
}

/// Whitespace collapsed, plus the compatibility characters an NFKC normalisation (what the set
/// was checked with) would fold and that PDF extraction produces: typographic ligatures and the
/// ellipsis. Unicode spaces (no-break space and the like) count as whitespace.
fn normalise(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{FB00}' => folded.push_str("ff"),
            '\u{FB01}' => folded.push_str("fi"),
            '\u{FB02}' => folded.push_str("fl"),
            '\u{FB03}' => folded.push_str("ffi"),
            '\u{FB04}' => folded.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => folded.push_str("st"),
            '\u{2026}' => folded.push_str("..."),
            _ => folded.push(c),
        }
    }
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `knowledge/eval`, or another set laid out the same way named by `OBROL_EVAL_DIR`.
fn eval_dir() -> PathBuf {
    std::env::var_os("OBROL_EVAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("eval"))
}

fn model_dir() -> PathBuf {
    std::env::var_os("OBROL_EMBEDDING_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.obrol/models/all-MiniLM-L6-v2")
        })
}

/// Which passages each label of a question points at (indices into the passages).
fn judge(question: &Question, passages: &[Passage]) -> Vec<Vec<usize>> {
    question
        .relevant
        .iter()
        .map(|label| {
            let phrase = normalise(&label.contains);
            passages
                .iter()
                .enumerate()
                .filter(|(_, p)| p.file == label.file && p.matchable.contains(&phrase))
                .map(|(i, _)| i)
                .collect()
        })
        .collect()
}

/// The gain of each position of `ranking`: the highest grade among the labels this passage
/// is the first to carry (0 when it carries none, or only labels already credited higher up).
fn gains(ranking: &[usize], question: &Question, matches: &[Vec<usize>]) -> Vec<u8> {
    let mut credited = vec![false; matches.len()];
    ranking
        .iter()
        .map(|passage| {
            let mut gain = 0;
            for (l, found_in) in matches.iter().enumerate() {
                if !credited[l] && found_in.contains(passage) {
                    credited[l] = true;
                    gain = gain.max(question.relevant[l].grade);
                }
            }
            gain
        })
        .collect()
}

/// The gains of the best possible ranking: greedily take the passage that credits the highest
/// grade (then the most labels) among labels not yet credited. Without overlapping passages
/// this is simply one entry per relevant passage, grade = its best label.
fn ideal_gains(question: &Question, matches: &[Vec<usize>]) -> Vec<u8> {
    let mut open: Vec<usize> = (0..matches.len())
        .filter(|&l| !matches[l].is_empty())
        .collect();
    let mut ideal = Vec::new();
    while !open.is_empty() {
        let candidates: HashSet<usize> = open.iter().flat_map(|&l| matches[l].clone()).collect();
        let best = candidates
            .into_iter()
            .map(|p| {
                let carried: Vec<usize> = open
                    .iter()
                    .copied()
                    .filter(|&l| matches[l].contains(&p))
                    .collect();
                let grade = carried
                    .iter()
                    .map(|&l| question.relevant[l].grade)
                    .max()
                    .unwrap_or(0);
                (grade, carried.len(), std::cmp::Reverse(p), carried)
            })
            .max_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)))
            .expect("an open label has a passage");
        ideal.push(best.0);
        open.retain(|l| !best.3.contains(l));
    }
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    ideal
}

fn dcg(gains: &[u8]) -> f64 {
    gains
        .iter()
        .take(DEPTH)
        .enumerate()
        .fold(0.0, |sum, (i, &g)| sum + g as f64 / ((i + 2) as f64).log2())
}

fn score(
    ranking: &[usize],
    question: &Question,
    matches: &[Vec<usize>],
) -> (Scores, Option<usize>) {
    let top: Vec<usize> = ranking.iter().copied().take(DEPTH).collect();
    let gains = gains(&top, question, matches);
    let ideal = ideal_gains(question, matches);
    let relevant_in_5 = gains.iter().take(RECALL_AT).filter(|&&g| g > 0).count();
    let first_hit = gains.iter().position(|&g| g > 0).map(|i| i + 1);
    let scores = Scores {
        recall: relevant_in_5 as f64 / ideal.len().min(RECALL_AT) as f64,
        mrr: first_hit.map_or(0.0, |r| 1.0 / r as f64),
        ndcg: dcg(&gains) / dcg(&ideal),
    };
    (scores, first_hit)
}

/// Where a label's phrase went, for the warning when it matches no passage.
fn diagnose(phrase: &str, passages: &[Passage], file: &str) -> String {
    let phrase = normalise(phrase);
    let whole = normalise(
        &passages
            .iter()
            .filter(|p| p.file == file)
            .map(|p| p.chunk.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    );
    if whole.contains(&phrase) {
        return "the phrase is in the extracted text but straddles two passages".into();
    }
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    if squeeze(&whole).contains(&squeeze(&phrase)) {
        return "the phrase is there once whitespace is ignored: the extractor puts a space or \
                line break inside a word (or joins two words)"
            .into();
    }
    if whole.to_lowercase().contains(&phrase.to_lowercase()) {
        return "the phrase is there with different capitalisation".into();
    }
    // The longest leading run of the phrase's words that the text does hold, and what follows.
    let words: Vec<&str> = phrase.split(' ').collect();
    for n in (1..words.len()).rev() {
        let prefix = words[..n].join(" ");
        if let Some(at) = whole.find(&prefix) {
            let after: String = whole[at + prefix.len()..].chars().take(50).collect();
            return format!(
                "not in the extracted text; it has \"{prefix}\" followed by \"{}\"",
                after.trim()
            );
        }
    }
    "not in the extracted text at all".into()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Average scores of a group of questions, per mode.
fn average(outcomes: &[&Outcome]) -> [Scores; 3] {
    let mut out = [Scores::default(); 3];
    for (m, slot) in out.iter_mut().enumerate() {
        *slot = Scores {
            recall: mean(outcomes.iter().map(|o| o.scores[m].recall)),
            mrr: mean(outcomes.iter().map(|o| o.scores[m].mrr)),
            ndcg: mean(outcomes.iter().map(|o| o.scores[m].ndcg)),
        };
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fail(message: String) -> ExitCode {
    eprintln!("retrieval_eval: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let as_json = args.iter().any(|a| a == "--json");
    let details = args.iter().any(|a| a == "--details");
    let dump = args.iter().any(|a| a == "--passages");
    if let Some(other) = args
        .iter()
        .find(|a| !["--json", "--details", "--passages"].contains(&a.as_str()))
    {
        return fail(format!(
            "unknown argument {other}; use --json, --details and/or --passages"
        ));
    }

    // The questions.
    let questions_path = eval_dir().join("questions.json");
    let questions: Vec<Question> = match std::fs::read(&questions_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<QuestionFile>(&b).map_err(|e| e.to_string()))
    {
        Ok(file) => file.questions,
        Err(e) => return fail(format!("{}: {e}", questions_path.display())),
    };

    // Extraction and chunking, one source per document.
    let started = Instant::now();
    let mut passages: Vec<Passage> = Vec::new();
    let mut per_file: Vec<(&str, usize)> = Vec::new();
    for file in DOCUMENTS {
        let path = eval_dir().join("documents").join(file);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => return fail(format!("{}: {e}", path.display())),
        };
        let extracted = match extract::extract(&bytes, Some(file)) {
            Ok(extracted) => extracted,
            Err(e) => return fail(format!("{file}: extraction failed: {e}")),
        };
        for warning in &extracted.warnings {
            eprintln!("note: {file}: {warning}");
        }
        let chunks = chunk::chunk(&extracted.blocks);
        per_file.push((file, chunks.len()));
        for chunk in chunks {
            passages.push(Passage {
                id: Uuid::from_u128(passages.len() as u128 + 1),
                file,
                matchable: normalise(&chunk.text),
                chunk,
            });
        }
    }
    let extract_time = started.elapsed();
    if dump {
        // Every passage as the index sees it, to check extraction and chunking by eye.
        for p in &passages {
            let pages = match (p.chunk.page_start, p.chunk.page_end) {
                (Some(a), Some(b)) if a == b => format!(" p.{a}"),
                (Some(a), Some(b)) => format!(" p.{a}-{b}"),
                _ => String::new(),
            };
            eprintln!(
                "--- {} #{}{pages} [{}]\n{}",
                p.file,
                p.chunk.position,
                p.chunk.heading_path.join(" › "),
                p.chunk.text
            );
        }
    }
    let texts: Vec<String> = passages.iter().map(|p| p.chunk.indexed_text()).collect();

    // The BM25 index: one source per document, all in one knowledge base.
    let started = Instant::now();
    let fulltext = match FullText::open(None) {
        Ok(index) => index,
        Err(e) => return fail(e.to_string()),
    };
    let changes = DOCUMENTS
        .iter()
        .enumerate()
        .map(|(s, file)| Change::Replace {
            company_id: COMPANY,
            knowledge_base_id: KNOWLEDGE_BASE,
            source_id: Uuid::from_u128(0x5000 + s as u128),
            generation: 1,
            passages: passages
                .iter()
                .zip(&texts)
                .filter(|(p, _)| p.file == *file)
                .map(|(p, text)| (p.id, text.clone()))
                .collect(),
        })
        .collect();
    if let Err(e) = fulltext.apply(changes) {
        return fail(e.to_string());
    }
    let index_time = started.elapsed();

    // The vectors.
    let started = Instant::now();
    let embedder = match LocalEmbedder::load(&model_dir()) {
        Ok(embedder) => embedder,
        Err(e) => {
            return fail(format!(
                "{e} (model directory {}; run scripts/bootstrap or set OBROL_EMBEDDING_MODEL_DIR)",
                model_dir().display()
            ))
        }
    };
    let load_time = started.elapsed();
    let started = Instant::now();
    let vectors = match embedder.embed_blocking(&texts) {
        Ok(vectors) => vectors,
        Err(e) => return fail(e.to_string()),
    };
    let embed_time = started.elapsed();
    let truncated = embedder
        .token_counts(&texts)
        .map(|counts| counts.iter().filter(|&&n| n >= MAX_TOKENS).count())
        .unwrap_or(0);

    // Relevance judgments, and labels that point at nothing.
    let judgments: Vec<Vec<Vec<usize>>> = questions.iter().map(|q| judge(q, &passages)).collect();
    let mut unmatched = Vec::new();
    let mut repeated = Vec::new();
    for (q, matches) in questions.iter().zip(&judgments) {
        for (label, found_in) in q.relevant.iter().zip(matches) {
            if !DOCUMENTS.contains(&label.file.as_str()) {
                return fail(format!("{}: label names unknown file {}", q.id, label.file));
            }
            match found_in.len() {
                0 => unmatched.push(json!({
                    "question": q.id,
                    "file": label.file,
                    "contains": label.contains,
                    "grade": label.grade,
                    "why": diagnose(&label.contains, &passages, &label.file),
                })),
                1 => {}
                n => repeated.push(format!(
                    "{} [{}] \"{}\" ({n} passages)",
                    q.id, label.file, label.contains
                )),
            }
        }
    }

    // The rankings.
    let mut bm25_time = Duration::ZERO;
    let mut query_embed_time = Duration::ZERO;
    let mut vector_time = Duration::ZERO;
    let mut fusion_time = Duration::ZERO;
    let by_id: BTreeMap<Uuid, usize> = passages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id, i))
        .collect();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut skipped = Vec::new();
    for (qi, question) in questions.iter().enumerate() {
        let query = question.question.trim();

        let started = Instant::now();
        let bm25: Vec<usize> = match fulltext.search(COMPANY, KNOWLEDGE_BASE, query, CANDIDATES) {
            Ok(hits) => hits
                .iter()
                .filter_map(|(id, _)| by_id.get(id).copied())
                .collect(),
            Err(e) => return fail(format!("{}: BM25 search failed: {e}", question.id)),
        };
        bm25_time += started.elapsed();

        let started = Instant::now();
        let query_vector = match embedder.embed_blocking(&[query.to_string()]) {
            Ok(mut v) => v.pop().unwrap_or_default(),
            Err(e) => return fail(format!("{}: embedding failed: {e}", question.id)),
        };
        query_embed_time += started.elapsed();

        // Exact cosine ranking: the vectors are L2-normalised, so the dot product is the cosine.
        let started = Instant::now();
        let mut by_similarity: Vec<(usize, f32)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(&query_vector).map(|(a, b)| a * b).sum()))
            .collect();
        by_similarity.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let nearest: Vec<usize> = by_similarity.iter().take(CANDIDATES).map(|s| s.0).collect();
        vector_time += started.elapsed();

        let started = Instant::now();
        let hybrid: Vec<usize> = reciprocal_rank_fusion(&[bm25.clone(), nearest.clone()], K)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        fusion_time += started.elapsed();

        if judgments[qi].iter().all(|found_in| found_in.is_empty()) {
            skipped.push(question.id.clone());
            continue;
        }
        let rankings = [bm25, nearest, hybrid];
        let mut outcome = Outcome {
            question: qi,
            scores: [Scores::default(); 3],
            first_hit: [None; 3],
            top: Default::default(),
        };
        for (m, ranking) in rankings.iter().enumerate() {
            let (scores, first_hit) = score(ranking, question, &judgments[qi]);
            outcome.scores[m] = scores;
            outcome.first_hit[m] = first_hit;
            outcome.top[m] = ranking.iter().copied().take(DEPTH).collect();
        }
        outcomes.push(outcome);
    }
    let n_queries = questions.len() as u32;

    // Groups: everything, per language, per kind.
    let mut groups: Vec<(String, Vec<&Outcome>)> = vec![("all".into(), outcomes.iter().collect())];
    for lang in ["en", "id", "nl"] {
        groups.push((
            format!("lang {lang}"),
            outcomes
                .iter()
                .filter(|o| questions[o.question].lang == lang)
                .collect(),
        ));
    }
    for kind in ["keyword", "paraphrase", "table", "cross-lingual"] {
        groups.push((
            format!("kind {kind}"),
            outcomes
                .iter()
                .filter(|o| questions[o.question].kind == kind)
                .collect(),
        ));
    }
    let table: Vec<(String, usize, [Scores; 3])> = groups
        .iter()
        .map(|(name, members)| (name.clone(), members.len(), average(members)))
        .collect();
    let overall = table[0].2;
    let hybrid_wins = overall[2].ndcg > overall[0].ndcg && overall[2].ndcg > overall[1].ndcg;

    let definitions = [
        "Relevant passage: from the label's file, and its whitespace-collapsed text contains \
         the label's phrase; each label counts once (at its best rank), a passage with several \
         labels once (its best grade).",
        "Recall@5: relevant passages in the top 5 / min(relevant passages, 5); grades 1 and 2 \
         both count.",
        "MRR@10: 1 / rank of the first relevant passage (grade 1 or 2) in the top 10, else 0.",
        "nDCG@10: gains = grades (2 answers, 1 partly), discount log2(rank + 1), divided by the \
         ideal ordering's DCG.",
        "Vectors: exact cosine over every passage, as the server computes it for a knowledge \
         base this small (a large one goes through pgvector's HNSW index, ef_search = 64).",
        "Hybrid: reciprocal-rank fusion (k = 60) of the BM25 top 50 and the vector top 50, as \
         the server does.",
    ];

    if as_json {
        let metric = |s: &Scores| {
            json!({
                "recall_at_5": s.recall,
                "mrr_at_10": s.mrr,
                "ndcg_at_10": s.ndcg,
            })
        };
        let rows: Vec<_> = table
            .iter()
            .map(|(name, n, scores)| {
                let mut row = json!({ "group": name, "questions": n });
                for (m, mode) in MODES.iter().enumerate() {
                    row[*mode] = metric(&scores[m]);
                }
                row
            })
            .collect();
        let per_question: Vec<_> = outcomes
            .iter()
            .map(|o| {
                let q = &questions[o.question];
                let mode = |m: usize| {
                    json!({
                        "recall_at_5": o.scores[m].recall,
                        "mrr_at_10": o.scores[m].mrr,
                        "ndcg_at_10": o.scores[m].ndcg,
                        "first_relevant_rank": o.first_hit[m],
                        "top": o.top[m].iter().map(|&p| json!({
                            "file": passages[p].file,
                            "position": passages[p].chunk.position,
                            "heading_path": passages[p].chunk.heading_path,
                            "text": passages[p].chunk.text.chars().take(120).collect::<String>(),
                        })).collect::<Vec<_>>(),
                    })
                };
                let mut row = json!({
                    "id": q.id, "lang": q.lang, "kind": q.kind, "question": q.question,
                });
                for (m, name) in MODES.iter().enumerate() {
                    row[*name] = mode(m);
                }
                row
            })
            .collect();
        let files: Vec<_> = per_file
            .iter()
            .map(|(f, n)| json!({ "file": f, "passages": n }))
            .collect();
        let report = json!({
            "passages": passages.len(),
            "passages_per_file": files,
            "passages_over_token_window": truncated,
            "questions": questions.len(),
            "questions_scored": outcomes.len(),
            "questions_without_matched_labels": skipped,
            "definitions": definitions,
            "metrics": rows,
            "unmatched_labels": unmatched,
            "labels_in_several_passages": repeated,
            "timings_ms": {
                "extract_and_chunk": ms(extract_time),
                "bm25_index": ms(index_time),
                "model_load": ms(load_time),
                "embed_passages": ms(embed_time),
                "per_query": {
                    "bm25": ms(bm25_time) / n_queries as f64,
                    "embed_query": ms(query_embed_time) / n_queries as f64,
                    "vector_rank": ms(vector_time) / n_queries as f64,
                    "fusion": ms(fusion_time) / n_queries as f64,
                },
            },
            "per_question": per_question,
            "hybrid_beats_both_on_ndcg": hybrid_wins,
        });
        println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
    } else {
        println!(
            "Retrieval evaluation: knowledge/eval ({} questions)",
            questions.len()
        );
        println!();
        let counts: Vec<String> = per_file.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("passages: {} ({})", passages.len(), counts.join(", "));
        println!(
            "passages longer than the model's {MAX_TOKENS}-token window (tail not embedded): \
             {truncated}"
        );
        println!();
        for line in definitions {
            println!("- {line}");
        }
        println!();
        // Three metric blocks of three columns each (bm25, vectors, hybrid).
        let titles = format!("{:<24}{:<24}{}", "Recall@5", "MRR@10", "nDCG@10");
        println!("{:<27}{titles}", "");
        let heads = format!("{:>7}{:>7}{:>7}", "bm25", "vec", "hyb");
        println!("{:<20}{:>4}   {heads}   {heads}   {heads}", "group", "n");
        println!("{}", "-".repeat(20 + 4 + 3 * 24));
        for (name, n, s) in &table {
            let cells = |f: fn(&Scores) -> f64| {
                format!("{:>7.3}{:>7.3}{:>7.3}", f(&s[0]), f(&s[1]), f(&s[2]))
            };
            println!(
                "{name:<20}{n:>4}   {}   {}   {}",
                cells(|s| s.recall),
                cells(|s| s.mrr),
                cells(|s| s.ndcg)
            );
        }
        println!();
        println!(
            "timings: extract + chunk {:.0} ms, BM25 index {:.0} ms, model load {:.0} ms, \
             embedding {} passages {:.0} ms",
            ms(extract_time),
            ms(index_time),
            ms(load_time),
            passages.len(),
            ms(embed_time)
        );
        println!(
            "per question: BM25 {:.2} ms, embed query {:.2} ms, cosine over all passages {:.2} ms, \
             fusion {:.3} ms",
            ms(bm25_time) / n_queries as f64,
            ms(query_embed_time) / n_queries as f64,
            ms(vector_time) / n_queries as f64,
            ms(fusion_time) / n_queries as f64
        );

        if details {
            println!();
            println!(
                "per question: first relevant rank (bm25 / vec / hyb; - = not in top 10), nDCG@10"
            );
            for o in &outcomes {
                let q = &questions[o.question];
                let rank = |r: Option<usize>| r.map_or("-".to_string(), |r| r.to_string());
                println!(
                    "{} {} {:<13} {:>2} / {:>2} / {:>2}   {:.2} / {:.2} / {:.2}   {}",
                    q.id,
                    q.lang,
                    q.kind,
                    rank(o.first_hit[0]),
                    rank(o.first_hit[1]),
                    rank(o.first_hit[2]),
                    o.scores[0].ndcg,
                    o.scores[1].ndcg,
                    o.scores[2].ndcg,
                    q.question
                );
            }
        }
    }

    // Problems with the labels go to stderr in both modes, so they are never missed.
    for label in &unmatched {
        eprintln!(
            "warning: {} [{}] \"{}\" matches no passage: {}",
            label["question"].as_str().unwrap_or(""),
            label["file"].as_str().unwrap_or(""),
            label["contains"].as_str().unwrap_or(""),
            label["why"].as_str().unwrap_or("")
        );
    }
    for label in &repeated {
        eprintln!("note: {label} (overlap; counted once at its best rank)");
    }
    for id in &skipped {
        eprintln!(
            "warning: {id} has no label that matches a passage; it is left out of the scores"
        );
    }

    if hybrid_wins {
        if !as_json {
            println!();
            println!(
                "hybrid beats both on nDCG@10 ({:.3} vs BM25 {:.3}, vectors {:.3})",
                overall[2].ndcg, overall[0].ndcg, overall[1].ndcg
            );
        }
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "REGRESSION: hybrid nDCG@10 {:.3} does not beat both BM25 {:.3} and vectors {:.3}",
            overall[2].ndcg, overall[0].ndcg, overall[1].ndcg
        );
        ExitCode::from(1)
    }
}
