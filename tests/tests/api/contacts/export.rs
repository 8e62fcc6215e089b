//! Exporting contacts as CSV through download links, and the import sample file.

use super::*;

const EXPORT: &str = "mutation($filter: ContactFilter) {
    exportContacts(filter: $filter) { url expiresAt } }";
const PREVIEW: &str = "mutation($file: Upload!) { previewContactImport(file: $file) {
    rowCount columns { index header suggestedProperty } } }";
const IMPORT: &str = "mutation($file: Upload!, $mapping: [ImportColumnMapping!]!) {
    importContacts(file: $file, mapping: $mapping) { id } }";

async fn export_link(app: &TestApp, who: &Session, filter: Value) -> String {
    let data = ok(app, who, EXPORT, json!({ "filter": filter })).await;
    data["exportContacts"]["url"].as_str().unwrap().to_string()
}

/// Fetches a download link without credentials: (status, content type, body).
async fn fetch(app: &TestApp, path: &str) -> (u16, String, String) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

/// The CSV as maps from header to value.
fn records(body: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

async fn wait_done(app: &TestApp, who: &Session, id: &str) -> Value {
    for _ in 0..600 {
        let job = ok(
            app,
            who,
            "query($id: ID!) { contactImport(id: $id) { status created updated skipped errors { row reason } } }",
            json!({ "id": id }),
        )
        .await["contactImport"]
            .clone();
        if job["status"] == "DONE" || job["status"] == "FAILED" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the import did not finish");
}

#[tokio::test]
async fn an_export_is_the_filtered_contacts_as_csv_and_imports_back() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    ok(
        &app,
        &admin,
        UPDATE,
        json!({ "id": ids[1], "input": { "lastName": "=HYPERLINK(\"http://evil.example\")" } }),
    )
    .await;

    let url = export_link(
        &app,
        &admin,
        cond("industry", "EQ", Some("Technology"), None),
    )
    .await;
    assert!(url.starts_with("/downloads/"), "{url}");
    let (status, kind, body) = fetch(&app, &url).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/csv"), "{kind}");
    let rows = records(&body);
    assert_eq!(rows.len(), 2, "{body}");
    let ana = rows.iter().find(|r| r["first_name"] == "Ana").unwrap();
    assert_eq!(ana["id"], ids[0]);
    assert_eq!(ana["phone"], "+6281200000001");
    assert_eq!(ana["country"], "ID");
    assert_eq!(ana["industry"], "Technology");
    assert_eq!(ana["employees"], "120");
    assert_eq!(ana["renewal"], "2026-03-01");
    assert_eq!(ana["interests"], "ai; crm");
    assert_eq!(ana["vip"], "true");
    assert_eq!(ana["owner"], admin.email);
    let budi = rows.iter().find(|r| r["first_name"] == "Budi").unwrap();
    assert_eq!(
        budi["last_name"], "'=HYPERLINK(\"http://evil.example\")",
        "a formula is defused"
    );
    assert_eq!(budi["email"], "budi@example.com");

    // The whole company, labels included, and the export is audited.
    let (_, _, everything) = fetch(&app, &export_link(&app, &admin, json!(null)).await).await;
    let all = records(&everything);
    assert_eq!(all.len(), 5);
    assert_eq!(
        all.iter().find(|r| r["first_name"] == "Eko").unwrap()["label"],
        "hotlead"
    );
    let audit = ok(
        &app,
        &admin,
        "{ auditEvents(first: 5) { nodes { action } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        audit["auditEvents"]["nodes"][0]["action"],
        "CONTACTS_EXPORTED"
    );

    // The file imports into another company as the same contacts.
    let other = app.sign_up("Twin").await;
    for (key, kind, options) in [
        (
            "industry",
            "SINGLE_SELECT",
            vec!["Technology", "Retail", "Finance"],
        ),
        ("employees", "NUMBER", vec![]),
        ("renewal", "DATE", vec![]),
        ("interests", "MULTI_SELECT", vec!["ai", "crm", "ads"]),
        ("vip", "BOOLEAN", vec![]),
    ] {
        define(&app, &other, key, kind, &options).await;
    }
    let preview = app
        .gql_upload(
            &other.token,
            PREVIEW,
            json!({ "file": null }),
            "contacts.csv",
            everything.clone().into_bytes(),
        )
        .await;
    let mapping: Vec<Value> = preview["data"]["previewContactImport"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["suggestedProperty"].is_string() && c["suggestedProperty"] != "owner")
        .map(|c| json!({ "column": c["index"], "property": c["suggestedProperty"] }))
        .collect();
    assert_eq!(mapping.len(), 14, "{preview:#}");
    let import = app
        .gql_upload(
            &other.token,
            IMPORT,
            json!({ "file": null, "mapping": mapping }),
            "contacts.csv",
            everything.into_bytes(),
        )
        .await;
    let job = wait_done(
        &app,
        &other,
        import["data"]["importContacts"]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (&job["created"], &job["skipped"]),
        (&json!(5), &json!(0)),
        "{job:#}"
    );
    let copy = ok(
        &app,
        &other,
        "query($f: ContactFilter) { contacts(filter: $f) { nodes { customProperties labels { name } } } }",
        json!({ "f": cond("phone", "EQ", Some("+6281200000001"), None) }),
    )
    .await;
    assert_eq!(
        copy["contacts"]["nodes"][0]["customProperties"],
        json!({ "industry": "Technology", "employees": 120.0, "renewal": "2026-03-01",
                "interests": ["ai", "crm"], "vip": true })
    );
}

#[tokio::test]
async fn export_links_are_for_admins_expire_with_their_makers_rights_and_cannot_be_guessed() {
    let app = TestApp::spawn().await;
    let (admin, _) = crm(&app).await;
    let staff = app.add_user(&admin, "STAFF").await;
    assert_eq!(code(&app, &staff, EXPORT, json!({})).await, "FORBIDDEN");
    assert_eq!(
        code(
            &app,
            &admin,
            EXPORT,
            json!({ "filter": cond("shoe_size", "EQ", Some("42"), None) })
        )
        .await,
        "VALIDATION"
    );
    let (status, _, _) = fetch(&app, "/downloads/obd_not-a-real-link").await;
    assert_eq!(status, 404);

    // A second Admin makes a link, then is made Staff: the link stops working.
    let second = app.add_user(&admin, "ADMIN").await;
    let url = export_link(&app, &second, json!(null)).await;
    assert_eq!(fetch(&app, &url).await.0, 200);
    ok(
        &app,
        &admin,
        "mutation($id: ID!) { changeUserRole(userId: $id, role: STAFF) { id } }",
        json!({ "id": second.user_id }),
    )
    .await;
    let (status, _, body) = fetch(&app, &url).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn the_sample_file_lists_every_importable_column_and_imports_as_is() {
    let app = TestApp::spawn().await;
    let (admin, _) = crm(&app).await;
    let data = ok(
        &app,
        &admin,
        "mutation { contactImportSample { url } }",
        json!({}),
    )
    .await;
    let (status, _, sample) =
        fetch(&app, data["contactImportSample"]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let header = sample.lines().next().unwrap();
    for key in [
        "name",
        "phone",
        "email",
        "label",
        "industry",
        "employees",
        "renewal",
        "interests",
        "vip",
    ] {
        assert!(
            header.split(',').any(|h| h == key),
            "{key} missing from {header}"
        );
    }
    let preview = app
        .gql_upload(
            &admin.token,
            PREVIEW,
            json!({ "file": null }),
            "sample.csv",
            sample.clone().into_bytes(),
        )
        .await;
    let columns = preview["data"]["previewContactImport"]["columns"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        columns
            .iter()
            .all(|c| c["suggestedProperty"] == c["header"]),
        "every column is recognised: {columns:#?}"
    );
    let mapping: Vec<Value> = columns
        .iter()
        .filter(|c| c["header"] != "owner")
        .map(|c| json!({ "column": c["index"], "property": c["header"] }))
        .collect();
    let import = app
        .gql_upload(
            &admin.token,
            IMPORT,
            json!({ "file": null, "mapping": mapping }),
            "sample.csv",
            sample.into_bytes(),
        )
        .await;
    let job = wait_done(
        &app,
        &admin,
        import["data"]["importContacts"]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (&job["created"], &job["skipped"]),
        (&json!(2), &json!(0)),
        "{job:#}"
    );
}
