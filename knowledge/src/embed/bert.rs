//! A BERT encoder for inference on the CPU, written for the sentence embedder: f32 weights,
//! no padding, and the work arranged so that nearly all the time goes to matrix products.
//!
//! Why not candle-transformers' `BertModel` (which this replaced): it spent 43% of its time
//! outside matrix products (erf GELU 17%, softmax 13%, scaling and masking, bias adds, head
//! copies, one fresh allocation per operation) and padded every batch to its longest text.
//! Measured with `cargo run --release -p obrol-knowledge --example embed_bench`, see
//! docs/benchmarks.md. Here:
//!
//! - the texts of a batch are packed one after another (no padding); the dense layers see
//!   all their tokens as one matrix, attention runs per text and head on its own rows;
//! - the three projections Q, K, V are one product; heads are read in place through
//!   strides, never copied;
//! - bias and residual are written into the destination before the product, which then
//!   accumulates (`dst := dst + a·b`), so neither costs a pass of its own;
//! - scaling, softmax and GELU run in parallel over rows, in place;
//! - matrix products use the `gemm` crate (the kernels candle itself calls), except those
//!   with at most 256 rows (a search query, any single text), which read a 16-bit copy of
//!   the weights packed at load time (`few_rows`): bfloat16 pairs multiplied by
//!   `vdpbf16ps` where the CPU has AVX-512 BF16 (twice the multiply-adds per instruction),
//!   else half precision widened to f32.
//!
//! The vectors match sentence-transformers' (tests/embedding.rs, cosine ≥ 0.999) and
//! candle's `BertModel` to float rounding; a query's vector matches the same text's in a
//! batch to cosine > 0.9999 (0.99997 at worst with bfloat16 inputs, > 0.99999 with
//! half-precision weights and f32 inputs).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use gemm::Parallelism;
use half::{bf16, f16};
use rayon::prelude::*;
use serde::Deserialize;

/// The parts of a Hugging Face BERT `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

/// A dense layer: `y = x·w + b` with `w` stored as [inputs, outputs], row-major.
struct Linear {
    /// [inputs, outputs], row-major.
    w: Vec<f32>,
    b: Vec<f32>,
    inputs: usize,
    outputs: usize,
    /// The same weights packed for `few_rows`, in the layout of this CPU's kernel.
    panels: Panels,
}

impl Linear {
    fn new(w: Vec<f32>, b: Vec<f32>, inputs: usize, outputs: usize) -> Self {
        Self::for_kernel(w, b, inputs, outputs, kernel())
    }

    fn for_kernel(w: Vec<f32>, b: Vec<f32>, inputs: usize, outputs: usize, k: Kernel) -> Self {
        Self {
            panels: Panels::pack(&w, inputs, outputs, k),
            w,
            b,
            inputs,
            outputs,
        }
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Q, K and V side by side: [hidden, 3 × hidden].
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

pub struct Encoder {
    config: Config,
    word: Vec<f32>,
    position: Vec<f32>,
    /// Token type 0 (a single-segment input), added to every position.
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

#[derive(Debug, thiserror::Error)]
pub enum BertError {
    #[error("{0}")]
    Weights(String),
    #[error("token id {id} is outside the vocabulary ({size})")]
    Token { id: u32, size: usize },
    #[error("a text has {len} tokens; the model reads at most {max}")]
    TooLong { len: usize, max: usize },
}

/// The weights, read once: tensor name → (shape, values).
struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, BertError> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self
            .tensors
            .get(&full)
            .ok_or_else(|| BertError::Weights(format!("the weights have no tensor {full}")))?;
        if tensor.dims() != shape {
            return Err(BertError::Weights(format!(
                "{full} has shape {:?}, expected {shape:?}",
                tensor.dims()
            )));
        }
        tensor
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| BertError::Weights(format!("{full}: {e}")))
    }

    /// A PyTorch `Linear` (weight [out, in]) as [in, out].
    fn linear(&self, name: &str, inputs: usize, outputs: usize) -> Result<Linear, BertError> {
        let w = self.get(&format!("{name}.weight"), &[outputs, inputs])?;
        let b = self.get(&format!("{name}.bias"), &[outputs])?;
        let mut t = vec![0.0f32; w.len()];
        for o in 0..outputs {
            for i in 0..inputs {
                t[i * outputs + o] = w[o * inputs + i];
            }
        }
        Ok(Linear::new(t, b, inputs, outputs))
    }

