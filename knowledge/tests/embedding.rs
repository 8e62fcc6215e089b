//! The local model against sentence-transformers' own vectors for the same sentences
//! (fixtures/minilm-reference.json, made by scripts/reference-embeddings.py).

mod common;

use obrol_knowledge::embed::local::LocalEmbedder;
use obrol_knowledge::embed::{cosine, Embedder};

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<Sentence>,
}

#[derive(serde::Deserialize)]
struct Sentence {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn model() -> LocalEmbedder {
    let dir = common::model_dir();
    LocalEmbedder::load(&dir).unwrap_or_else(|e| {
        panic!("{e} — the model is installed by scripts/bootstrap (make test runs it)")
    })
}

#[tokio::test]
async fn vectors_match_sentence_transformers() {
    let reference: Reference = serde_json::from_str(include_str!("fixtures/minilm-reference.json"))
        .expect("the reference fixture parses");
    let embedder = model();
    let texts: Vec<String> = reference.sentences.iter().map(|s| s.text.clone()).collect();
    let counts = embedder.token_counts(&texts).unwrap();
    // One call with every sentence: batching and padding must not change any vector.
    let vectors = embedder.embed(texts.clone()).await.unwrap();
    for ((sentence, vector), count) in reference.sentences.iter().zip(&vectors).zip(counts) {
        assert_eq!(count, sentence.tokens, "token count of {:?}", sentence.text);
        let similarity = cosine(vector, &sentence.vector);
        assert!(
            similarity >= 0.999,
            "cosine {similarity} for {:?}",
            sentence.text
        );
    }
    // And one at a time, as a search embeds its query: up to 256 tokens take another path
    // (16-bit weights; on CPUs with AVX-512 BF16 the inputs of each product are rounded to
    // bfloat16 too: measured 0.99997 at worst), which must agree with the batch and with
    // the reference.
    for ((text, batched), sentence) in texts.iter().zip(&vectors).zip(&reference.sentences) {
        let single = embedder.embed(vec![text.clone()]).await.unwrap();
        let with_batch = cosine(&single[0], batched);
        let with_reference = cosine(&single[0], &sentence.vector);
        assert!(
            with_batch > 0.9999,
            "cosine {with_batch} with the batch for {text:?}"
        );
        assert!(
            with_reference >= 0.999,
            "cosine {with_reference} with the reference for {text:?}"
        );
    }
    assert_eq!(reference.sentences.len(), vectors.len());
}
