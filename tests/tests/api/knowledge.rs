//! Knowledge bases: ingestion of real files, texts and web pages, limits, errors, tenancy,
//! hybrid search, progress events, replacement, deletion and crash recovery.

use std::time::Duration;

use obrol_tests::{fixture, Session, Subscription, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOURCE_FIELDS: &str =
    "id name kind format status error pageCount byteSize chunkCount progress { percent pages chunks embeddedChunks }";

async fn create_base(app: &TestApp, admin: &Session, name: &str) -> String {
    let data = app
        .gql_ok(
            Some(&admin.token),
            "mutation($input: CreateKnowledgeBaseInput!) { createKnowledgeBase(input: $input) { id name } }",
            json!({ "input": { "name": name } }),
        )
        .await;
    data["createKnowledgeBase"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn upload_to(
    app: &TestApp,
    token: &str,
    mutation: &str,
    vars: Value,
    name: &str,
    bytes: Vec<u8>,
) -> Value {
    app.gql_upload(token, mutation, vars, name, bytes).await
}

async fn upload(app: &TestApp, admin: &Session, base: &str, name: &str, bytes: Vec<u8>) -> Value {
    upload_to(
        app,
        &admin.token,
        &format!("mutation($kb: ID!, $file: Upload!) {{ uploadKnowledgeFile(knowledgeBaseId: $kb, file: $file) {{ {SOURCE_FIELDS} }} }}"),
        json!({ "kb": base, "file": null }),
        name,
        bytes,
    )
    .await
}

async fn upload_ok(
    app: &TestApp,
    admin: &Session,
    base: &str,
    name: &str,
    bytes: Vec<u8>,
) -> String {
    let response = upload(app, admin, base, name, bytes).await;
    assert!(response.get("errors").is_none(), "{name}: {response:#}");
    response["data"]["uploadKnowledgeFile"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

fn error_message(response: &Value) -> &str {
    response["errors"][0]["message"].as_str().unwrap_or("")
}

async fn source(app: &TestApp, admin: &Session, id: &str) -> Value {
    app.gql_ok(
        Some(&admin.token),
        &format!("query($id: ID!) {{ knowledgeSource(id: $id) {{ {SOURCE_FIELDS} }} }}"),
        json!({ "id": id }),
    )
    .await["knowledgeSource"]
        .clone()
}

/// Polls until the source is READY or FAILED (with a deadline, never a fixed sleep).
async fn settled(app: &TestApp, admin: &Session, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let s = source(app, admin, id).await;
        if matches!(s["status"].as_str(), Some("READY") | Some("FAILED")) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "source never settled: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(app: &TestApp, admin: &Session, id: &str) -> Value {
    let s = settled(app, admin, id).await;
    assert_eq!(s["status"], "READY", "{s:#}");
    s
}

async fn search(app: &TestApp, token: &str, base: &str, query: &str) -> Value {
    app.gql(
        Some(token),
        "query($kb: ID!, $q: String!) { searchKnowledge(knowledgeBaseId: $kb, query: $q, limit: 5) { score text sourceId sourceName pageNumber headingPath } }",
        json!({ "kb": base, "q": query }),
    )
    .await
}

async fn top_hit(app: &TestApp, admin: &Session, base: &str, query: &str) -> Value {
    let response = search(app, &admin.token, base, query).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"]["searchKnowledge"][0].clone()
}

async fn add_text(app: &TestApp, admin: &Session, base: &str, title: &str, text: &str) -> Value {
    app.gql(
        Some(&admin.token),
        &format!("mutation($kb: ID!, $t: String!, $x: String!) {{ addKnowledgeText(knowledgeBaseId: $kb, title: $t, text: $x) {{ {SOURCE_FIELDS} }} }}"),
        json!({ "kb": base, "t": title, "x": text }),
    )
    .await
}

const SHIPPING: &str = "# Shipping\n\n## Delivery times\n\nOrders to Surabaya arrive in two to three \
working days. Orders to Bali take four days.\n\n## Returns\n\nUnopened beans can be returned within \
fourteen days for a full refund.\n";

#[tokio::test]
async fn pasted_text_becomes_searchable_and_reports_progress() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Support answers").await;
    let mut events = Subscription::start(&app.server.url, Some(&admin.token), "")
        .await
        .unwrap();
    events
        .send(
            "k",
            "subscription($kb: ID) { knowledgeSourceUpdated(knowledgeBaseId: $kb) { deleted source { id status progress { percent chunks embeddedChunks } } } }",
            json!({ "kb": base }),
        )
        .await
        .unwrap();
    let added = add_text(&app, &admin, &base, "Shipping FAQ", SHIPPING).await;
    let added = &added["data"]["addKnowledgeText"];
    assert_eq!(added["kind"], "TEXT");
    assert_eq!(added["status"], "QUEUED");
    let id = added["id"].as_str().unwrap();
    let done = ready(&app, &admin, id).await;
    assert_eq!(done["progress"]["percent"], 100);
    assert!(done["chunkCount"].as_i64().unwrap() >= 2, "{done:#}");
    assert_eq!(done["format"], "markdown");

    // The subscription saw the pipeline go by, in order.
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("READY") {
        let event = events.next_for("k", Duration::from_secs(60)).await.unwrap();
        let source = &event["payload"]["data"]["knowledgeSourceUpdated"]["source"];
        assert_eq!(source["id"], id);
        let status = source["status"].as_str().unwrap().to_string();
        if statuses.last() != Some(&status) {
            statuses.push(status);
        }
    }
    assert_eq!(statuses, ["QUEUED", "EXTRACTING", "EMBEDDING", "READY"]);

    let hit = top_hit(
        &app,
        &admin,
        &base,
        "how long does delivery to surabaya take",
    )
    .await;
    assert!(
        hit["text"].as_str().unwrap().contains("Surabaya"),
        "{hit:#}"
    );
    assert_eq!(hit["headingPath"], json!(["Shipping", "Delivery times"]));
    assert_eq!(hit["sourceName"], "Shipping FAQ");
    // A paraphrase with none of the passage's words still finds it (the vector side).
    let hit = top_hit(
        &app,
        &admin,
        &base,
        "can I send back coffee I did not open?",
    )
    .await;
    assert!(
        hit["text"].as_str().unwrap().contains("returned"),
        "{hit:#}"
    );

    let usage = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { knowledgeBase(id: $id) { usage { sourceCount byteSize maxSources maxBytes } sources { id } } }",
            json!({ "id": base }),
        )
        .await;
    assert_eq!(
        usage["knowledgeBase"]["usage"],
        json!({ "sourceCount": 1, "byteSize": SHIPPING.len(), "maxSources": 10, "maxBytes": 20971520 })
    );
}

#[tokio::test]
async fn files_of_every_format_are_ingested_with_pages_and_headings() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Everything").await;
    let mut ids = Vec::new();
    for name in [
        "prices.xlsx",
        "prices.ods",
        "prices-semicolon.csv",
        "handbook.docx",
        "policy.pdf",
        "page.html",
        "notes.txt",
    ] {
        ids.push((
            name,
            upload_ok(&app, &admin, &base, name, fixture(name)).await,
        ));
    }
    for (name, id) in &ids {
        let s = ready(&app, &admin, id).await;
        assert_eq!(s["name"], *name);
        assert!(s["chunkCount"].as_i64().unwrap() > 0, "{s:#}");
    }
    let hit = top_hit(&app, &admin, &base, "Kestrelbean barista hotline").await;
    assert!(
        hit["text"]
            .as_str()
            .unwrap()
            .contains("Plan: Business; Price: 299 USD/month"),
        "{hit:#}"
    );
    assert_eq!(hit["headingPath"], json!(["Plans"]));
    assert_eq!(hit["pageNumber"], 1);

    let hit = top_hit(&app, &admin, &base, "cardamoth warranty claim").await;
    assert_eq!(hit["sourceName"], "policy.pdf");
    assert_eq!(hit["pageNumber"], 2);

    let hit = top_hit(&app, &admin, &base, "hornbill espresso ritual").await;
    assert_eq!(hit["sourceName"], "handbook.docx");
    assert!(hit["headingPath"].as_array().unwrap().len() >= 2, "{hit:#}");

    let hit = top_hit(&app, &admin, &base, "Pangolin pour-over kettle price").await;
    assert!(
        hit["text"].as_str().unwrap().contains("Rp 675.000"),
        "{hit:#}"
    );

    let hit = top_hit(&app, &admin, &base, "Lutungroast subscription").await;
    assert_eq!(hit["sourceName"], "page.html");
    let nav = search(
        &app,
        &admin.token,
        &base,
        "navmarker footermarker cookiemarker",
    )
    .await;
    for hit in nav["data"]["searchKnowledge"].as_array().unwrap() {
        assert!(
            !hit["text"].as_str().unwrap().contains("navmarker"),
            "{hit:#}"
        );
    }
    let hit = top_hit(&app, &admin, &base, "ongkos kirim Rambutanekspres").await;
    assert_eq!(hit["sourceName"], "notes.txt");
}

/// A PDF with `pages` blank pages and, optionally, an unused stream of `padding` bytes.
fn blank_pdf(pages: usize, padding: usize) -> Vec<u8> {
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", i + 3)).collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        )
        .into_bytes(),
    ];
    for _ in 0..pages {
        objects.push(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>".to_vec());
    }
    if padding > 0 {
        objects.push(
            format!(
                "<< /Length {padding} >>\nstream\n{}\nendstream",
                "x".repeat(padding)
            )
            .into_bytes(),
        );
    }
    obrol_tests::pdf_from_objects(&objects)
}

fn stored_files(app: &TestApp) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&app.data_dir().join("files"))
}