    fn norm(&self, name: &str, size: usize) -> Result<Norm, BertError> {
        Ok(Norm {
            gamma: self.get(&format!("{name}.weight"), &[size])?,
            beta: self.get(&format!("{name}.bias"), &[size])?,
        })
    }
}

/// Q, K and V as one layer with three times the outputs.
fn concat_outputs(parts: [Linear; 3]) -> Linear {
    let inputs = parts[0].inputs;
    let outputs: usize = parts.iter().map(|p| p.outputs).sum();
    let mut w = Vec::with_capacity(inputs * outputs);
    for i in 0..inputs {
        for p in &parts {
            w.extend_from_slice(&p.w[i * p.outputs..(i + 1) * p.outputs]);
        }
    }
    let b = parts.iter().flat_map(|p| p.b.iter().copied()).collect();
    Linear::new(w, b, inputs, outputs)
}

impl Encoder {
    /// Reads a BERT checkpoint (`model.safetensors`, names with or without a `bert.` prefix).
    pub fn load(weights: &Path, config: Config) -> Result<Self, BertError> {
        if config.hidden_act != "gelu" {
            return Err(BertError::Weights(format!(
                "activation {} is not supported (only gelu)",
                config.hidden_act
            )));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(BertError::Weights(
                "hidden size is not a multiple of the number of heads".into(),
            ));
        }
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu)
            .map_err(|e| BertError::Weights(format!("{}: {e}", weights.display())))?;
        let prefix = if tensors.contains_key("embeddings.word_embeddings.weight") {
            ""
        } else {
            "bert."
        };
        let w = Weights { tensors, prefix };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let qkv = concat_outputs([
                w.linear(&format!("{p}.attention.self.query"), h, h)?,
                w.linear(&format!("{p}.attention.self.key"), h, h)?,
                w.linear(&format!("{p}.attention.self.value"), h, h)?,
            ]);
            layers.push(Layer {
                qkv,
                attention_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                intermediate: w.linear(&format!("{p}.intermediate.dense"), h, i)?,
                output: w.linear(&format!("{p}.output.dense"), i, h)?,
                output_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        let token_types = w
            .tensors
            .get(&format!("{prefix}embeddings.token_type_embeddings.weight"))
            .map(|t| t.dims().first().copied().unwrap_or(0))
            .unwrap_or(0);
        let token_type = w.get(
            "embeddings.token_type_embeddings.weight",
            &[token_types.max(1), h],
        )?[..h]
            .to_vec();
        Ok(Self {
            word: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type,
            embedding_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The mean of the last hidden states over each text's tokens (not normalised).
    /// `texts` are token ids, [CLS] … [SEP] included, each at most
    /// `max_position_embeddings` long.
    pub fn mean_pooled(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, BertError> {
        let h = self.config.hidden_size;
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0usize);
        for t in texts {
            if t.len() > self.config.max_position_embeddings {
                return Err(BertError::TooLong {
                    len: t.len(),
                    max: self.config.max_position_embeddings,
                });
            }
            if let Some(&id) = t.iter().find(|&&id| id as usize >= self.config.vocab_size) {
                return Err(BertError::Token {
                    id,
                    size: self.config.vocab_size,
                });
            }
            offsets.push(offsets.last().unwrap_or(&0) + t.len());
        }
        let rows = *offsets.last().unwrap_or(&0);
        if rows == 0 {
            return Ok(texts.iter().map(|_| vec![0.0; h]).collect());
        }
        // The whole pass runs on the thread pool, so its many small parallel steps are
        // handed between pool threads instead of each being injected from outside (a wake-up
        // of the pool per step, which dominated the time of a one-query pass).
        let x = rayon::scope(|_| self.forward(texts, &offsets));
        Ok(texts
            .iter()
            .enumerate()
            .map(|(n, t)| {
                let mut sum = vec![0.0f32; h];
                for row in offsets[n]..offsets[n + 1] {
                    for (s, v) in sum.iter_mut().zip(&x[row * h..(row + 1) * h]) {
                        *s += v;
                    }
                }
                let count = t.len().max(1) as f32;
                sum.iter_mut().for_each(|s| *s /= count);
                sum
            })
            .collect())
    }

    /// The last hidden states, [rows, hidden], rows = every text's tokens in turn.
    fn forward(&self, texts: &[&[u32]], offsets: &[usize]) -> Vec<f32> {
        let cfg = &self.config;
        let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
        let rows = offsets[texts.len()];
        let eps = cfg.layer_norm_eps as f32;

        // Embeddings: word + position + token type 0, then LayerNorm.
        let tokens: Vec<(usize, u32)> = texts
            .iter()
            .flat_map(|t| t.iter().copied().enumerate())
            .collect();
        let mut x = vec![0.0f32; rows * h];
        x.par_chunks_mut(h)
            .zip(tokens.par_iter())
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(out, &(pos, id))| {
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (j, o) in out.iter_mut().enumerate() {
                    *o = word[j] + position[j] + self.token_type[j];
                }
                layer_norm(out, &self.embedding_norm, eps);
            });

        let spans: Vec<(usize, usize)> = (0..texts.len())
            .map(|n| (offsets[n], offsets[n + 1] - offsets[n]))
            .filter(|&(_, len)| len > 0)
            .collect();
        let mut qkv = vec![0.0f32; rows * 3 * h];
        let mut context = vec![0.0f32; rows * h];
        let mut attended = vec![0.0f32; rows * h];
        let mut inner = vec![0.0f32; rows * cfg.intermediate_size];
        for layer in &self.layers {
            linear(&x, &layer.qkv, None, &mut qkv);
            attention(&qkv, &spans, heads, h, &mut context);
            // attended = LayerNorm(context·W + b + x)
            linear(&context, &layer.attention_out, Some(&x), &mut attended);
            attended
                .par_chunks_mut(h)
                .with_min_len(ROWS_PER_TASK)
                .for_each(|row| layer_norm(row, &layer.attention_norm, eps));
            // x = LayerNorm(GELU(attended·W1 + b1)·W2 + b2 + attended)
            linear(&attended, &layer.intermediate, None, &mut inner);
            inner.par_chunks_mut(16 * 1024).for_each(|chunk| {
                chunk.iter_mut().for_each(|v| *v = gelu(*v));
            });
            linear(&inner, &layer.output, Some(&attended), &mut x);
            x.par_chunks_mut(h)
                .with_min_len(ROWS_PER_TASK)
                .for_each(|row| layer_norm(row, &layer.output_norm, eps));
        }
        x
    }
}

/// `out = input·w + b (+ residual)`, for `rows = input.len() / w.inputs` rows.
fn linear(input: &[f32], layer: &Linear, residual: Option<&[f32]>, out: &mut [f32]) {
    let (k, n) = (layer.inputs, layer.outputs);
    let m = input.len() / k;
    debug_assert_eq!(out.len(), m * n);
    out.par_chunks_mut(n)
        .with_min_len(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(r, row)| {
            row.copy_from_slice(&layer.b);
            if let Some(res) = residual {
                for (o, v) in row.iter_mut().zip(&res[r * n..(r + 1) * n]) {
                    *o += v;
                }
            }
        });
    if m <= FEW_ROWS && !matches!(layer.panels, Panels::None) {
        few_rows(input, layer, m, out);
        return;
    }
    // SAFETY: every pointer covers the extent the strides describe: `out` is m×n, `input`
    // m×k and `layer.w` k×n, all row-major and contiguous; `out` does not alias the others.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            input.as_ptr(),
            1,
            k as isize,
            layer.w.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
    }
}

/// Up to this many rows (one text of up to 256 tokens: a search query, a short batch),
/// products use `few_rows`; measured faster than `gemm` at every size up to 256 (42 rows:
/// 7.5 ms against 13 ms for the whole pass; 256 rows: 54 against 67 ms).
const FEW_ROWS: usize = 256;
/// Output columns of one panel of `Linear::panels`.
const PANEL: usize = 32;
/// Panels one task of `few_rows` computes.
const PANELS_PER_TASK: usize = 2;

/// The weights of a `Linear` packed for `few_rows`: panels of 32 output columns, each panel
/// stored input after input, so that a product with few rows reads them in order, and half
/// as many bytes of them as the f32 weights.
enum Panels {
    /// No kernel for this CPU, or outputs not a multiple of 32: products go to `gemm`, and
    /// no memory is spent on an unused copy.
    None,
    /// Half precision, [inputs, 32] per panel; AVX2 or AVX-512 widen them to f32.
    Half(Vec<f16>, Kernel),
    /// bfloat16 for `Kernel::Avx512Bf16`, [inputs / 2, 32] per panel: each u32 holds one
    /// column's weights for inputs 2i (low half) and 2i + 1 (high half), the pairs that one
    /// `vdpbf16ps` multiplies and adds.
    Pairs(Vec<u32>),
}

impl Panels {
    fn pack(w: &[f32], inputs: usize, outputs: usize, kernel: Kernel) -> Self {
        if !outputs.is_multiple_of(PANEL) {
            return Self::None;
        }
        // Columns [c0, c0 + 32) of input row i.
        let row = |c0: usize, i: usize| &w[i * outputs + c0..i * outputs + c0 + PANEL];
        let starts = (0..outputs).step_by(PANEL);
        match kernel {
            Kernel::None => Self::None,
            Kernel::Avx2 | Kernel::Avx512 => Self::Half(
                starts
                    .flat_map(|c0| (0..inputs).flat_map(move |i| row(c0, i)))
                    .map(|&v| f16::from_f32(v))
                    .collect(),
                kernel,
            ),
            Kernel::Avx512Bf16 if inputs.is_multiple_of(2) => Self::Pairs(
                starts
                    .flat_map(|c0| {
                        (0..inputs)
                            .step_by(2)
                            .flat_map(move |i| row(c0, i).iter().zip(row(c0, i + 1)))
                    })
                    .map(|(&lo, &hi)| bf16_pair(lo, hi))
                    .collect(),
            ),
            Kernel::Avx512Bf16 => Self::None,
        }
    }
}

/// Two values rounded to bfloat16 (to nearest, ties to even, as the CPU's conversion does),
/// `lo` in the low 16 bits.
fn bf16_pair(lo: f32, hi: f32) -> u32 {
    u32::from(bf16::from_f32(lo).to_bits()) | (u32::from(bf16::from_f32(hi).to_bits()) << 16)
}

/// `input` (of even length) as bfloat16 pairs, as `bf16_pair` makes them, 32 values per
/// instruction where the CPU converts them itself.
fn to_bf16_pairs(input: &[f32]) -> Vec<u32> {
    let mut out = vec![0u32; input.len() / 2];
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if kernels().contains(&Kernel::Avx512Bf16) {
        done = input.len() / 32 * 32;
        // SAFETY: the CPU has the features; 32 values are read from and 16 pairs written to
        // each chunk, within both slices.
        unsafe { to_bf16_pairs_avx512(&input[..done], &mut out[..done / 2]) };
    }
    for (o, two) in out[done / 2..]
        .iter_mut()
        .zip(input[done..].chunks_exact(2))
    {
        *o = bf16_pair(two[0], two[1]);
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn to_bf16_pairs_avx512(input: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    for (src, dst) in input.chunks_exact(32).zip(out.chunks_exact_mut(16)) {
        let lo = _mm512_loadu_ps(src.as_ptr());
        let hi = _mm512_loadu_ps(src.as_ptr().add(16));
        // values 0..16 from `lo` in the low half, 16..32 from `hi` above them
        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.as_mut_ptr() as *mut _, both);
    }
}

/// Which kernel `few_rows` can use on this CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kernel {
    None,
    Avx2,
    Avx512,
    /// AVX-512 with bfloat16 dot products: twice the multiply-adds per instruction.
    Avx512Bf16,
}

/// The fastest of `kernels()`.
fn kernel() -> Kernel {
    kernels().last().copied().unwrap_or(Kernel::None)
}

/// The kernels this CPU can run, slowest first.
fn kernels() -> &'static [Kernel] {
    static KERNELS: std::sync::OnceLock<Vec<Kernel>> = std::sync::OnceLock::new();
    KERNELS.get_or_init(|| {
        let mut found = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                found.push(Kernel::Avx2);
            }
            if has!("avx512f") {
                found.push(Kernel::Avx512);
                if has!("avx512bf16") && has!("avx512bw") {
                    found.push(Kernel::Avx512Bf16);
                }
            }
        }
        found
    })
}

