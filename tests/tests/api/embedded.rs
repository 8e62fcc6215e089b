//! The embedded default: `obrol serve` with no DATABASE_URL runs its own PostgreSQL cluster
//! under the data directory, seeds a demo company, stops the cluster on SIGTERM, and starts
//! again after a crash.

use std::path::Path;
use std::time::Duration;

use obrol_tests::{gql_at, TempDir, TestServer};
use serde_json::json;

fn embedded_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![("OBROL_DATA_DIR", dir.display().to_string())]
}

fn demo_credentials(server: &TestServer) -> (String, String) {
    let line = server
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("demo login: "))
        .unwrap_or_else(|| panic!("no demo login printed: {:?}", server.stdout));
    let (email, password) = line.split_once(" / ").unwrap();
    (email.to_string(), password.to_string())
}

async fn log_in(server: &TestServer, email: &str, password: &str) -> serde_json::Value {
    let http = reqwest::Client::new();
    gql_at(
        &http,
        &server.url,
        None,
        "mutation($i: LogInInput!) { logIn(input: $i) { user { name company { name } } } }",
        json!({ "i": { "email": email, "password": password } }),
    )
    .await
}

async fn terminate(server: &mut TestServer) {
    let pid = server.pid().expect("running server").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "obrol exited with {status}");
}

#[tokio::test]
async fn a_new_user_gets_a_working_server_and_demo_login_from_nothing() {
    let dir = TempDir::new();
    let mut server = TestServer::start(&embedded_env(&dir.path)).await.unwrap();

    let (email, password) = demo_credentials(&server);
    let login = log_in(&server, &email, &password).await;
    assert_eq!(
        login["data"]["logIn"]["user"]["company"]["name"], "Demo Company",
        "{login}"
    );
    let graphiql = reqwest::get(format!("{}/graphql", server.url))
        .await
        .unwrap();
    assert_eq!(graphiql.status(), 200);

    terminate(&mut server).await;
    assert!(
        !dir.path.join("pg/postmaster.pid").exists(),
        "the cluster was left running after SIGTERM"
    );

    // The next start finds the same data: the same demo login works.
    let mut again = TestServer::start(&embedded_env(&dir.path)).await.unwrap();
    let login = log_in(&again, &email, &password).await;
    assert!(login["errors"].is_null(), "{login}");
    terminate(&mut again).await;
}

#[tokio::test]
async fn a_crashed_run_does_not_prevent_the_next_start() {
    let dir = TempDir::new();
    let mut first = TestServer::start(&embedded_env(&dir.path)).await.unwrap();
    let (email, password) = demo_credentials(&first);

    // obrol dies hard: its PostgreSQL keeps running, and the next start reuses it.
    first.child.kill().await.unwrap();
    let mut second = TestServer::start(&embedded_env(&dir.path)).await.unwrap();
    assert!(log_in(&second, &email, &password).await["errors"].is_null());
    terminate(&mut second).await;

    // A postmaster.pid naming a process that is gone (a crash of the whole machine).
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    std::fs::write(
        dir.path.join("pg/postmaster.pid"),
        format!("{dead_pid}\n/x\n0\n5432\n/tmp\n"),
    )
    .unwrap();
    let mut third = TestServer::start(&embedded_env(&dir.path)).await.unwrap();
    assert!(log_in(&third, &email, &password).await["errors"].is_null());
    terminate(&mut third).await;
}

#[tokio::test]
async fn a_one_off_migrate_leaves_the_running_servers_database_alone() {
    let dir = TempDir::new();
    let mut server = TestServer::start(&embedded_env(&dir.path)).await.unwrap();

    let migrate = tokio::process::Command::new(obrol_tests::obrol_bin())
        .arg("migrate")
        .env("OBROL_DATA_DIR", &dir.path)
        .env("OBROL_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "obrol migrate stopped the server's database"
    );
    terminate(&mut server).await;
}