#[tokio::test]
async fn bad_files_get_clear_errors_and_nothing_is_half_stored() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Bad input").await;
    let mut corrupt = fixture("policy.pdf");
    corrupt.truncate(corrupt.len() / 4);
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("empty.pdf", Vec::new(), "VALIDATION", "The file is empty."),
        (
            "blank.txt",
            b"   \n\n".to_vec(),
            "VALIDATION",
            "The file is empty.",
        ),
        (
            "policy-encrypted.pdf",
            fixture("policy-encrypted.pdf"),
            "VALIDATION",
            "The file is password-protected. Remove the password and upload it again.",
        ),
        ("broken.pdf", corrupt, "VALIDATION", "The file is damaged"),
        (
            "program.pdf",
            vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "VALIDATION",
            "This file type is not supported",
        ),
        (
            "long.pdf",
            blank_pdf(1_001, 0),
            "LIMIT_EXCEEDED",
            "The file has 1001 pages; a file may have at most 1000 pages.",
        ),
    ];
    for (name, bytes, code, message) in cases {
        let response = upload(&app, &admin, &base, name, bytes).await;
        assert_eq!(error_code(&response), code, "{name}: {response:#}");
        assert!(
            error_message(&response).starts_with(message),
            "{name}: {}",
            error_message(&response)
        );
    }
    // A decompression bomb dressed as a workbook.
    let bomb = {
        use std::io::Write;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("xl/workbook.xml", options).unwrap();
        zip.write_all(b"<workbook/>").unwrap();
        zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
        let block = vec![b' '; 1 << 20];
        for _ in 0..1024 {
            zip.write_all(&block).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    };
    let response = upload(&app, &admin, &base, "prices.xlsx", bomb).await;
    assert_eq!(error_code(&response), "VALIDATION", "{response:#}");
    assert!(
        error_message(&response).contains("decompression bomb"),
        "{response:#}"
    );

    // Nothing above was stored.
    let sources = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { knowledgeBase(id: $id) { sources { id } usage { sourceCount byteSize } } }",
            json!({ "id": base }),
        )
        .await;
    assert_eq!(
        sources["knowledgeBase"]["usage"],
        json!({ "sourceCount": 0, "byteSize": 0 })
    );
    assert_eq!(stored_files(&app), 0);

    // A scanned PDF passes the upload checks but has no text: FAILED, with the reason.
    let id = upload_ok(&app, &admin, &base, "scan.pdf", fixture("scanned.pdf")).await;
    let failed = settled(&app, &admin, &id).await;
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("No text was found"),
        "{failed:#}"
    );
    assert_eq!(failed["chunkCount"], 0);
    let hits = search(&app, &admin.token, &base, "Durianfold Delivery Receipt").await;
    assert_eq!(hits["data"]["searchKnowledge"], json!([]));
}