/// A product with few rows is bound by reading the weights (21 MB in 16-bit floats for the
/// whole model), not by arithmetic: general kernels pack the weight matrix into a scratch
/// copy for every call, and reading a few columns of a row-major matrix touches a new page
/// for every input. This reads the panels made at load time, each once and in order, with
/// the rows' sums for the panel's 32 columns held in registers, the panels shared between
/// threads.
fn few_rows(input: &[f32], layer: &Linear, m: usize, out: &mut [f32]) {
    let target = SharedOut(out.as_mut_ptr());
    let count = layer.outputs / PANEL;
    // The bfloat16 kernel multiplies pairs of inputs: the rows are rounded once, here.
    let pairs: Vec<u32> = match layer.panels {
        Panels::Pairs(_) => to_bf16_pairs(input),
        _ => Vec::new(),
    };
    (0..count.div_ceil(PANELS_PER_TASK))
        .into_par_iter()
        .for_each(|t| {
            for p in t * PANELS_PER_TASK..((t + 1) * PANELS_PER_TASK).min(count) {
                // SAFETY: panels are only packed for a kernel `kernels()` found on this
                // CPU; the panel's columns [p·32, p·32 + 32) of every row are written by
                // this task alone.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match &layer.panels {
                        Panels::Half(w, Kernel::Avx512) => {
                            panel_rows_avx512(input, layer, w, m, p, target.ptr())
                        }
                        Panels::Half(w, _) => panel_rows_avx2(input, layer, w, m, p, target.ptr()),
                        Panels::Pairs(w) => panel_rows_bf16(&pairs, layer, w, m, p, target.ptr()),
                        Panels::None => {}
                    }
                }
            }
        });
}

