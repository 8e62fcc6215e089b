//! Knowledge benchmarks against the real server (release build), for docs/benchmarks.md:
//!
//! (a) a 20 MB mixed upload set (PDFs, a Word document, CSV, Markdown, HTML, a workbook):
//!     upload time, time until every source is keyword-searchable and until it is fully
//!     embedded, and the throughput of each stage (from the status changes the
//!     `knowledgeSourceUpdated` subscription reports);
//! (d) `searchKnowledge` latency with that knowledge base at the 20 MB cap and 100 other
//!     knowledge bases (in 10 other companies) in the same index, against the pgvector
//!     query and a trivial GraphQL request measured in the same run.
//!
//! Run with `scripts/bench-knowledge` (which builds in release mode and sets OBROL_BIN).
//! Environment: SEARCHES (default 400), OTHER_BASES (default 100), BENCH_DATABASE (the
//! database an earlier run printed: skips (a) and measures the searches again on its data,
//! with the current server).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use obrol_api::knowledge::store::{NEAREST_SETTINGS, NEAREST_SQL};
use obrol_knowledge::embed::local::LocalEmbedder;
use obrol_tests::{fixture, pdf_from_objects, summary, Subscription, TestApp, TestDatabase};
use serde_json::{json, Value};

/// Deterministic text in the shop's domain, with a marker word per document.
struct Words {
    state: u64,
}

const VOCABULARY: &[&str] = &[
    "coffee",
    "beans",
    "roast",
    "shipping",
    "order",
    "refund",
    "warranty",
    "grinder",
    "kettle",
    "subscription",
    "delivery",
    "customer",
    "payment",
    "transfer",
    "invoice",
    "Surabaya",
    "Bandung",
    "Jakarta",
    "Bali",
    "arabica",
    "robusta",
    "espresso",
    "filter",
    "brew",
    "price",
    "discount",
    "member",
    "points",
    "weekend",
    "weekday",
    "package",
    "courier",
    "tracking",
    "return",
    "damaged",
    "replacement",
    "kopi",
    "pengiriman",
    "ongkos",
    "kirim",
    "garansi",
    "pesanan",
    "pembayaran",
    "hari",
    "kerja",
    "gratis",
    "minimal",
    "pembelian",
    "toko",
    "jam",
];

impl Words {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn sentence(&mut self) -> String {
        let n = 8 + (self.next() % 12) as usize;
        let mut words: Vec<String> = (0..n)
            .map(|_| VOCABULARY[(self.next() % VOCABULARY.len() as u64) as usize].to_string())
            .collect();
        words.push(format!("{}", self.next() % 1000));
        let mut s = words.join(" ");
        if let Some(first) = s.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        s.push('.');
        s
    }

    fn paragraph(&mut self) -> String {
        let n = 2 + (self.next() % 4) as usize;
        (0..n)
            .map(|_| self.sentence())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn pdf_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('(', "\\(")
        .replace(')', "\\)")
}

/// A text PDF of `pages` pages (Helvetica, WinAnsi), plus an unused binary stream of
/// `padding` bytes standing in for the images and fonts real PDFs carry.
fn text_pdf(words: &mut Words, marker: &str, pages: usize, padding: usize) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = Vec::new();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let first_page = 4;
    let kids: Vec<String> = (0..pages)
        .map(|i| format!("{} 0 R", first_page + 2 * i))
        .collect();
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        )
        .into_bytes(),
    );
    objects.push(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    for page in 0..pages {
        let mut content = String::from("BT /F1 10 Tf 12 TL 50 790 Td\n");
        content.push_str(&format!("(Section {} {marker}) Tj T* T*\n", page + 1));
        for _ in 0..58 {
            let line = words.sentence();
            content.push_str(&format!("({}) Tj T*\n", pdf_escape(&line)));
        }
        content.push_str("ET");
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                first_page + 2 * page + 1
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend(content.bytes());
        stream.extend(b"\nendstream");
        objects.push(stream);
    }
    if padding > 0 {
        let mut stream = format!("<< /Length {padding} >>\nstream\n").into_bytes();
        stream.extend((0..padding).map(|_| (words.next() & 0xff) as u8));
        stream.extend(b"\nendstream");
        objects.push(stream);
    }
    pdf_from_objects(&objects)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Word document with `sections` headings, each followed by paragraphs.
fn docx(words: &mut Words, marker: &str, sections: usize) -> Vec<u8> {
    let mut body = String::new();
    for s in 0..sections {
        body.push_str(&format!(
            "<w:p><w:pPr><w:outlineLvl w:val=\"0\"/></w:pPr><w:r><w:t>Chapter {s} {marker}</w:t></w:r></w:p>"
        ));
        for _ in 0..6 {
            body.push_str(&format!(
                "<w:p><w:r><w:t>{}</w:t></w:r></w:p>",
                xml_escape(&words.paragraph())
            ));
        }
    }
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("[Content_Types].xml", options).unwrap();
        zip.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>").unwrap();
        zip.start_file("word/document.xml", options).unwrap();
        zip.write_all(document.as_bytes()).unwrap();
        zip.finish().unwrap();
    }
    out.into_inner()
}

