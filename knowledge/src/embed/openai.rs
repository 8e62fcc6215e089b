//! An OpenAI-compatible `/embeddings` endpoint through async-openai (OpenAI, Azure, Ollama,
//! vLLM, llama.cpp servers). It is asked for [`DIMENSIONS`] dimensions, which
//! `text-embedding-3-*` models support; an endpoint that answers with another size is an
//! error, not silently stored.

use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput};
use async_openai::Client;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{normalize, EmbedError, Embedder, DIMENSIONS};

pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    /// The endpoint's model name.
    name: String,
    /// What is stored beside each vector: `openai:<name>`.
    label: String,
}

impl OpenAiEmbedder {
    pub fn new(base_url: &str, api_key: &str, model: &str) -> Self {
        let config = OpenAIConfig::new()
            .with_api_base(base_url.trim_end_matches('/'))
            .with_api_key(api_key);
        Self {
            client: Client::with_config(config),
            name: model.to_string(),
            label: format!("openai:{model}"),
        }
    }
}

impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.label
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>> {
        async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let count = texts.len();
            let request = CreateEmbeddingRequest {
                model: self.name.clone(),
                input: EmbeddingInput::StringArray(texts),
                encoding_format: None,
                user: None,
                dimensions: Some(DIMENSIONS as u32),
            };
            let response = self
                .client
                .embeddings()
                .create(request)
                .await
                .map_err(|e| EmbedError::Endpoint(e.to_string()))?;
            let mut data = response.data;
            if data.len() != count {
                return Err(EmbedError::Endpoint(format!(
                    "asked for {count} vectors, got {}",
                    data.len()
                )));
            }
            data.sort_by_key(|d| d.index);
            data.into_iter()
                .map(|d| {
                    let mut v = d.embedding;
                    if v.len() != DIMENSIONS {
                        return Err(EmbedError::Dimensions {
                            got: v.len(),
                            expected: DIMENSIONS,
                        });
                    }
                    normalize(&mut v);
                    Ok(v)
                })
                .collect()
        }
        .boxed()
    }
}
