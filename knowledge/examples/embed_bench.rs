//! Embedding throughput of the local model (all-MiniLM-L6-v2, CPU, f32) measured against
//! what this machine's matrix multiplication can do, and against candle-transformers'
//! `BertModel` (the encoder the product used before `knowledge/src/embed/bert.rs`).
//!
//! Run (release build; the model comes from `scripts/bootstrap`):
//!
//! ```text
//! cargo run --release -p obrol-knowledge --example embed_bench
//! cargo run --release -p obrol-knowledge --example embed_bench -- --passages 256 --runs 2
//! ```
//!
//! Options: `--passages N` (default 512), `--runs N` (timed runs after one warm-up, default
//! 3), `--no-baseline` (skip candle's BertModel), `--queries-only` (only part 6). The model directory is
//! `OBROL_EMBEDDING_MODEL_DIR`, else `.obrol/models/all-MiniLM-L6-v2`.
//!
//! What it measures, in order:
//!
//! 1. A deterministic passage set: consecutive sentences of `knowledge/eval/documents/faq-en.md`
//!    and `faq-id.md` joined into passages of 60–220 word pieces (like the product's chunks).
//! 2. The product: `LocalEmbedder::embed_blocking` on all passages (tokenise, pack, encode,
//!    mean pooling, L2 norm), best of `--runs` after a warm-up, with CPU use and page faults.
//! 3. The baseline: candle-transformers' `BertModel` on the same passages (batches of 16
//!    sorted by length, padding masked, as the product did), and the largest difference
//!    between its vectors and the product's.
//! 4. The compute bound: f32 matrix products with the `gemm` crate (the kernels both candle
//!    and our encoder call) on the model's shapes and on a square 1024³, best of many calls.
//! 5. FLOPs per token of the model (formula printed), the rate achieved and the efficiency
//!    against the best model-shaped product.
//! 6. One short query at a time (what a search pays before it can use the vector index).
//!
//! The output is plain text meant for `docs/benchmarks.md`. The machines are shared: the load
//! average is printed along the way; compare ratios.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use obrol_knowledge::embed::local::{LocalEmbedder, MAX_TOKENS};
use obrol_knowledge::embed::normalize;
use tokenizers::{Tokenizer, TruncationParams};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const LAYERS: usize = 6;
const HIDDEN: usize = 384;
const INTER: usize = 1536;
/// Rows of one of the product's batches (knowledge/src/embed/local.rs, BATCH_TOKENS).
const PRODUCT_ROWS: usize = 4096;

struct Args {
    passages: usize,
    runs: usize,
    baseline: bool,
    /// Only part 6 (one query at a time).
    queries_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        passages: 512,
        runs: 3,
        baseline: true,
        queries_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--passages" => a.passages = num("--passages").max(1),
            "--runs" => a.runs = num("--runs").max(1),
            "--no-baseline" => a.baseline = false,
            "--queries-only" => a.queries_only = true,
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// Per token and layer: Q, K, V and output projections (4 · 2·H·H) and the FFN (2 · 2·H·I).
const DENSE_PER_TOKEN_LAYER: usize = 4 * 2 * HIDDEN * HIDDEN + 2 * 2 * HIDDEN * INTER;

/// Model FLOPs of texts with `tokens` tokens in all and Σ n² = `sum_sq`: the dense part plus
/// attention scores and weighted sum (2 · 2·n·H per token and layer).
fn flops(tokens: usize, sum_sq: usize) -> f64 {
    (LAYERS * (tokens * DENSE_PER_TOKEN_LAYER + 2 * 2 * HIDDEN * sum_sq)) as f64
}

/// candle's BertModel the way the product ran it before: batches of 16 sorted by length,
/// padded, mean pooling over the mask, L2 norm.
fn candle_embed(bert: &BertModel, tokenizer: &Tokenizer, texts: &[String]) -> Res<Vec<Vec<f32>>> {
    let dev = Device::Cpu;
    let enc = tokenizer.encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| enc[i].get_ids().len());
    let mut out = vec![Vec::new(); texts.len()];
    for chunk in order.chunks(16) {
        let w = chunk
            .iter()
            .map(|&i| enc[i].get_ids().len())
            .max()
            .unwrap_or(1);
        let mut ids = Vec::with_capacity(chunk.len() * w);
        let mut mask = Vec::with_capacity(chunk.len() * w);
        for &i in chunk {
            let e = enc[i].get_ids();
            ids.extend_from_slice(e);
            ids.extend(std::iter::repeat_n(0u32, w - e.len()));
            mask.extend(std::iter::repeat_n(1u32, e.len()));
            mask.extend(std::iter::repeat_n(0u32, w - e.len()));
        }
        let ids = Tensor::from_vec(ids, (chunk.len(), w), &dev)?;
        let mask = Tensor::from_vec(mask, (chunk.len(), w), &dev)?;
        let hidden = bert.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let rows: Vec<Vec<f32>> = hidden
            .broadcast_mul(&m)?
            .sum(1)?
            .broadcast_div(&m.sum(1)?)?
            .to_vec2()?;
        for (&i, mut row) in chunk.iter().zip(rows) {
            normalize(&mut row);
            out[i] = row;
        }
    }
    Ok(out)
}