#[tokio::test]
async fn limits_are_checked_before_anything_is_stored() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Limits").await;
    // 12 MB in one one-page PDF, then 9 MB more: over the 20 MB total.
    let big = blank_pdf(1, 12 * 1024 * 1024);
    upload_ok(&app, &admin, &base, "big.pdf", big).await;
    let response = upload(
        &app,
        &admin,
        &base,
        "more.pdf",
        blank_pdf(1, 9 * 1024 * 1024),
    )
    .await;
    assert_eq!(error_code(&response), "LIMIT_EXCEEDED", "{response:#}");
    assert!(
        error_message(&response).contains("at most 20.0 MB in total; this one uses 12.0 MB"),
        "{}",
        error_message(&response)
    );
    // Eight texts make ten sources with the PDF... after one more.
    for i in 0..9 {
        let added = add_text(
            &app,
            &admin,
            &base,
            &format!("Note {i}"),
            "Opening hours: nine to five.",
        )
        .await;
        assert!(added.get("errors").is_none(), "{added:#}");
    }
    let eleventh = add_text(&app, &admin, &base, "Eleventh", "One too many.").await;
    assert_eq!(error_code(&eleventh), "LIMIT_EXCEEDED");
    assert!(error_message(&eleventh).contains("at most 10 sources and this one has 10"));
    let count = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { knowledgeBase(id: $id) { usage { sourceCount } } }",
            json!({ "id": base }),
        )
        .await;
    assert_eq!(count["knowledgeBase"]["usage"]["sourceCount"], 10);

    // One file over 20 MB is cut off by the HTTP layer (413), declared or not.
    let other = create_base(&app, &admin, "Other").await;
    // The server answers as soon as it reads the length, so the client may still be
    // writing when the connection closes; when the answer arrives, it says why.
    let operations = json!({
        "query": "mutation($kb: ID!, $file: Upload!) { uploadKnowledgeFile(knowledgeBaseId: $kb, file: $file) { id } }",
        "variables": { "kb": other, "file": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(blank_pdf(1, 21 * 1024 * 1024)).file_name("huge.pdf"),
        );
    let sent = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&admin.token)
        .multipart(form)
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status(), 413);
        let text = response.text().await.unwrap_or_default();
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert_eq!(error_code(&body), "LIMIT_EXCEEDED", "{body:#}");
        assert_eq!(error_message(&body), "A file may be at most 20 MB.");
    }

    // A request that announces 2 GB is answered before a byte of its body is read.
    let address = app.server.url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 2147483648\r\n\r\n",
        admin.token
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"LIMIT_EXCEEDED\""), "{answer}");
    assert!(answer.contains("A file may be at most 20 MB."), "{answer}");

    // A 2 GB streamed upload without a length ends early, and the server stays well.
    let started = std::time::Instant::now();
    let chunk = bytes_of(1024 * 1024);
    let body =
        futures_util::stream::iter((0..2048).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let operations = json!({
        "query": "mutation($kb: ID!, $file: Upload!) { uploadKnowledgeFile(knowledgeBaseId: $kb, file: $file) { id } }",
        "variables": { "kb": other, "file": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body))
                .file_name("huge.txt"),
        );
    let sent = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&admin.token)
        .multipart(form)
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status(), 413);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let after = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { knowledgeBase(id: $id) { usage { sourceCount byteSize } } }",
            json!({ "id": other }),
        )
        .await;
    assert_eq!(
        after["knowledgeBase"]["usage"],
        json!({ "sourceCount": 0, "byteSize": 0 })
    );
}