/// `$tile::<R>(args)` with the const `R` = `$rows` (a run-time count), at most `$max` (12 or
/// 6): a tile's row count must be known when it is compiled, so that its sums stay in
/// registers.
macro_rules! with_rows {
    ($rows:expr, 12, $tile:ident($($arg:expr),*)) => {
        match $rows {
            1 => $tile::<1>($($arg),*),
            2 => $tile::<2>($($arg),*),
            3 => $tile::<3>($($arg),*),
            4 => $tile::<4>($($arg),*),
            5 => $tile::<5>($($arg),*),
            6 => $tile::<6>($($arg),*),
            7 => $tile::<7>($($arg),*),
            8 => $tile::<8>($($arg),*),
            9 => $tile::<9>($($arg),*),
            10 => $tile::<10>($($arg),*),
            11 => $tile::<11>($($arg),*),
            _ => $tile::<12>($($arg),*),
        }
    };
    ($rows:expr, 6, $tile:ident($($arg:expr),*)) => {
        match $rows {
            1 => $tile::<1>($($arg),*),
            2 => $tile::<2>($($arg),*),
            3 => $tile::<3>($($arg),*),
            4 => $tile::<4>($($arg),*),
            5 => $tile::<5>($($arg),*),
            _ => $tile::<6>($($arg),*),
        }
    };
}