/// GFLOP/s of `gemm` for [m, k] × [k, n], f32, all cores, best of ≥ 10 calls and ≥ 1 s.
fn gemm_rate(m: usize, k: usize, n: usize) -> (Duration, f64) {
    let mut rng = Rng(m as u64 * 31 + n as u64);
    let mut fill = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| rng.below(2000) as f32 / 1000.0 - 1.0)
            .collect()
    };
    let (a, b) = (fill(m * k), fill(k * n));
    let mut c = vec![0.0f32; m * n];
    let t = best_time(10, Duration::from_secs(1), || {
        // SAFETY: a is m×k, b k×n, c m×n, all row-major and contiguous, c apart from a and b.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            )
        }
    });
    std::hint::black_box(&c);
    (t, 2.0 * (m * k * n) as f64 / secs(t) / 1e9)
}

fn main() -> Res<()> {
    let a = args();
    let dir = model_dir();
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("== Embedding benchmark: all-MiniLM-L6-v2, CPU f32 ==");
    println!(
        "machine: {} ({} MHz reported), {threads} hardware threads, rayon pool {}",
        cpuinfo("model name").unwrap_or_else(|| "?".into()),
        cpuinfo("cpu MHz").unwrap_or_else(|| "?".into()),
        rayon::current_num_threads()
    );
    println!("model: {}", dir.display());
    let embedder = LocalEmbedder::load(&dir)?;
    if a.queries_only {
        return queries(&embedder);
    }

    // 1. Passages
    let passages = build_passages(&embedder, a.passages)?;
    let counts = embedder.token_counts(&passages)?;
    let tokens: usize = counts.iter().sum();
    let sum_sq: usize = counts.iter().map(|n| n * n).sum();
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    println!();
    println!("-- 1. passages (load {}) --", loadavg());
    println!(
        "{} passages from faq-en.md / faq-id.md sentences; word pieces incl. [CLS]/[SEP]: \
         total {tokens}, mean {:.1}, min {min}, max {max} (truncation at {MAX_TOKENS})",
        passages.len(),
        tokens as f64 / passages.len() as f64
    );

    // 2. The product
    println!();
    println!(
        "-- 2. product: LocalEmbedder::embed_blocking (load {}) --",
        loadavg()
    );
    let (m, product) = measure(|| embedder.embed_blocking(&passages));
    let product = product?;
    println!("warm-up run: {}", m.describe());
    let mut times = Vec::new();
    for r in 0..a.runs {
        let (m, out) = measure(|| embedder.embed_blocking(&passages));
        std::hint::black_box(out?);
        println!("run {}: {} (load {})", r + 1, m.describe(), loadavg());
        times.push(m.wall);
    }
    let (best, median) = best_median(&mut times);
    let tok_s = tokens as f64 / secs(best);
    println!(
        "best of {}: {:.2} s (median {:.2} s) = {tok_s:.0} tokens/s, {:.1} passages/s",
        a.runs,
        secs(best),
        secs(median),
        passages.len() as f64 / secs(best)
    );
    let tokenize = best_time(3, Duration::from_millis(500), || {
        embedder.token_counts(&passages).map(|c| c.len())
    });
    println!(
        "of which tokenisation: {:.3} s ({:.1}%)",
        secs(tokenize),
        100.0 * secs(tokenize) / secs(best)
    );

    // 3. Baseline
    let mut baseline = None;
    if a.baseline {
        println!();
        println!(
            "-- 3. baseline: candle-transformers BertModel, batches of 16 sorted by length (load {}) --",
            loadavg()
        );
        let config: Config = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
        tokenizer.with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }))?;
        tokenizer.with_padding(None);
        // SAFETY: the model file is only read.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &Device::Cpu,
            )?
        };
        let bert = BertModel::load(vb, &config)?;
        let (m, reference) = measure(|| candle_embed(&bert, &tokenizer, &passages));
        let reference = reference?;
        println!("warm-up run: {}", m.describe());
        let mut times = Vec::new();
        for r in 0..a.runs {
            let (m, out) = measure(|| candle_embed(&bert, &tokenizer, &passages));
            std::hint::black_box(out?);
            println!("run {}: {} (load {})", r + 1, m.describe(), loadavg());
            times.push(m.wall);
        }
        let (b, _) = best_median(&mut times);
        let base_tok_s = tokens as f64 / secs(b);
        let worst_cos = product
            .iter()
            .zip(&reference)
            .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>())
            .fold(1.0f32, f32::min);
        println!(
            "best of {}: {:.2} s = {base_tok_s:.0} tokens/s; product / baseline = {:.2}x; \
             vectors: max |diff| {:.1e}, lowest cosine {worst_cos:.6}",
            a.runs,
            secs(b),
            tok_s / base_tok_s,
            max_abs_diff(&product, &reference)
        );
        baseline = Some(base_tok_s);
    }

    // 4. Compute bound
    println!();
    println!(
        "-- 4. compute bound: gemm f32 on all cores, best of >= 10 calls and >= 1 s (load {}) --",
        loadavg()
    );
    let mut bound = 0.0f64;
    for (label, m, k, n) in [
        (
            "Q,K,V fused [M,384] x [384,1152]",
            PRODUCT_ROWS,
            HIDDEN,
            3 * HIDDEN,
        ),
        (
            "attention output [M,384] x [384,384]",
            PRODUCT_ROWS,
            HIDDEN,
            HIDDEN,
        ),
        ("FFN up [M,384] x [384,1536]", PRODUCT_ROWS, HIDDEN, INTER),
        (
            "FFN down [M,1536] x [1536,384]",
            PRODUCT_ROWS,
            INTER,
            HIDDEN,
        ),
        ("square 1024^3", 1024, 1024, 1024),
    ] {
        let (t, g) = gemm_rate(m, k, n);
        println!(
            "{label:<40} M={m:<5} {:>8.3} ms {g:>7.1} GFLOP/s",
            secs(t) * 1e3
        );
        if !label.starts_with("square") {
            bound = bound.max(g);
        }
    }
    println!("bound used below: the best model-shaped product = {bound:.1} GFLOP/s");

    // 5. Efficiency
    let useful = flops(tokens, sum_sq);
    let per_token = useful / tokens as f64;
    let achieved = tok_s * per_token / 1e9;
    println!();
    println!("-- 5. FLOPs per token and efficiency --");
    println!(
        "FLOPs/token = {LAYERS} layers x (4*2*{HIDDEN}*{HIDDEN} [Q,K,V,out] + 2*2*{HIDDEN}*{INTER} [FFN] \
         + 2*2*L*{HIDDEN} [scores + weighted sum]) = {} + {}*L",
        LAYERS * DENSE_PER_TOKEN_LAYER,
        LAYERS * 4 * HIDDEN
    );
    println!(
        "L = token-weighted mean length sum(n^2)/sum(n) = {:.1} -> {:.2} MFLOP/token \
         (embeddings, LayerNorm, GELU, softmax and pooling not counted)",
        sum_sq as f64 / tokens as f64,
        per_token / 1e6
    );
    println!("product tokens/s  {tok_s:.0}");
    println!("achieved          {achieved:.1} GFLOP/s");
    println!("matmul bound      {bound:.1} GFLOP/s");
    println!("efficiency        {:.1}%", 100.0 * achieved / bound);
    if let Some(base) = baseline {
        println!(
            "baseline          {base:.0} tokens/s = {:.1} GFLOP/s = {:.1}% of the bound",
            base * per_token / 1e9,
            100.0 * base * per_token / 1e9 / bound
        );
    }

    queries(&embedder)
}

