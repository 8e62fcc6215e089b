//! The BM25 full-text index: one tantivy index per server node holding the active passages of
//! every company, filtered by `company` and `knowledge_base` terms at query time.
//!
//! The index is derived data. PostgreSQL holds the passages; each node brings its index up
//! to date from there (the server's `knowledge::sync`), and `obrol reindex` rebuilds it. The
//! set of sources (and their generations) the index holds is stored in the commit payload,
//! so a restarted node knows what it has without reading every document.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use uuid::Uuid;

/// Bumped whenever the schema or the analyzer changes; an index with another version is
/// rebuilt from PostgreSQL.
const INDEX_VERSION: u32 = 1;
const ANALYZER: &str = "obrol_multilingual";

#[derive(thiserror::Error, Debug)]
pub enum FullTextError {
    #[error("full-text index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("full-text index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("full-text index: {0}")]
    Other(String),
}

/// One change to apply to the index.
pub enum Change {
    /// Puts `passages` (id, text) in place of whatever the index held for the source.
    Replace {
        company_id: Uuid,
        knowledge_base_id: Uuid,
        source_id: Uuid,
        generation: i32,
        passages: Vec<(Uuid, String)>,
    },
    Delete {
        source_id: Uuid,
    },
}

#[derive(Serialize, Deserialize, Default)]
struct Payload {
    version: u32,
    /// source id → generation held
    sources: HashMap<Uuid, i32>,
}

#[derive(Clone, Copy)]
struct Fields {
    passage: Field,
    company: Field,
    knowledge_base: Field,
    source: Field,
    body: Field,
}

pub struct FullText {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    held: Mutex<HashMap<Uuid, i32>>,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let body_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        passage: builder.add_text_field("passage", STRING | STORED),
        company: builder.add_text_field("company", STRING),
        knowledge_base: builder.add_text_field("knowledge_base", STRING),
        source: builder.add_text_field("source", STRING),
        body: builder.add_text_field("body", body_options),
    };
    (builder.build(), fields)
}

pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordsAndCjkBigrams)
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

impl FullText {
    /// Opens the index in `dir` (created when missing, emptied when it was built by another
    /// version), or an in-memory index when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> Result<Self, FullTextError> {
        let (schema, fields) = schema();
        let index = match dir {
            None => Index::create_in_ram(schema.clone()),
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let existing = Index::open_in_dir(dir).ok().filter(|index| {
                    index.schema() == schema
                        && index
                            .load_metas()
                            .ok()
                            .and_then(|m| m.payload)
                            .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
                            .is_some_and(|p| p.version == INDEX_VERSION)
                });
                match existing {
                    Some(index) => index,
                    None => {
                        for entry in std::fs::read_dir(dir)? {
                            let path = entry?.path();
                            if path.is_dir() {
                                std::fs::remove_dir_all(&path)?;
                            } else {
                                std::fs::remove_file(&path)?;
                            }
                        }
                        Index::create_in_dir(dir, schema.clone())?
                    }
                }
            }
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let held = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
            .map(|p| p.sources)
            .unwrap_or_default();
        let writer = index.writer_with_num_threads(1, 50_000_000)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            held: Mutex::new(held),
        })
    }

    /// Sources the index holds, with the generation of their passages.
    pub fn held(&self) -> HashMap<Uuid, i32> {
        self.held.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Applies the changes and commits them; searches see them when this returns.
    pub fn apply(&self, changes: Vec<Change>) -> Result<(), FullTextError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| FullTextError::Other("writer lock poisoned".into()))?;
        let mut held = self.held().into_iter().collect::<HashMap<_, _>>();
        let f = self.fields;
        for change in changes {
            match change {
                Change::Delete { source_id } => {
                    writer.delete_term(Term::from_field_text(f.source, &source_id.to_string()));
                    held.remove(&source_id);
                }
                Change::Replace {
                    company_id,
                    knowledge_base_id,
                    source_id,
                    generation,
                    passages,
                } => {
                    let source = source_id.to_string();
                    writer.delete_term(Term::from_field_text(f.source, &source));
                    let company = company_id.to_string();
                    let kb = knowledge_base_id.to_string();
                    for (id, text) in passages {
                        writer.add_document(doc!(
                            f.passage => id.to_string(),
                            f.company => company.clone(),
                            f.knowledge_base => kb.clone(),
                            f.source => source.clone(),
                            f.body => text,
                        ))?;
                    }
                    held.insert(source_id, generation);
                }
            }
        }
        self.commit(&mut writer, &held)?;
        *self
            .held
            .lock()
            .map_err(|_| FullTextError::Other("state lock poisoned".into()))? = held;
        Ok(())
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&self) -> Result<(), FullTextError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| FullTextError::Other("writer lock poisoned".into()))?;
        writer.delete_all_documents()?;
        let held = HashMap::new();
        self.commit(&mut writer, &held)?;
        *self
            .held
            .lock()
            .map_err(|_| FullTextError::Other("state lock poisoned".into()))? = held;
        Ok(())
    }

    fn commit(
        &self,
        writer: &mut IndexWriter,
        held: &HashMap<Uuid, i32>,
    ) -> Result<(), FullTextError> {
        let payload = serde_json::to_string(&Payload {
            version: INDEX_VERSION,
            sources: held.clone(),
        })
        .map_err(|e| FullTextError::Other(e.to_string()))?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// The best `limit` passages of one knowledge base for `query`, by BM25.
    pub fn search(
        &self,
        company_id: Uuid,
        knowledge_base_id: Uuid,
        query: &str,
        limit: usize,
    ) -> Result<Vec<(Uuid, f32)>, FullTextError> {
        let f = self.fields;
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(query);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() {
            let text = stream.token().text.clone();
            if !terms.contains(&text) {
                terms.push(text);
            }
        }
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let words: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .take(64)
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(f.body, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let filter = |field: Field, value: Uuid| -> (Occur, Box<dyn Query>) {
            let term = TermQuery::new(
                Term::from_field_text(field, &value.to_string()),
                IndexRecordOption::Basic,
            );
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(term), 0.0)),
            )
        };
        let query = BooleanQuery::new(vec![
            filter(f.company, company_id),
            filter(f.knowledge_base, knowledge_base_id),
            (Occur::Must, Box::new(BooleanQuery::new(words))),
        ]);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let document: TantivyDocument = searcher.doc(address)?;
            let id = document
                .get_first(f.passage)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<Uuid>().ok());
            if let Some(id) = id {
                hits.push((id, score));
            }
        }
        Ok(hits)
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn index(&self) -> &Index {
        &self.index
    }
}

