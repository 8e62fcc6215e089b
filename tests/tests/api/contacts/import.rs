//! Importing contact files: preview, mapping, dedupe, skipped rows, bad files, restarts.

use std::time::Duration;

use super::*;

const PREVIEW: &str = "mutation($file: Upload!) { previewContactImport(file: $file) {
    fileName rowCount columns { index header samples suggestedProperty } } }";
const IMPORT: &str =
    "mutation($file: Upload!, $mapping: [ImportColumnMapping!]!, $options: ImportOptions) {
    importContacts(file: $file, mapping: $mapping, options: $options) { id status totalRows } }";
const JOB: &str = "query($id: ID!) { contactImport(id: $id) {
    status progress totalRows processedRows created updated skipped failure
    errors { row reason } } }";
const FIND: &str = "query($filter: ContactFilter) { contacts(filter: $filter, first: 5) {
    nodes { id firstName lastName phone email customProperties labels { name }
            activities { nodes { kind } } } } }";

fn contacts_fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/contacts")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn upload(
    app: &TestApp,
    who: &Session,
    query: &str,
    variables: Value,
    name: &str,
    bytes: &[u8],
) -> Value {
    app.gql_upload(&who.token, query, variables, name, bytes.to_vec())
        .await
}

async fn start_import(
    app: &TestApp,
    who: &Session,
    name: &str,
    bytes: &[u8],
    mapping: Value,
    options: Value,
) -> String {
    let response = upload(
        app,
        who,
        IMPORT,
        json!({ "file": null, "mapping": mapping, "options": options }),
        name,
        bytes,
    )
    .await;
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"]["importContacts"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls an import until it is DONE or FAILED.
async fn finished(app: &TestApp, who: &Session, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = ok(app, who, JOB, json!({ "id": id })).await["contactImport"].clone();
        if job["status"] == "DONE" || job["status"] == "FAILED" {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "import still {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn find(app: &TestApp, who: &Session, property: &str, value: &str) -> Value {
    let data = ok(
        app,
        who,
        FIND,
        json!({ "filter": cond(property, "EQ", Some(value), None) }),
    )
    .await;
    let nodes = data["contacts"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 1, "{property} = {value}: {nodes:#?}");
    nodes[0].clone()
}

fn label_names(contact: &Value) -> Vec<String> {
    contact["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect()
}

const PEOPLE: &str = "Full name;Mobile;E-mail;Industry;Employees;Tags;Favourite colour\n\
Ana Lim;+62 812-0000-0001;;Finance;130;vip;\n\
Fajar Nugroho;6281200000006;fajar@example.com;Retail;;new, hot;teal\n\
Gita;;GITA@example.com;technology;12;;\n\
Hadi;0812 3456;;;;;\n\
Indah;;indah@example.com;Mining;;;\n\
;;;;;;green\n\
Fajar N.;+6281200000006;;;99;;\n\
Joko;+6591234567;budi@example.com;;;;\n\
Kiki;+62 811 1111 1111;;;\n";

#[tokio::test]
async fn an_import_creates_updates_by_phone_or_email_and_reports_skipped_rows() {
    let app = TestApp::spawn().await;
    let (admin, _ids) = crm(&app).await;

    // The preview reads the columns, samples and suggests properties; it stores nothing.
    let preview = upload(
        &app,
        &admin,
        PREVIEW,
        json!({ "file": null }),
        "people.csv",
        PEOPLE.as_bytes(),
    )
    .await;
    let preview = &preview["data"]["previewContactImport"];
    assert_eq!(preview["rowCount"], 9, "{preview:#}");
    let columns = preview["columns"].as_array().unwrap();
    let suggested: Vec<&Value> = columns.iter().map(|c| &c["suggestedProperty"]).collect();
    assert_eq!(
        suggested,
        [
            &json!("name"),
            &json!("phone"),
            &json!("email"),
            &json!("industry"),
            &json!("employees"),
            &json!("label"),
            &Value::Null
        ]
    );
    assert_eq!(
        columns[0]["samples"],
        json!(["Ana Lim", "Fajar Nugroho", "Gita", "Hadi", "Indah"])
    );
    assert_eq!(names(&app, &admin, json!(null)).await.1, 5);

    let list = ok(
        &app,
        &admin,
        "mutation { createList(input: { name: \"Imported\" }) { id } }",
        json!({}),
    )
    .await["createList"]["id"]
        .clone();
    let mapping = json!([
        { "column": 0, "property": "name" },
        { "column": 1, "property": "phone" },
        { "column": 2, "property": "email" },
        { "column": 3, "property": "industry" },
        { "column": 4, "property": "employees" },
        { "column": 5, "property": "label" },
        { "column": 6, "newProperty": { "key": "colour", "label": "Favourite colour", "type": "TEXT" } },
    ]);
    let id = start_import(
        &app,
        &admin,
        "people.csv",
        PEOPLE.as_bytes(),
        mapping,
        json!({ "labels": ["imported"], "listId": list }),
    )
    .await;
    let job = finished(&app, &admin, &id).await;
    assert_eq!(job["status"], "DONE", "{job:#}");
    assert_eq!(job["progress"], 1.0);
    assert_eq!(
        (
            &job["totalRows"],
            &job["created"],
            &job["updated"],
            &job["skipped"]
        ),
        (&json!(9), &json!(2), &json!(2), &json!(5)),
        "{job:#}"
    );
    let errors = job["errors"].as_array().unwrap();
    let rows: Vec<i64> = errors.iter().map(|e| e["row"].as_i64().unwrap()).collect();
    assert_eq!(rows, [5, 6, 7, 9, 10], "{errors:#?}");
    for (error, words) in errors.iter().zip([
        "country code",
        "Mining",
        "no name, phone number or e-mail",
        "one contact and its e-mail address to another",
        "has 5 values",
    ]) {
        assert!(
            error["reason"].as_str().unwrap().contains(words),
            "{error} should say {words}"
        );
    }

    // Ana (matched by phone) is updated, keeps what the file leaves empty, gains labels.
    let ana = find(&app, &admin, "phone", "+6281200000001").await;
    assert_eq!(ana["firstName"], "Ana");
    assert_eq!(ana["customProperties"]["industry"], "Finance");
    assert_eq!(ana["customProperties"]["employees"], 130.0);
    assert_eq!(
        ana["customProperties"]["renewal"], "2026-03-01",
        "an empty cell is not a change"
    );
    let mut labels = label_names(&ana);
    labels.sort();
    assert_eq!(labels, ["imported", "vip"]);
    let kinds: Vec<&str> = ana["activities"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"IMPORTED"), "{kinds:?}");
    // Fajar: created by row 3 (phone without +), updated by row 8 with the same phone.
    let fajar = find(&app, &admin, "phone", "+6281200000006").await;
    assert_eq!(
        (&fajar["firstName"], &fajar["lastName"]),
        (&json!("Fajar"), &json!("N."))
    );
    assert_eq!(fajar["email"], "fajar@example.com");
    assert_eq!(
        fajar["customProperties"],
        json!({ "industry": "Retail", "employees": 99.0, "colour": "teal" })
    );
    let mut labels = label_names(&fajar);
    labels.sort();
    assert_eq!(labels, ["hot", "imported", "new"]);
    let gita = find(&app, &admin, "email", "gita@example.com").await;
    assert_eq!(gita["customProperties"]["industry"], "Technology");
    // Budi and Chen are untouched by the conflicting row; nobody is duplicated.
    let (_, total) = names(&app, &admin, json!(null)).await;
    assert_eq!(total, 7);
    let members = ok(
        &app,
        &admin,
        "query($id: ID!) { contactList(id: $id) { memberCount } }",
        json!({ "id": list }),
    )
    .await;
    assert_eq!(members["contactList"]["memberCount"], 3);
    let properties = ok(
        &app,
        &admin,
        "{ contactProperties { key label } }",
        json!({}),
    )
    .await;
    assert!(
        properties["contactProperties"]
            .as_array()
            .unwrap()
            .contains(&json!({ "key": "colour", "label": "Favourite colour" })),
        "the new property is defined"
    );

    // Without updateExisting, the same file only adds whom it does not know.
    let again = start_import(
        &app,
        &admin,
        "people.csv",
        PEOPLE.as_bytes(),
        json!([{ "column": 0, "property": "name" }, { "column": 1, "property": "phone" },
               { "column": 2, "property": "email" }]),
        json!({ "updateExisting": false }),
    )
    .await;
    let job = finished(&app, &admin, &again).await;
    assert_eq!(
        (&job["created"], &job["updated"]),
        (&json!(1), &json!(0)),
        "only Indah is new without her industry: {job:#}"
    );

    // Another company sees neither the import nor its contacts.
    let other = app.sign_up("Other").await;
    assert_eq!(
        code(&app, &other, JOB, json!({ "id": id })).await,
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn a_spreadsheet_with_numbers_and_dates_imports_as_text_phones_and_iso_dates() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Sheets").await;
    define(&app, &admin, "renewal", "DATE", &[]).await;
    define(&app, &admin, "employees", "NUMBER", &[]).await;
    let bytes = contacts_fixture("people.xlsx");
    let preview = upload(
        &app,
        &admin,
        PREVIEW,
        json!({ "file": null }),
        "people.xlsx",
        &bytes,
    )
    .await;
    let columns = &preview["data"]["previewContactImport"]["columns"];
    assert_eq!(columns[1]["suggestedProperty"], "phone", "{preview:#}");
    assert_eq!(columns[1]["samples"][0], "6281311112222");
    let id = start_import(
        &app,
        &admin,
        "people.xlsx",
        &bytes,
        json!([{ "column": 0, "property": "name" }, { "column": 1, "property": "phone" },
               { "column": 2, "property": "email" }, { "column": 3, "property": "renewal" },
               { "column": 4, "property": "employees" }]),
        json!(null),
    )
    .await;
    let job = finished(&app, &admin, &id).await;
    assert_eq!(
        (&job["created"], &job["skipped"]),
        (&json!(3), &json!(0)),
        "{job:#}"
    );
    let lestari = find(&app, &admin, "phone", "+6281311112222").await;
    assert_eq!(
        lestari["customProperties"],
        json!({ "renewal": "2027-01-15", "employees": 40.0 })
    );
    assert_eq!(lestari["email"], "lestari@kopi.example");
}

#[tokio::test]
async fn bad_files_and_bad_mappings_are_refused_before_anything_starts() {
    let app = TestApp::spawn().await;
    let (admin, _) = crm(&app).await;
    let good_mapping = json!([{ "column": 0, "property": "name" }]);
    let mut wide = "c,".repeat(1_000_000);
    wide.push_str("\nAna\n");
    for (name, bytes, words) in [
        ("empty.csv", Vec::new(), "empty"),
        ("header.csv", b"Name,Phone\n".to_vec(), "no rows"),
        (
            "latin1.csv",
            b"Name,City\nJo\xE3o,S\xE3o Paulo\n".to_vec(),
            "not UTF-8",
        ),
        (
            "quote.csv",
            b"Name,Note\nAna,\"never closed\nBudi,ok\n".to_vec(),
            "never closed",
        ),
        ("wide.csv", wide.into_bytes(), "more than 500 columns"),
        (
            "fake.xlsx",
            b"PK\x03\x04 not really a zip".to_vec(),
            "damaged",
        ),
    ] {
        for query in [PREVIEW, IMPORT] {
            let response = upload(
                &app,
                &admin,
                query,
                json!({ "file": null, "mapping": good_mapping }),
                name,
                &bytes,
            )
            .await;
            assert_eq!(
                error_code(&response),
                Some("VALIDATION"),
                "{name}: {response:#}"
            );
            let message = response["errors"][0]["message"].as_str().unwrap();
            assert!(message.contains(words), "{name}: {message}");
        }
    }

    let file = b"Name,Phone,Shoe size\nAna,+6281200000009,42\n";
    let criteria = ok(
        &app,
        &admin,
        "mutation($f: ContactFilter) { createList(input: { name: \"Crit\", filter: $f }) { id } }",
        json!({ "f": cond("email", "IS_SET", None, None) }),
    )
    .await["createList"]["id"]
        .clone();
    let other = app.sign_up("Other").await;
    let theirs = ok(
        &app,
        &other,
        "mutation { createList(input: { name: \"Theirs\" }) { id } }",
        json!({}),
    )
    .await;
    for (mapping, options, expected, words) in [
        (
            json!([{ "column": 0, "property": "name" }, { "column": 2, "property": "shoe_size" }]),
            json!(null),
            "VALIDATION",
            "shoe_size",
        ),
        (
            json!([{ "column": 7, "property": "name" }]),
            json!(null),
            "VALIDATION",
            "column 7",
        ),
        (
            json!([{ "column": 0, "property": "name" }, { "column": 1, "property": "name" }]),
            json!(null),
            "VALIDATION",
            "two columns",
        ),
        (
            json!([{ "column": 2, "property": "employees" }]),
            json!(null),
            "VALIDATION",
            "name, phone or e-mail",
        ),
        (
            json!([{ "column": 0, "property": "name" }, { "column": 2, "newProperty": { "key": "phone", "label": "Phone", "type": "TEXT" } }]),
            json!(null),
            "CONFLICT",
            "built-in",
        ),
        (
            good_mapping.clone(),
            json!({ "listId": criteria }),
            "VALIDATION",
            "static list",
        ),
        (
            good_mapping.clone(),
            json!({ "listId": theirs["createList"]["id"] }),
            "NOT_FOUND",
            "list",
        ),
    ] {
        let response = upload(
            &app,
            &admin,
            IMPORT,
            json!({ "file": null, "mapping": mapping, "options": options }),
            "x.csv",
            file,
        )
        .await;
        assert_eq!(
            error_code(&response),
            Some(expected),
            "{mapping}: {response:#}"
        );
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(words), "{mapping}: {message}");
    }
    // Staff may import, but not define properties on the way.
    let staff = app.add_user(&admin, "STAFF").await;
    let response = upload(
        &app,
        &staff,
        IMPORT,
        json!({ "file": null, "mapping": [{ "column": 0, "property": "name" },
            { "column": 2, "newProperty": { "key": "shoe_size", "label": "Shoe size", "type": "NUMBER" } }] }),
        "x.csv",
        file,
    )
    .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response:#}");

    let imports = ok(&app, &admin, "{ contactImports { id } }", json!({})).await;
    assert_eq!(
        imports["contactImports"],
        json!([]),
        "no refused import was queued"
    );
    let properties = ok(&app, &admin, "{ contactProperties { key } }", json!({})).await;
    assert!(!properties.to_string().contains("shoe_size"));
    assert_eq!(names(&app, &admin, json!(null)).await.1, 5);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_an_import_neither_loses_nor_repeats_rows() {
    let mut app = TestApp::spawn_with(&[("OBROL_JOB_LEASE_SECONDS", "3".into())]).await;
    let admin = app.sign_up("Big import").await;
    let mut file = String::from("Name,Phone\n");
    for i in 0..6000 {
        file.push_str(&format!("Person {i},+628150{i:07}\n"));
    }
    let id = start_import(
        &app,
        &admin,
        "many.csv",
        file.as_bytes(),
        json!([{ "column": 0, "property": "name" }, { "column": 1, "property": "phone" }]),
        json!(null),
    )
    .await;
    // Stop the server hard once the first batches are in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = ok(&app, &admin, JOB, json!({ "id": id })).await["contactImport"].clone();
        if job["processedRows"].as_i64().unwrap() >= 1000 || job["status"] == "DONE" {
            eprintln!("stopping the server with the import at {job}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no progress: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.kill_and_restart().await;
    let job = finished(&app, &admin, &id).await;
    assert_eq!(
        (
            &job["status"],
            &job["created"],
            &job["updated"],
            &job["skipped"]
        ),
        (&json!("DONE"), &json!(6000), &json!(0), &json!(0)),
        "each row exactly once: {job:#}"
    );
    assert_eq!(names(&app, &admin, json!(null)).await.1, 6000);
}