fn bytes_of(n: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'a'; n])
}

#[tokio::test]
async fn other_companies_cannot_see_or_touch_a_knowledge_base() {
    let app = TestApp::spawn().await;
    let a = app.sign_up("Kopi A").await;
    let b = app.sign_up("Kopi B").await;
    let base_a = create_base(&app, &a, "A").await;
    let base_b = create_base(&app, &b, "B").await;
    let id_a = add_text(
        &app,
        &a,
        &base_a,
        "Secret",
        "Our wholesale discount code is ZEBRA-42.",
    )
    .await["data"]["addKnowledgeText"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id_b = add_text(
        &app,
        &b,
        &base_b,
        "Other",
        "Our wholesale discount code is LION-7.",
    )
    .await["data"]["addKnowledgeText"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ready(&app, &a, &id_a).await;
    ready(&app, &b, &id_b).await;
    let hits = search(&app, &a.token, &base_a, "wholesale discount code").await;
    let texts: Vec<&str> = hits["data"]["searchKnowledge"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Our wholesale discount code is ZEBRA-42."]);
    // Whether or not the query finds anything, and when it is empty: not found.
    for query in ["discount", "qwzxv", ""] {
        assert_eq!(
            error_code(&search(&app, &b.token, &base_a, query).await),
            "NOT_FOUND",
            "{query:?}"
        );
    }
    // In one's own knowledge base, an empty query is no error: it finds nothing.
    let nothing = search(&app, &a.token, &base_a, "").await;
    assert_eq!(nothing["data"]["searchKnowledge"], json!([]), "{nothing}");
    let denied = add_text(&app, &b, &base_a, "Intruder", "hello").await;
    assert_eq!(error_code(&denied), "NOT_FOUND");
    let denied = upload(&app, &b, &base_a, "notes.txt", fixture("notes.txt")).await;
    assert_eq!(error_code(&denied), "NOT_FOUND");
    for mutation in ["deleteKnowledgeSource", "refreshKnowledgeSource"] {
        let response = app
            .gql(
                Some(&b.token),
                &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ id }} }}"),
                json!({ "id": id_a }),
            )
            .await;
        assert_eq!(error_code(&response), "NOT_FOUND", "{mutation}");
    }
    let response = app
        .gql(
            Some(&b.token),
            "query($id: ID!) { knowledgeSource(id: $id) { id } }",
            json!({ "id": id_a }),
        )
        .await;
    assert_eq!(error_code(&response), "NOT_FOUND");
    // Staff may search but not change the knowledge.
    let staff = app.add_user(&a, "STAFF").await;
    assert!(search(&app, &staff.token, &base_a, "discount")
        .await
        .get("errors")
        .is_none());
    assert_eq!(
        error_code(&add_text(&app, &staff, &base_a, "x", "y").await),
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn replacing_and_deleting_sources() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Docs").await;
    let id = upload_ok(&app, &admin, &base, "notes.md", fixture("notes.md")).await;
    ready(&app, &admin, &id).await;
    assert_eq!(stored_files(&app), 1);
    let old = top_hit(&app, &admin, &base, "salakcrema brew ratio").await;
    assert_eq!(old["sourceName"], "notes.md");

    let replaced = upload_to(
        &app,
        &admin.token,
        &format!("mutation($id: ID!, $file: Upload!) {{ replaceKnowledgeFile(id: $id, file: $file) {{ {SOURCE_FIELDS} }} }}"),
        json!({ "id": id, "file": null }),
        "notes-v2.txt",
        fixture("notes.txt"),
    )
    .await;
    assert!(replaced.get("errors").is_none(), "{replaced:#}");
    assert_eq!(replaced["data"]["replaceKnowledgeFile"]["id"], id);
    // Until the new version is ready, the old passages answer.
    let meanwhile = search(&app, &admin.token, &base, "salakcrema brew ratio").await;
    let first = &meanwhile["data"]["searchKnowledge"][0];
    assert!(
        first["text"].as_str().unwrap_or("").contains("salakcrema")
            || source(&app, &admin, &id).await["status"] == "READY",
        "{meanwhile:#}"
    );
    let done = ready(&app, &admin, &id).await;
    assert_eq!(done["name"], "notes-v2.txt");
    assert_eq!(done["format"], "text");
    let hit = top_hit(&app, &admin, &base, "Rambutanekspres").await;
    assert_eq!(hit["sourceName"], "notes-v2.txt");
    let gone = search(&app, &admin.token, &base, "salakcrema").await;
    assert!(gone["data"]["searchKnowledge"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| !h["text"].as_str().unwrap().contains("salakcrema")));
    // The old file is gone from the store, the new one kept.
    assert_eq!(stored_files(&app), 1);

    let deleted = app
        .gql_ok(
            Some(&admin.token),
            "mutation($id: ID!) { deleteKnowledgeSource(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted["deleteKnowledgeSource"]["id"], id);
    assert_eq!(
        search(&app, &admin.token, &base, "Rambutanekspres").await["data"]["searchKnowledge"],
        json!([])
    );
    assert_eq!(stored_files(&app), 0);
    let chunks: i64 = sqlx::query_scalar("select count(*) from knowledge_chunks")
        .fetch_one(&mut app.db.superuser().await.unwrap())
        .await
        .unwrap();
    assert_eq!(chunks, 0);
}

/// A tiny web server for URL sources: `/page` (HTML), `/huge` (6 MB), `/slow` (one byte a
/// second, forever), `/loop` (redirects to itself) and the Google Docs export path.
async fn web_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let reply = |status: &str, kind: &str, body: &str| {
                    format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                };
                if path == "/page" {
                    let html = "<html><head><title>Opening hours</title><script>var scriptmarker=1</script></head><body><nav>navmarker</nav><main><h1>Opening hours</h1><p>The Braga street shop opens at seven and closes at ten every day.</p></main><footer>footermarker</footer></body></html>";
                    let _ = socket
                        .write_all(reply("200 OK", "text/html; charset=utf-8", html).as_bytes())
                        .await;
                } else if path.starts_with("/document/d/abc123/export") {
                    let _ = socket
                        .write_all(
                            reply(
                                "200 OK",
                                "text/plain",
                                "Wholesale orders need at least twenty kilograms of beans.",
                            )
                            .as_bytes(),
                        )
                        .await;
                } else if path == "/huge" {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><body><p>";
                    let _ = socket.write_all(head.as_bytes()).await;
                    let block = vec![b'a'; 64 * 1024];
                    for _ in 0..96 {
                        if socket.write_all(&block).await.is_err() {
                            break;
                        }
                    }
                } else if path == "/slow" {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><body><p>";
                    let _ = socket.write_all(head.as_bytes()).await;
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if socket.write_all(b"a").await.is_err() {
                            break;
                        }
                    }
                } else if path == "/loop" {
                    let _ = socket.write_all(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                } else {
                    let _ = socket
                        .write_all(reply("404 Not Found", "text/plain", "no").as_bytes())
                        .await;
                }
            });
        }
    });
    format!("http://{address}")
}