/// Columns [p·32, p·32 + 32) of `out += input · w` for all `m` rows, 12 rows at a time (24
/// of the 32 AVX-512 registers hold their sums).
///
/// # Safety
/// The CPU must have AVX-512F; `layer.panels` must hold the panels of `layer.w`; `out` must
/// point to an m×outputs row-major matrix whose columns [p·32, p·32 + 32) nobody else
/// writes meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn panel_rows_avx512(
    input: &[f32],
    layer: &Linear,
    panels: &[f16],
    m: usize,
    p: usize,
    out: *mut f32,
) {
    let k = layer.inputs;
    let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
    let n = layer.outputs;
    let mut r = 0;
    while r < m {
        let rows = &input[r * k..];
        let dst = out.add(r * n + p * PANEL);
        with_rows!(m - r, 12, tile_avx512(rows, k, panel, dst, n));
        r += 12;
    }
}

/// `R` rows × 32 columns: `dst[r][0..32] += Σ_i rows[r][i] · panel[i][0..32]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_avx512<const R: usize>(
    rows: &[f32],
    k: usize,
    panel: &[f16],
    dst: *mut f32,
    n: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(rows.len() >= R * k && panel.len() == k * PANEL);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let w = panel.as_ptr();
    let x = rows.as_ptr();
    for i in 0..k {
        // The panel rows 2 kB ahead are on their way while these are used.
        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(i * PANEL + 1024) as *const i8);
        let w0 = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(i * PANEL) as *const __m256i));
        let w1 = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(i * PANEL + 16) as *const __m256i));
        for (r, a) in acc.iter_mut().enumerate() {
            let v = _mm512_set1_ps(*x.add(r * k + i));
            a[0] = _mm512_fmadd_ps(v, w0, a[0]);
            a[1] = _mm512_fmadd_ps(v, w1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = dst.add(r * n);
        _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), a[0]));
        _mm512_storeu_ps(o.add(16), _mm512_add_ps(_mm512_loadu_ps(o.add(16)), a[1]));
    }
}