/// 6. One query at a time, as a search embeds it.
fn queries(embedder: &LocalEmbedder) -> Res<()> {
    println!();
    println!("-- 6. one query at a time (load {}) --", loadavg());
    let short = [
        "berapa lama pengiriman ke surabaya?",
        "can I return a grinder I already used",
        "Wat kost de abonnement per maand?",
        "do you ship to Bali and how much is it",
    ];
    // A customer's message of a few sentences: the long tail of a search's time.
    let long = [
        "Hi, I ordered the Pro grinder last week with express shipping to Denpasar but the \
         tracking page still says pending. When will it arrive, and can I still change the \
         delivery address?",
    ];
    // In the server, PostgreSQL's index scans run between two queries and push the model's
    // weights out of the CPU caches: measured both ways.
    let mut junk = vec![1u8; 96 << 20];
    for queries in [&short[..], &long[..]] {
        for q in queries.iter().cycle().take(8) {
            embedder.embed_blocking(&[q.to_string()])?;
        }
        let texts: Vec<String> = queries.iter().map(|q| q.to_string()).collect();
        let q_tokens = embedder.token_counts(&texts)?;
        for evict in [false, true] {
            let mut lat = Vec::new();
            for q in texts.iter().cycle().take(400) {
                if evict {
                    junk.chunks_mut(64)
                        .for_each(|c| c[0] = c[0].wrapping_add(1));
                    std::hint::black_box(&junk);
                }
                let t = Instant::now();
                std::hint::black_box(embedder.embed_blocking(std::slice::from_ref(q))?);
                lat.push(t.elapsed());
            }
            lat.sort();
            println!(
                "{} queries of {:?} tokens{}: p50 {:.2} ms, p99 {:.2} ms",
                lat.len(),
                q_tokens,
                if evict {
                    ", caches flushed (96 MB written) before each"
                } else {
                    ", one after the other"
                },
                secs(lat[lat.len() / 2]) * 1e3,
                secs(lat[lat.len() * 99 / 100]) * 1e3
            );
        }
    }
    println!();
    println!("load at end: {}", loadavg());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpuinfo(key: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split(':').nth(1))
        .map(|v| v.trim().to_string())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Best and median of `runs` timed calls.
fn best_median(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

/// Best single-call time of `f`, after one warm-up call, over at least `min_iters` calls and
/// at least `min_time` of calls.
fn best_time<T>(min_iters: usize, min_time: Duration, mut f: impl FnMut() -> T) -> Duration {
    std::hint::black_box(f());
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut n = 0;
    while n < min_iters || start.elapsed() < min_time {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed());
        n += 1;
    }
    best
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn model_dir() -> PathBuf {
    std::env::var_os("OBROL_EMBEDDING_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.obrol/models/all-MiniLM-L6-v2")
        })
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

// Passages

/// Sentences of a Markdown document: headings dropped, list markers stripped, split after
/// `.`, `?` or `!` followed by a space.
fn sentences(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in markdown.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('|') {
            continue;
        }
        let line = line.trim_start_matches(['-', '*', ' ']);
        let mut current = String::new();
        let chars: Vec<char> = line.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            current.push(c);
            let end = matches!(c, '.' | '?' | '!') && chars.get(i + 1).is_none_or(|n| *n == ' ');
            if end {
                let s = current.trim().to_string();
                if s.split_whitespace().count() >= 3 {
                    out.push(s);
                }
                current.clear();
            }
        }
        let s = current.trim().to_string();
        if s.split_whitespace().count() >= 3 {
            out.push(s);
        }
    }
    out
}

