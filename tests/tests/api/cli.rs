//! The `obrol` subcommands other than `serve`: `migrate`, `seed`, `schema`.

use obrol_tests::{hex_key, obrol_bin, TempDir, TestDatabase, TestServer};
use serde_json::json;

async fn run(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut command = tokio::process::Command::new(obrol_bin());
    command.args(args).env("OBROL_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.expect("obrol runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn migrate_and_seed_prepare_an_external_database_for_a_demo_login() {
    let db = TestDatabase::create().await.unwrap();
    let data_dir = TempDir::new();
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("OBROL_SECRET_KEY", hex_key()),
        ("OBROL_DATA_DIR", data_dir.path.display().to_string()),
    ];

    let (migrated, out) = run(&["migrate"], &env).await;
    assert!(migrated, "{out}");
    assert!(out.contains("database is up to date"));

    let (seeded, out) = run(&["seed"], &env).await;
    assert!(seeded, "{out}");
    let (email, password) = out
        .lines()
        .find_map(|l| l.strip_prefix("demo login: "))
        .and_then(|l| l.split_once(" / "))
        .unwrap_or_else(|| panic!("no demo login in {out}"));

    // Seeding again with the same data directory prints the same login and adds nothing.
    let (_, again) = run(&["seed"], &env).await;
    assert!(
        again.contains(&format!("demo login: {email} / {password}")),
        "{again}"
    );
    let mut conn = db.superuser().await.unwrap();
    let companies: i64 = sqlx::query_scalar("select count(*) from companies")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(companies, 1);

    let server = TestServer::start(&env).await.unwrap();
    let http = reqwest::Client::new();
    let login = obrol_tests::gql_at(
        &http,
        &server.url,
        None,
        "mutation($i: LogInInput!) { logIn(input: $i) { user { role company { name } teams { name } } } }",
        json!({ "i": { "email": email, "password": password } }),
    )
    .await;
    assert_eq!(login["data"]["logIn"]["user"]["role"], "ADMIN", "{login}");
    assert_eq!(
        login["data"]["logIn"]["user"]["company"]["name"],
        "Demo Company"
    );
    assert_eq!(
        login["data"]["logIn"]["user"]["teams"],
        json!([{ "name": "Sales" }, { "name": "Support" }])
    );
}

#[tokio::test]
async fn schema_prints_the_committed_contract() {
    let (ok, sdl) = run(&["schema"], &[]).await;
    assert!(ok);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql")).unwrap();
    assert_eq!(sdl, committed);
}

#[tokio::test]
async fn a_bad_database_url_is_a_clear_error_not_a_panic() {
    let output = tokio::process::Command::new(obrol_bin())
        .arg("migrate")
        .env("DATABASE_URL", "not a url")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DATABASE_URL is not a valid PostgreSQL URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}