/// Columns [p·32, p·32 + 32) of `out += input · w` for all `m` rows, as two halves of 16
/// columns, 6 rows at a time (12 of the 16 AVX registers hold their sums).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; otherwise as `panel_rows_avx512`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn panel_rows_avx2(
    input: &[f32],
    layer: &Linear,
    panels: &[f16],
    m: usize,
    p: usize,
    out: *mut f32,
) {
    let k = layer.inputs;
    let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
    let n = layer.outputs;
    for half in [0, 16] {
        let mut r = 0;
        while r < m {
            let rows = &input[r * k..];
            let dst = out.add(r * n + p * PANEL + half);
            let w = &panel[half..];
            with_rows!(m - r, 6, tile_avx2(rows, k, w, dst, n));
            r += 6;
        }
    }
}

/// `R` rows × 16 columns: `dst[r][0..16] += Σ_i rows[r][i] · w[i·32..i·32 + 16]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_avx2<const R: usize>(rows: &[f32], k: usize, w: &[f16], dst: *mut f32, n: usize) {
    use std::arch::x86_64::*;
    debug_assert!(rows.len() >= R * k && w.len() >= (k - 1) * PANEL + 16);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let w = w.as_ptr();
    let x = rows.as_ptr();
    for i in 0..k {
        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(i * PANEL + 1024) as *const i8);
        let w0 = _mm256_cvtph_ps(_mm_loadu_si128(w.add(i * PANEL) as *const __m128i));
        let w1 = _mm256_cvtph_ps(_mm_loadu_si128(w.add(i * PANEL + 8) as *const __m128i));
        for (r, a) in acc.iter_mut().enumerate() {
            let v = _mm256_broadcast_ss(&*x.add(r * k + i));
            a[0] = _mm256_fmadd_ps(v, w0, a[0]);
            a[1] = _mm256_fmadd_ps(v, w1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = dst.add(r * n);
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a[0]));
        _mm256_storeu_ps(o.add(8), _mm256_add_ps(_mm256_loadu_ps(o.add(8)), a[1]));
    }
}

/// Columns [p·32, p·32 + 32) of `out += input · w` for all `m` rows, 12 rows at a time, from
/// bfloat16 pairs: `pairs` is the input, [m, inputs / 2], rounded as `Panels::Pairs`.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and AVX-512 BF16; otherwise as `panel_rows_avx512`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn panel_rows_bf16(
    pairs: &[u32],
    layer: &Linear,
    panels: &[u32],
    m: usize,
    p: usize,
    out: *mut f32,
) {
    let k = layer.inputs / 2;
    let size = k * PANEL;
    let panel = &panels[p * size..(p + 1) * size];
    // The first tile streams the panel from memory; the tiles after it find it in the cache
    // and are bound by arithmetic, so meanwhile the second one fetches the next panel.
    let next = panels.get((p + 1) * size..(p + 2) * size).unwrap_or(&[]);
    let n = layer.outputs;
    let mut r = 0;
    while r < m {
        let rows = &pairs[r * k..];
        let dst = out.add(r * n + p * PANEL);
        // (once, by the second tile: the tiles after it find the next panel fetched)
        let ahead = if r == 12 { next } else { &[][..] };
        with_rows!(m - r, 12, tile_bf16(rows, k, panel, ahead, dst, n));
        r += 12;
    }
}

