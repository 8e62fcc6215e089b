//! Turning passages into vectors, behind one trait: the local all-MiniLM-L6-v2 model run
//! in-process ([`local`]) or an OpenAI-compatible `/embeddings` endpoint ([`openai`]).
//!
//! Vectors are stored in a `vector(384)` column, so every embedder produces 384 dimensions
//! (the OpenAI one asks the endpoint for 384 and refuses anything else), and each vector is
//! stored with [`Embedder::model`] so a change of model is noticed and re-embedded.

pub mod bert;
pub mod local;
pub mod openai;

use futures_util::future::BoxFuture;

pub const DIMENSIONS: usize = 384;

#[derive(thiserror::Error, Debug)]
pub enum EmbedError {
    #[error("the embedding model could not be loaded: {0}")]
    Load(String),
    #[error("embedding failed: {0}")]
    Compute(String),
    /// The endpoint could not be reached or answered with an error; worth retrying later.
    #[error("the embeddings endpoint failed: {0}")]
    Endpoint(String),
    #[error("the embeddings endpoint returned {got} dimensions, {expected} are needed")]
    Dimensions { got: usize, expected: usize },
}

pub trait Embedder: Send + Sync {
    /// Names the model, stored beside each vector ("local:all-MiniLM-L6-v2").
    fn model(&self) -> &str;
    /// Embeds `texts` (in order); vectors are L2-normalised.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>>;
}

pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