/// Passages of 60–220 word pieces made of consecutive sentences of one document (English or
/// Indonesian, alternating at random).
fn build_passages(embedder: &LocalEmbedder, count: usize) -> Res<Vec<String>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("eval/documents");
    let mut docs = Vec::new();
    for name in ["faq-en.md", "faq-id.md"] {
        let text = std::fs::read_to_string(root.join(name))?;
        let s = sentences(&text);
        // Word pieces per sentence without [CLS]/[SEP]. BERT's pre-tokeniser splits on
        // whitespace, so pieces of sentences joined by a space add up.
        let pieces: Vec<usize> = embedder
            .token_counts(&s)?
            .into_iter()
            .map(|n| n - 2)
            .collect();
        docs.push((s, pieces));
    }
    let mut rng = Rng(0x0b01_2026_cafe_f00d);
    let mut passages = Vec::with_capacity(count);
    for _ in 0..count {
        let (s, pieces) = &docs[rng.below(docs.len())];
        let target = 60 + rng.below(161);
        let mut i = rng.below(s.len());
        let mut text = String::new();
        let mut n = 2;
        loop {
            if n >= target || (n >= 60 && n + pieces[i] > 220) {
                break;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&s[i]);
            n += pieces[i];
            i = (i + 1) % s.len();
        }
        passages.push(text);
    }
    Ok(passages)
}

/// CPU time and page faults of this process so far.
#[derive(Clone, Copy)]
struct Usage {
    user: f64,
    sys: f64,
    minflt: i64,
}

fn usage() -> Usage {
    // SAFETY: getrusage only writes the struct it is given.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        user: tv(r.ru_utime),
        sys: tv(r.ru_stime),
        minflt: r.ru_minflt,
    }
}

/// Wall time, CPU use and page faults of one call.
struct Measured {
    wall: Duration,
    cpu: f64,
    sys: f64,
    faults: i64,
}

fn measure<T>(f: impl FnOnce() -> T) -> (Measured, T) {
    let (u0, t0) = (usage(), Instant::now());
    let out = f();
    let (wall, u1) = (t0.elapsed(), usage());
    (
        Measured {
            wall,
            cpu: (u1.user - u0.user) + (u1.sys - u0.sys),
            sys: u1.sys - u0.sys,
            faults: u1.minflt - u0.minflt,
        },
        out,
    )
}

impl Measured {
    fn describe(&self) -> String {
        format!(
            "{:.2} s, CPU {:.2} cores busy ({:.0}% of it kernel), {:.0}k page faults",
            secs(self.wall),
            self.cpu / secs(self.wall),
            100.0 * self.sys / self.cpu.max(1e-9),
            self.faults as f64 / 1e3
        )
    }
}