fn csv(words: &mut Words, marker: &str, rows: usize) -> Vec<u8> {
    let mut out = String::from("Product,Origin,Roast,Price IDR,Note\n");
    for i in 0..rows {
        out.push_str(&format!(
            "{} {i},{},{},{},\"{}\"\n",
            if i == rows / 2 { marker } else { "Blend" },
            VOCABULARY[i % 20],
            ["light", "medium", "dark"][i % 3],
            50_000 + (words.next() % 400) * 1_000,
            words.sentence()
        ));
    }
    out.into_bytes()
}

fn markdown(words: &mut Words, marker: &str, sections: usize) -> Vec<u8> {
    let mut out = format!("# Handbook {marker}\n\n");
    for s in 0..sections {
        out.push_str(&format!("## Topic {s}\n\n"));
        for _ in 0..3 {
            out.push_str(&words.paragraph());
            out.push_str("\n\n");
        }
    }
    out.into_bytes()
}

fn html(words: &mut Words, marker: &str, sections: usize) -> Vec<u8> {
    let mut out = format!(
        "<!doctype html><html><head><title>{marker}</title><script>var x=1;</script></head><body><nav>Home Shop</nav><main><h1>Help centre {marker}</h1>"
    );
    for s in 0..sections {
        out.push_str(&format!(
            "<h2>Question {s}</h2><p>{}</p><ul><li>{}</li><li>{}</li></ul>",
            words.paragraph(),
            words.sentence(),
            words.sentence()
        ));
    }
    out.push_str("</main><footer>© shop</footer></body></html>");
    out.into_bytes()
}