async fn add_url(app: &TestApp, admin: &Session, base: &str, url: &str) -> Value {
    app.gql(
        Some(&admin.token),
        &format!("mutation($kb: ID!, $u: String!) {{ addKnowledgeUrl(knowledgeBaseId: $kb, url: $u) {{ {SOURCE_FIELDS} }} }}"),
        json!({ "kb": base, "u": url }),
    )
    .await
}

#[tokio::test]
async fn web_pages_and_google_docs() {
    let web = web_server().await;
    let app = TestApp::spawn_with(&[
        ("OBROL_KNOWLEDGE_ALLOW_PRIVATE_URLS", "true".into()),
        ("OBROL_GOOGLE_DOCS_BASE", web.clone()),
        ("OBROL_FETCH_TIMEOUT_SECONDS", "3".into()),
    ])
    .await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Web").await;
    let page = add_url(&app, &admin, &base, &format!("{web}/page")).await;
    let page_id = page["data"]["addKnowledgeUrl"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(page["data"]["addKnowledgeUrl"]["kind"], "URL");
    let doc = add_url(
        &app,
        &admin,
        &base,
        "https://docs.google.com/document/d/abc123/edit?usp=sharing",
    )
    .await;
    assert_eq!(
        doc["data"]["addKnowledgeUrl"]["kind"], "GOOGLE_DOC",
        "{doc:#}"
    );
    let doc_id = doc["data"]["addKnowledgeUrl"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ready_page = ready(&app, &admin, &page_id).await;
    assert_eq!(ready_page["format"], "html");
    assert!(ready_page["byteSize"].as_i64().unwrap() > 100);
    ready(&app, &admin, &doc_id).await;
    let hit = top_hit(&app, &admin, &base, "when does the shop open").await;
    assert!(
        hit["text"].as_str().unwrap().contains("opens at seven"),
        "{hit:#}"
    );
    assert!(!hit["text"].as_str().unwrap().contains("navmarker"));
    let hit = top_hit(&app, &admin, &base, "minimum wholesale order").await;
    assert!(
        hit["text"].as_str().unwrap().contains("twenty kilograms"),
        "{hit:#}"
    );

    for (path, expected) in [
        ("/huge", "The page is larger than 5 MB."),
        ("/slow", "The page did not answer within 3 seconds."),
        ("/loop", "The page redirected more than 5 times."),
        ("/missing", "The server answered with HTTP status 404."),
    ] {
        let added = add_url(&app, &admin, &base, &format!("{web}{path}")).await;
        let id = added["data"]["addKnowledgeUrl"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let failed = settled(&app, &admin, &id).await;
        assert_eq!(failed["status"], "FAILED", "{path}");
        assert_eq!(failed["error"], expected, "{path}");
    }
    let bad = add_url(&app, &admin, &base, "ftp://example.com/file").await;
    assert_eq!(error_code(&bad), "VALIDATION");
}

#[tokio::test]
async fn private_addresses_are_refused_by_default() {
    let web = web_server().await;
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Web").await;
    for url in [
        format!("{web}/page"),
        "http://localhost:9/".into(),
        "http://169.254.169.254/latest/meta-data".into(),
    ] {
        let response = add_url(&app, &admin, &base, &url).await;
        assert_eq!(error_code(&response), "VALIDATION", "{url}: {response:#}");
        assert!(
            error_message(&response).contains("private or local network"),
            "{response:#}"
        );
    }
}

#[tokio::test]
async fn a_restart_in_the_middle_of_ingestion_finishes_the_work() {
    let mut app = TestApp::spawn_with(&[("OBROL_JOB_LEASE_SECONDS", "3".into())]).await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Big").await;
    // About 900 passages: embedding them takes long enough to be interrupted.
    let mut text = String::new();
    for i in 0..900 {
        text.push_str(&format!(
            "## Topic {i}\n\nItem {i} is the kopi tubruk variant number {i}, roasted in batch {i} and packed on day {}.\n\n",
            i % 28 + 1
        ));
    }
    let added = add_text(&app, &admin, &base, "Catalogue", &text).await;
    assert!(added.get("errors").is_none(), "{added:#}");
    let id = added["data"]["addKnowledgeText"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Wait until it is embedding, then kill the server without warning.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let s = source(&app, &admin, &id).await;
        if s["status"] == "EMBEDDING" {
            break;
        }
        assert!(
            s["status"] != "READY",
            "finished before it could be interrupted"
        );
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keyword search works while vectors are still being computed, as soon as the index
    // has the text.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hit = top_hit(&app, &admin, &base, "batch 417").await;
        if hit["text"]
            .as_str()
            .is_some_and(|t| t.contains("batch 417"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never keyword-searchable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(source(&app, &admin, &id).await["status"], "EMBEDDING");
    app.kill_and_restart().await;
    // The lease of the dead worker runs out (3 s here) and the job resumes where it stopped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let s = source(&app, &admin, &id).await;
        if s["status"] == "READY" {
            assert_eq!(s["progress"]["embeddedChunks"], s["chunkCount"]);
            break;
        }
        assert_ne!(s["status"], "FAILED", "{s:#}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let hit = top_hit(&app, &admin, &base, "kopi tubruk variant 612").await;
    assert!(hit["text"].as_str().unwrap().contains("612"), "{hit:#}");
}

#[tokio::test]
async fn reindex_rebuilds_the_full_text_index_from_postgresql() {
    let mut app = TestApp::spawn().await;
    let admin = app.sign_up("Kopi").await;
    let base = create_base(&app, &admin, "Docs").await;
    let added = add_text(&app, &admin, &base, "Shipping FAQ", SHIPPING).await;
    let id = added["data"]["addKnowledgeText"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let chunks = ready(&app, &admin, &id).await["chunkCount"]
        .as_i64()
        .unwrap();
    app.kill().await;
    // The index is derived data: lose it entirely, then rebuild it.
    std::fs::remove_dir_all(app.data_dir().join("index")).unwrap();
    let mut command = tokio::process::Command::new(obrol_tests::obrol_bin());
    command.arg("reindex").env("OBROL_LOG", "warn");
    command.env("OBROL_EMBEDDING_MODEL_DIR", obrol_tests::model_dir());
    for (key, value) in app.env() {
        command.env(key, value);
    }
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "full-text index rebuilt: 1 sources, {chunks} passages"
        )),
        "{stdout}"
    );
    app.kill_and_restart().await;
    let hit = top_hit(&app, &admin, &base, "Surabaya").await;
    assert!(
        hit["text"].as_str().unwrap().contains("Surabaya"),
        "{hit:#}"
    );
}