/// Splits text into words (runs of letters and digits) and, for Chinese, Japanese and Korean
/// scripts, which do not separate words with spaces, into overlapping character pairs
/// (bigrams; a lone character is kept as it is). This works for Indonesian, Dutch and English
/// alike without a language-specific dictionary; no stemming is applied (English stemming
/// would mangle Indonesian and Dutch words in the same index), the vector side covers word
/// forms.
#[derive(Clone, Default)]
pub struct WordsAndCjkBigrams;

pub struct VecTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2A6DF) // CJK Extension B
}

impl Tokenizer for WordsAndCjkBigrams {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let mut tokens = Vec::new();
        let mut position = 0;
        let mut push = |from: usize, to: usize, tokens: &mut Vec<Token>| {
            tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position,
                text: text[from..to].to_string(),
                position_length: 1,
            });
            position += 1;
        };
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let end_of = |i: usize| chars.get(i + 1).map(|(o, _)| *o).unwrap_or(text.len());
        let mut i = 0;
        while i < chars.len() {
            let (start, c) = chars[i];
            if is_cjk(c) {
                let mut j = i;
                while j < chars.len() && is_cjk(chars[j].1) {
                    j += 1;
                }
                if j - i == 1 {
                    push(start, end_of(i), &mut tokens);
                } else {
                    for (k, (offset, _)) in chars.iter().enumerate().take(j - 1).skip(i) {
                        push(*offset, end_of(k + 1), &mut tokens);
                    }
                }
                i = j;
            } else if c.is_alphanumeric() {
                let mut j = i;
                while j < chars.len() && chars[j].1.is_alphanumeric() && !is_cjk(chars[j].1) {
                    j += 1;
                }
                push(start, end_of(j - 1), &mut tokens);
                i = j;
            } else {
                i += 1;
            }
        }
        VecTokenStream { tokens, next: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn tokenises_latin_and_cjk_scripts() {
        assert_eq!(
            tokens("Ongkos-kirim ke Surabaya?"),
            ["ongkos", "kirim", "ke", "surabaya"]
        );
        assert_eq!(
            tokens("Retourneren één café"),
            ["retourneren", "een", "cafe"]
        );
        assert_eq!(tokens("配送料金"), ["配送", "送料", "料金"]);
        assert_eq!(tokens("Pro版 79"), ["pro", "版", "79"]);
    }

    #[test]
    fn search_is_filtered_by_company_and_knowledge_base() {
        let index = FullText::open(None).unwrap();
        let (c1, c2, kb1, kb2) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let (s1, s2) = (Uuid::now_v7(), Uuid::now_v7());
        let p1 = Uuid::now_v7();
        let p2 = Uuid::now_v7();
        index
            .apply(vec![
                Change::Replace {
                    company_id: c1,
                    knowledge_base_id: kb1,
                    source_id: s1,
                    generation: 1,
                    passages: vec![(p1, "Ongkos kirim ke Surabaya 15.000".into())],
                },
                Change::Replace {
                    company_id: c2,
                    knowledge_base_id: kb2,
                    source_id: s2,
                    generation: 1,
                    passages: vec![(p2, "Ongkos kirim ke Bandung".into())],
                },
            ])
            .unwrap();
        let hits = index.search(c1, kb1, "ongkos kirim surabaya", 10).unwrap();
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![p1]);
        assert!(index.search(c1, kb2, "ongkos", 10).unwrap().is_empty());
        assert!(index.search(c2, kb1, "ongkos", 10).unwrap().is_empty());
        index.apply(vec![Change::Delete { source_id: s1 }]).unwrap();
        assert!(index.search(c1, kb1, "ongkos", 10).unwrap().is_empty());
        assert_eq!(index.held().len(), 1);
    }

    #[test]
    fn a_reopened_index_remembers_what_it_holds() {
        let dir = std::env::temp_dir().join(format!("obrol-ft-{}", Uuid::now_v7()));
        let source = Uuid::now_v7();
        {
            let index = FullText::open(Some(&dir)).unwrap();
            index
                .apply(vec![Change::Replace {
                    company_id: Uuid::now_v7(),
                    knowledge_base_id: Uuid::now_v7(),
                    source_id: source,
                    generation: 3,
                    passages: vec![(Uuid::now_v7(), "hello".into())],
                }])
                .unwrap();
        }
        let index = FullText::open(Some(&dir)).unwrap();
        assert_eq!(index.held().get(&source), Some(&3));
        assert_eq!(index.num_docs(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