/// `R` rows × 32 columns from `k` input pairs: `dst[r][c] += Σ_i rows[r][i] · panel[i][c]`,
/// each term the two products of a pair. `ahead` (empty, or a panel's size) is fetched
/// into the cache on the way.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_bf16<const R: usize>(
    rows: &[u32],
    k: usize,
    panel: &[u32],
    ahead: &[u32],
    dst: *mut f32,
    n: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(rows.len() >= R * k && panel.len() == k * PANEL);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let w = panel.as_ptr();
    let x = rows.as_ptr();
    if ahead.len() == panel.len() {
        let a = ahead.as_ptr();
        for i in 0..k {
            _mm_prefetch::<_MM_HINT_T1>(a.add(i * PANEL) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>(a.add(i * PANEL + 16) as *const i8);
            pair_step(&mut acc, w.add(i * PANEL), x.add(i), k);
        }
    } else {
        for i in 0..k {
            // The panel rows 2 kB ahead are on their way while these are used.
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(i * PANEL + 512) as *const i8);
            pair_step(&mut acc, w.add(i * PANEL), x.add(i), k);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = dst.add(r * n);
        _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), a[0]));
        _mm512_storeu_ps(o.add(16), _mm512_add_ps(_mm512_loadu_ps(o.add(16)), a[1]));
    }
}

/// One input pair of a tile: 32 columns of weights `w`, the pair of row `r` at `x + r·k`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn pair_step<const R: usize>(
    acc: &mut [[std::arch::x86_64::__m512; 2]; R],
    w: *const u32,
    x: *const u32,
    k: usize,
) {
    use std::arch::x86_64::*;
    let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(w as *const _));
    let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(w.add(16) as *const _));
    for (r, a) in acc.iter_mut().enumerate() {
        let v: __m512bh = std::mem::transmute(_mm512_set1_epi32(*x.add(r * k) as i32));
        a[0] = _mm512_dpbf16_ps(a[0], v, w0);
        a[1] = _mm512_dpbf16_ps(a[1], v, w1);
    }
}

/// Rows of an element-wise step one task takes on (a split costs more than a few rows).
const ROWS_PER_TASK: usize = 32;

/// A pointer that parallel attention tasks write through, each to its own columns of its
/// own rows.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