async fn upload(app: &TestApp, token: &str, base: &str, name: &str, bytes: Vec<u8>) -> String {
    let operations = json!({
        "query": "mutation($kb: ID!, $file: Upload!) { uploadKnowledgeFile(knowledgeBaseId: $kb, file: $file) { id } }",
        "variables": { "kb": base, "file": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
    let response: Value = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["data"]["uploadKnowledgeFile"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {response:#}"))
        .to_string()
}

async fn create_base(app: &TestApp, token: &str, name: &str) -> String {
    app.gql_ok(
        Some(token),
        "mutation($n: String!) { createKnowledgeBase(input: {name: $n}) { id } }",
        json!({ "n": name }),
    )
    .await["createKnowledgeBase"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn sources(app: &TestApp, token: &str, base: &str) -> Vec<Value> {
    app.gql_ok(
        Some(token),
        "query($id: ID!) { knowledgeBase(id: $id) { sources { id name status error pageCount chunkCount byteSize } } }",
        json!({ "id": base }),
    )
    .await["knowledgeBase"]["sources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What the search measurement needs from the setup.
struct Setup {
    token: String,
    base: String,
    chunks_total: i64,
    bytes: usize,
    other_bases: usize,
}

/// (a) and the other knowledge bases, built from nothing.
async fn build(app: &TestApp) -> Setup {
    let other_bases: usize = std::env::var("OTHER_BASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let admin = app.sign_up("Bench Kopi").await;
    let base = create_base(app, &admin.token, "20 MB").await;

    // (a) The mixed set: about 20 MB in 10 sources.
    let mut words = Words {
        state: 0x9E37_79B9_7F4A_7C15,
    };
    let mb = 1024 * 1024;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..4 {
        files.push((
            format!("manual-{i}.pdf"),
            text_pdf(&mut words, &format!("pdfmarker{i}"), 120, 3 * mb + mb / 5),
        ));
    }
    files.push(("catalogue.docx".into(), docx(&mut words, "docxmarker", 300)));
    files.push(("prices.csv".into(), csv(&mut words, "csvmarker", 8_000)));
    files.push(("handbook.md".into(), markdown(&mut words, "mdmarker", 900)));
    files.push(("help.html".into(), html(&mut words, "htmlmarker", 900)));
    files.push(("prices.xlsx".into(), fixture("prices.xlsx")));
    files.push(("policy.pdf".into(), fixture("policy.pdf")));
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    let room = 20 * mb;
    assert!(total <= room, "the set is {total} bytes, over 20 MB");

    let mut events = Subscription::start(&app.server.url, Some(&admin.token), "")
        .await
        .unwrap();
    events
        .send(
            "k",
            "subscription($kb: ID) { knowledgeSourceUpdated(knowledgeBaseId: $kb) { source { id status progress { embeddedChunks } } } }",
            json!({ "kb": base }),
        )
        .await
        .unwrap();
    // Status change times per source, read from the subscription while the uploads run
    // (read afterwards, every early event would carry the time the uploads ended).
    let started = Instant::now();
    let expected = files.len();
    let collector = tokio::spawn(async move {
        let mut seen: HashMap<String, HashMap<String, Duration>> = HashMap::new();
        let mut finished = 0;
        while finished < expected {
            let event = events
                .next_for("k", Duration::from_secs(3600))
                .await
                .unwrap();
            let at = started.elapsed();
            let source = &event["payload"]["data"]["knowledgeSourceUpdated"]["source"];
            let id = source["id"].as_str().unwrap().to_string();
            let status = source["status"].as_str().unwrap().to_string();
            let times = seen.entry(id).or_default();
            if !times.contains_key(&status) {
                times.insert(status.clone(), at);
                if status == "READY" || status == "FAILED" {
                    finished += 1;
                }
            }
        }
        seen
    });
    let mut ids = Vec::new();
    for (name, bytes) in &files {
        ids.push(upload(app, &admin.token, &base, name, bytes.clone()).await);
    }
    let uploaded = started.elapsed();
    let seen = collector.await.unwrap();
    let all_ready = started.elapsed();
    let rows = sources(app, &admin.token, &base).await;
    let keyword_searchable = seen
        .values()
        .filter_map(|t| t.get("EMBEDDING"))
        .max()
        .copied()
        .unwrap_or_default();
    println!("## (a) 20 MB mixed upload set\n");
    println!(
        "{} sources, {:.1} MB; uploads took {:.2} s (sequential, client on the same machine)\n",
        files.len(),
        total as f64 / mb as f64,
        uploaded.as_secs_f64()
    );
    println!("| source | bytes | pages | passages | status | extraction began | keyword-searchable at | READY at | extraction time | extraction pages/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut pages_total = 0;
    let mut chunks_total = 0;
    let mut extract_time = 0.0;
    let mut first_extracted = f64::INFINITY;
    for row in &rows {
        let id = row["id"].as_str().unwrap();
        let t = &seen[id];
        let at = |s: &str| t.get(s).map(|d| d.as_secs_f64());
        let (pages, chunks) = (
            row["pageCount"].as_i64().unwrap_or(0),
            row["chunkCount"].as_i64().unwrap_or(0),
        );
        pages_total += pages;
        chunks_total += chunks;
        let extracting = at("EXTRACTING").unwrap_or(f64::NAN);
        let embedding = at("EMBEDDING").unwrap_or(f64::NAN);
        let done = at("READY").unwrap_or(f64::NAN);
        extract_time += embedding - extracting;
        first_extracted = first_extracted.min(embedding);
        println!(
            "| {} | {} | {} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.0} |",
            row["name"].as_str().unwrap(),
            row["byteSize"],
            pages,
            chunks,
            row["status"].as_str().unwrap(),
            extracting,
            embedding,
            done,
            embedding - extracting,
            pages as f64 / (embedding - extracting),
        );
    }
    let embedding_span = all_ready.as_secs_f64() - first_extracted;
    println!("\n| measure | value |\n|---|---|");
    println!(
        "| time until every source is keyword-searchable | {:.1} s |",
        keyword_searchable.as_secs_f64()
    );
    println!(
        "| time until every source is fully embedded (READY) | {:.1} s |",
        all_ready.as_secs_f64()
    );
    println!("| pages / passages | {pages_total} / {chunks_total} |");
    println!(
        "| extraction (fetch bytes, isolated reader, chunking, storing passages), summed over sources, 2 workers | {:.1} s, {:.0} pages/s per worker |",
        extract_time,
        pages_total as f64 / extract_time
    );
    println!(
        "| embedding (one worker, busy from the first extracted source to the last READY) | {:.1} s, {:.0} passages/s |",
        embedding_span,
        chunks_total as f64 / embedding_span
    );
    for row in &rows {
        if row["status"] != "READY" {
            println!("| NOT READY: {} | {} |", row["name"], row["error"]);
        }
    }

    // (d) 100 other knowledge bases in the same index, in 10 other companies.
    let mut others = Vec::new();
    for c in 0..10 {
        let company = app.sign_up(&format!("Other {c}")).await;
        for k in 0..other_bases / 10 {
            let kb = create_base(app, &company.token, &format!("kb {k}")).await;
            let text =
                String::from_utf8(markdown(&mut words, &format!("other{c}x{k}"), 40)).unwrap();
            let added = app
                .gql_ok(
                    Some(&company.token),
                    "mutation($kb: ID!, $x: String!) { addKnowledgeText(knowledgeBaseId: $kb, title: \"t\", text: $x) { id } }",
                    json!({ "kb": kb, "x": text }),
                )
                .await;
            others.push((
                company.token.clone(),
                kb,
                added["addKnowledgeText"]["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(7200);
    for (token, _, id) in &others {
        loop {
            let s = app
                .gql_ok(
                    Some(token),
                    "query($id: ID!) { knowledgeSource(id: $id) { status } }",
                    json!({ "id": id }),
                )
                .await;
            if s["knowledgeSource"]["status"] == "READY" {
                break;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Setup {
        token: admin.token,
        base,
        chunks_total,
        bytes: total,
        other_bases: others.len(),
    }
}

/// The knowledge bases an earlier run left in BENCH_DATABASE: logs in as the owner of the
/// largest and waits until this new server's full-text index holds its passages.
async fn reuse(app: &TestApp) -> Setup {
    let mut conn = app.db.superuser().await.unwrap();
    let (base, email, chunks_total): (String, String, i64) = sqlx::query_as(
        "select c.knowledge_base_id::text, u.email, count(*) from knowledge_chunks c \
         join users u on u.company_id = c.company_id \
         group by 1, 2 order by 3 desc limit 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let bytes: i64 = sqlx::query_scalar(
        "select sum(byte_size)::bigint from knowledge_sources where knowledge_base_id = $1::uuid",
    )
    .bind(&base)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let other_bases: i64 = sqlx::query_scalar(
        "select count(*) - 1 from knowledge_bases where id in (select knowledge_base_id from knowledge_chunks)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let login = app
        .gql_ok(
            None,
            "mutation($i: LogInInput!) { logIn(input: $i) { token } }",
            json!({ "i": { "email": email, "password": obrol_tests::PASSWORD } }),
        )
        .await;
    let token = login["logIn"]["token"].as_str().unwrap().to_string();
    // The index is rebuilt from PostgreSQL when the server starts: a marker word only the
    // keyword ranking can find shows when it is there.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let r = app
            .gql_ok(
                Some(&token),
                "query($kb: ID!) { searchKnowledge(knowledgeBaseId: $kb, query: \"csvmarker\") { text } }",
                json!({ "kb": base }),
            )
            .await;
        let found = r["searchKnowledge"].as_array().is_some_and(|hits| {
            hits.iter()
                .any(|h| h["text"].as_str().unwrap_or("").contains("csvmarker"))
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the full-text index was not rebuilt in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Setup {
        token,
        base,
        chunks_total,
        bytes: bytes as usize,
        other_bases: other_bases as usize,
    }
}

#[tokio::main]
async fn main() {
    let searches: usize = std::env::var("SEARCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    // Each search logs where its time went (keywords, query embedding, vector query).
    let env = [
        ("OBROL_JOB_WORKERS", "2".into()),
        (
            "OBROL_LOG",
            std::env::var("OBROL_LOG").unwrap_or_else(|_| "warn".into()),
        ),
    ];
    let (app, setup) = match std::env::var("BENCH_DATABASE") {
        Ok(name) => {
            let db = TestDatabase::existing(&name).await.unwrap();
            let app = TestApp::start_on(db, obrol_tests::hex_key(), &env).await;
            let setup = reuse(&app).await;
            (app, setup)
        }
        Err(_) => {
            let mut app = TestApp::spawn_with(&env).await;
            app.db.keep();
            let setup = build(&app).await;
            (app, setup)
        }
    };
    let Setup {
        token,
        base,
        chunks_total,
        bytes,
        other_bases,
    } = setup;
    let mut conn = app.db.superuser().await.unwrap();
    // What autovacuum does within a minute or two of a bulk ingestion (every passage was
    // written twice, text then vector); measured after it, not during it.
    sqlx::raw_sql("vacuum analyze knowledge_chunks, knowledge_sources")
        .execute(&mut conn)
        .await
        .unwrap();
    let passages: i64 = sqlx::query_scalar("select count(*) from knowledge_chunks")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let questions: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../knowledge/eval/questions.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let queries: Vec<String> = questions["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["question"].as_str().unwrap().to_string())
        .collect();
    // Warm-up, then measured.
    for q in queries.iter().take(20) {
        app.gql_ok(Some(&token), "query($kb: ID!, $q: String!) { searchKnowledge(knowledgeBaseId: $kb, query: $q) { score } }", json!({ "kb": base, "q": q })).await;
    }
    let mut search_ms = Vec::new();
    for i in 0..searches {
        let q = &queries[i % queries.len()];
        let t = Instant::now();
        let r = app
            .gql_ok(
                Some(&token),
                "query($kb: ID!, $q: String!) { searchKnowledge(knowledgeBaseId: $kb, query: $q) { score text sourceName pageNumber headingPath } }",
                json!({ "kb": base, "q": q }),
            )
            .await;
        search_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(r["searchKnowledge"].is_array());
    }
    let mut trivial_ms = Vec::new();
    for _ in 0..searches {
        let t = Instant::now();
        app.gql_ok(Some(&token), "{ me { id } }", json!({})).await;
        trivial_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The vector query alone, as the server runs it (role obrol_app, tenant set), with a
    // stored passage vector as the query.
    let company: String =
        sqlx::query_scalar("select company_id::text from knowledge_bases where id = $1::uuid")
            .bind(&base)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    // The questions' vectors, computed here with the same model, and how long one takes.
    let embedder = LocalEmbedder::load(&obrol_tests::model_dir()).unwrap();
    let mut embed_ms = Vec::new();
    let mut vectors = Vec::new();
    for i in 0..searches.max(queries.len()) {
        let q = &queries[i % queries.len()];
        let t = Instant::now();
        let v = embedder.embed_blocking(std::slice::from_ref(q)).unwrap();
        embed_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if i < queries.len() {
            vectors.push(format!(
                "[{}]",
                v[0].iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
    }
    let mut sql_ms = Vec::new();
    for i in 0..searches {
        let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
        sqlx::query("set local role obrol_app")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("select set_config('app.company_id', $1, true)")
            .bind(&company)
            .execute(&mut *tx)
            .await
            .unwrap();
        for (name, value) in NEAREST_SETTINGS {
            sqlx::query("select set_config($1, $2, true)")
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let t = Instant::now();
        let _ = sqlx::query(NEAREST_SQL)
            .bind(uuid::Uuid::parse_str(&base).unwrap())
            .bind(&vectors[i % vectors.len()])
            .bind("local:all-MiniLM-L6-v2")
            .bind(50i64)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        sql_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        tx.commit().await.unwrap();
    }
    let (s50, s99, smean) = summary(search_ms);
    let (t50, t99, _) = summary(trivial_ms);
    let (q50, q99, _) = summary(sql_ms);
    let (e50, e99, _) = summary(embed_ms);
    println!("\n## (d) searchKnowledge latency\n");
    println!("The knowledge base above ({chunks_total} passages, {:.1} MB) plus {} other knowledge bases in 10 other companies; {passages} passages in the index and the table. {searches} searches, one at a time, with the {} evaluation questions in turn (limit 8).\n", bytes as f64 / (1024.0 * 1024.0), other_bases, queries.len());
    println!("| measure | p50 | p99 |\n|---|---|---|");
    println!("| `searchKnowledge` over HTTP (embed query + BM25 + pgvector + fusion + passages) | {s50:.2} ms | {s99:.2} ms |");
    println!("| baseline: `{{ me {{ id }} }}` over HTTP | {t50:.2} ms | {t99:.2} ms |");
    println!("| part: the query's embedding alone, in this process (same model) | {e50:.2} ms | {e99:.2} ms |");
    println!("| part: the vector query alone, by hand with those vectors (same SQL, role and settings; the statement only) | {q50:.2} ms | {q99:.2} ms |");
    println!("| ratio search / `me` (p50) | {:.1} | |", s50 / t50);
    println!(
        "| ratio search / (embedding + vector query) (p50) | {:.2} | |",
        s50 / (e50 + q50)
    );
    println!("\nmean search latency {smean:.2} ms");
    println!(
        "\nThe data is in database {0}; BENCH_DATABASE={0} scripts/bench-knowledge server measures the searches again on it.",
        app.db.name
    );
}