impl SharedOut {
    /// Through a method, so closures capture the whole (Send) wrapper, not the bare pointer.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: tasks write disjoint regions (one text's rows × one head's columns).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// Scaled dot-product attention, one task per text and head. `qkv` is [rows, 3h] (Q, K, V
/// side by side, heads of `h / heads` columns each); `out` [rows, h] gets every head's
/// result in that head's columns. A text only attends to its own tokens, so no mask.
fn attention(qkv: &[f32], spans: &[(usize, usize)], heads: usize, h: usize, out: &mut [f32]) {
    let d = h / heads;
    let stride = 3 * h;
    let scale = 1.0 / (d as f32).sqrt();
    let target = SharedOut(out.as_mut_ptr());
    let tasks: Vec<(usize, usize, usize)> = spans
        .iter()
        .flat_map(|&(start, len)| (0..heads).map(move |head| (start, len, head)))
        .collect();
    tasks
        .par_iter()
        .for_each_init(Vec::new, |scores, &(start, len, head)| {
            scores.clear();
            scores.resize(len * len, 0.0f32);
            let q = qkv[start * stride + head * d..].as_ptr();
            let k = qkv[start * stride + h + head * d..].as_ptr();
            let v = qkv[start * stride + 2 * h + head * d..].as_ptr();
            // SAFETY: Q, K and V of this text and head lie within `qkv` (len rows from `start`,
            // row stride 3h, d columns); `scores` is len×len; the destination block (len rows
            // from `start`, row stride h, d columns from head·d) lies within `out`, and no
            // other task writes it.
            unsafe {
                // scores = scale · Q·Kᵀ  (Kᵀ read in place: column stride = K's row stride)
                gemm::gemm(
                    len,
                    len,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    len as isize,
                    false,
                    q,
                    1,
                    stride as isize,
                    k,
                    stride as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for row in scores.chunks_mut(len) {
                softmax(row);
            }
            unsafe {
                gemm::gemm(
                    len,
                    d,
                    len,
                    target.ptr().add(start * h + head * d),
                    1,
                    h as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    len as isize,
                    v,
                    1,
                    stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        });
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

fn layer_norm(row: &mut [f32], norm: &Norm, eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// GELU as BERT defines it, x·Φ(x) with the exact normal CDF: 0.5·x·(1 + erf(x/√2)).
#[inline]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf with an absolute error below 1.5e-7 (Abramowitz and Stegun, formula 7.1.26).
#[inline]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + P * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_close_to_reference_values() {
        // erf values from tables (to 9 digits), compared in f64.
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.1, 0.112_462_916),
            (0.5, 0.520_499_878),
            (1.0, 0.842_700_793),
            (2.0, 0.995_322_265),
            (-1.5, -0.966_105_146),
            (4.0, 0.999_999_985),
        ] {
            assert!(
                (erf(x) as f64 - want).abs() < 3e-7,
                "erf({x}) = {} not {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = vec![1.0, 3.0, 2.0, -50.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[1] > row[2] && row[2] > row[0] && row[3] < 1e-20);
    }

    /// `input · w + b` in f64, with the weights as given.
    fn product(input: &[f32], w: &[f32], b: &[f32], k: usize, n: usize) -> Vec<f32> {
        let m = input.len() / k;
        let mut out = vec![0.0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                let sum: f64 = (0..k)
                    .map(|i| input[r * k + i] as f64 * w[i * n + c] as f64)
                    .sum();
                out[r * n + c] = (sum + b[c] as f64) as f32;
            }
        }
        out
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    }

    /// The inputs as a kernel multiplies them: rounded to bfloat16 by that kernel only.
    fn rounded_input(v: &[f32], kernel: Kernel) -> Vec<f32> {
        match kernel {
            Kernel::Avx512Bf16 => rounded(v, kernel),
            _ => v.to_vec(),
        }
    }

    /// The weights as a kernel's panels hold them.
    fn rounded(v: &[f32], kernel: Kernel) -> Vec<f32> {
        v.iter()
            .map(|&x| match kernel {
                Kernel::Avx2 | Kernel::Avx512 => f16::from_f32(x).to_f32(),
                Kernel::Avx512Bf16 => bf16::from_f32(x).to_f32(),
                Kernel::None => x,
            })
            .collect()
    }

    #[test]
    fn products_agree_with_a_plain_product() {
        let (k, n) = (48, 128);
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let w: Vec<f32> = (0..k * n).map(|_| next()).collect();
        let b: Vec<f32> = (0..n).map(|_| next()).collect();
        let layer = Linear::new(w.clone(), b.clone(), k, n);
        for m in [
            1, 3, 4, 5, 6, 7, 9, 12, 13, 25, 32, 33, 40, 255, 256, 257, 300,
        ] {
            let input: Vec<f32> = (0..m * k).map(|_| next()).collect();
            // `linear`: the chosen kernel up to FEW_ROWS rows, gemm in f32 beyond
            let (weights, rows) = if m <= FEW_ROWS {
                (rounded(&w, kernel()), rounded_input(&input, kernel()))
            } else {
                (w.clone(), input.clone())
            };
            let want = product(&rows, &weights, &b, k, n);
            let mut got = vec![0.0f32; m * n];
            linear(&input, &layer, None, &mut got);
            assert!(
                worst(&want, &got) < 1e-4,
                "{m} rows: off by {}",
                worst(&want, &got)
            );
            if m > FEW_ROWS {
                continue;
            }
            for &kernel in kernels() {
                let layer = Linear::for_kernel(w.clone(), b.clone(), k, n, kernel);
                let want = product(
                    &rounded_input(&input, kernel),
                    &rounded(&w, kernel),
                    &b,
                    k,
                    n,
                );
                let mut got = vec![0.0f32; m * n];
                for row in got.chunks_mut(n) {
                    row.copy_from_slice(&b);
                }
                few_rows(&input, &layer, m, &mut got);
                let off = worst(&want, &got);
                assert!(off < 1e-4, "{kernel:?}, {m} rows: off by {off}");
            }
        }
        eprintln!("kernels tested: {:?}", kernels());
    }

    #[test]
    fn linear_adds_bias_and_residual() {
        // 2 rows × 3 inputs → 2 outputs
        let layer = Linear::new(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], vec![0.5, -0.5], 3, 2);
        let input = [1.0, 2.0, 3.0, 0.0, 1.0, 0.0];
        let residual = [10.0, 20.0, 30.0, 40.0];
        let mut out = [0.0; 4];
        linear(&input, &layer, Some(&residual), &mut out);
        assert_eq!(
            out,
            [
                1.0 + 3.0 + 0.5 + 10.0,
                2.0 + 3.0 - 0.5 + 20.0,
                30.5,
                1.0 + 0.0 - 0.5 + 40.0
            ]
        );
    }
}
