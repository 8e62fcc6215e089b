//! Contact benchmarks against the real server (release build), for docs/benchmarks.md
//! (issue 4), on a generated company of 1,000,000 contacts with 20 custom properties:
//!
//! 1. a typical two-condition filter (`industry = Technology AND employees > 50`) with
//!    `first: 50`, and with its `totalCount`, through GraphQL, against the same SQL run by
//!    hand (as the application role, under row-level security) and a trivial GraphQL
//!    request, all in the same run;
//! 2. importing a 100,000-row CSV through `importContacts` until the job is DONE, against
//!    PostgreSQL inserting 100,000 generated rows into the same table by itself;
//! 3. exporting all 1,000,000 contacts through a download link: time, and the server's peak
//!    memory during the export (VmHWM, reset just before), against `COPY ... TO STDOUT` of
//!    the same rows.
//!
//! The company is generated in SQL (see `generate`): the properties are defined through the
//! API, then one `insert ... select` from `generate_series` fills the built-in columns and
//! the properties' slots with deterministic pseudo-random values (`hashint8`), and the
//! table is vacuumed and analysed, as autovacuum would after a bulk load.
//!
//! Run with `scripts/bench-contacts`. Environment: QUERIES (default 200), CONTACTS (default
//! 1000000), BENCH_DATABASE (a database an earlier run printed: skips the generation).

use std::time::{Duration, Instant};

use obrol_tests::{percentile, summary, Session, TestApp, TestDatabase, PASSWORD};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};

/// The 20 custom properties: (key, type, options).
const PROPERTIES: &[(&str, &str, &[&str])] = &[
    (
        "industry",
        "SINGLE_SELECT",
        &[
            "Technology",
            "Retail",
            "Finance",
            "Health",
            "Education",
            "Logistics",
            "Food",
            "Travel",
        ],
    ),
    ("employees", "NUMBER", &[]),
    (
        "plan",
        "SINGLE_SELECT",
        &["Free", "Pro", "Premium", "Enterprise"],
    ),
    ("renewal", "DATE", &[]),
    ("vip", "BOOLEAN", &[]),
    (
        "interests",
        "MULTI_SELECT",
        &["ai", "crm", "ads", "seo", "events", "wholesale"],
    ),
    ("score", "NUMBER", &[]),
    ("city", "TEXT", &[]),
    (
        "source",
        "SINGLE_SELECT",
        &["Website", "Referral", "Event", "Ads", "Import"],
    ),
    ("revenue", "NUMBER", &[]),
    ("signup", "DATE", &[]),
    ("newsletter", "BOOLEAN", &[]),
    ("segment", "SINGLE_SELECT", &["A", "B", "C", "D"]),
    ("tier", "SINGLE_SELECT", &["Bronze", "Silver", "Gold"]),
    ("age", "NUMBER", &[]),
    ("language", "SINGLE_SELECT", &["id", "en", "ms", "th", "vi"]),
    ("website", "URL", &[]),
    ("referral", "TEXT", &[]),
    ("last_order", "DATE", &[]),
    ("lifetime_value", "NUMBER", &[]),
];

const FIRST: &[&str] = &[
    "Ana", "Budi", "Chen", "Dewi", "Eko", "Fajar", "Gita", "Hadi", "Indah", "Joko", "Kiki",
    "Lestari", "Made", "Nur", "Oki", "Putri", "Rina", "Sari", "Tono", "Wati",
];
const LAST: &[&str] = &[
    "Lim", "Santoso", "Wijaya", "Tan", "Nugroho", "Pratama", "Siregar", "Hasibuan", "Ng", "Wibowo",
];
const CITIES: &[&str] = &[
    "Jakarta",
    "Surabaya",
    "Bandung",
    "Medan",
    "Singapore",
    "Kuala Lumpur",
    "Bangkok",
    "Manila",
];

fn sql_array(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("array[{}]", quoted.join(", "))
}

/// A pseudo-random, deterministic non-negative number for row `g` and salt `k`.
fn r(k: u32) -> String {
    format!("abs(hashint8(g::bigint * 64 + {k}))")
}

/// One SQL expression per property, by type; about 80% of values are set.
fn value_sql(index: usize, kind: &str, options: &[&str]) -> String {
    let salt = 10 + index as u32 * 2;
    let set = format!("{} % 10 < 8", r(salt));
    let value = match kind {
        "SINGLE_SELECT" => format!(
            "({})[1 + {} % {}]",
            sql_array(options),
            r(salt + 1),
            options.len()
        ),
        "MULTI_SELECT" => format!(
            "array[({o})[1 + {a} % {n}], ({o})[1 + {b} % {n}]]",
            o = sql_array(options),
            a = r(salt + 1),
            b = r(salt + 101),
            n = options.len()
        ),
        "NUMBER" => format!("(1 + {} % 1000)::float8", r(salt + 1)),
        "DATE" => format!("date '2024-01-01' + ({} % 1000)::int", r(salt + 1)),
        "BOOLEAN" => format!("{} % 2 = 0", r(salt + 1)),
        "URL" => "'https://example.com/c/' || g".to_string(),
        _ => format!(
            "({})[1 + {} % {}]",
            sql_array(CITIES),
            r(salt + 1),
            CITIES.len()
        ),
    };
    format!("case when {set} then {value} end")
}

async fn define_properties(app: &TestApp, admin: &Session) {
    for (key, kind, options) in PROPERTIES {
        app.gql_ok(
            Some(&admin.token),
            "mutation($i: DefineContactPropertyInput!) { defineContactProperty(input: $i) { id } }",
            json!({ "i": { "key": key, "label": key, "type": kind, "options": options } }),
        )
        .await;
    }
}

/// Fills the company with `count` contacts in one statement; returns the seconds it took.
async fn generate(conn: &mut PgConnection, company: &str, owner: &str, count: i64) -> f64 {
    let slots: Vec<(String, String)> =
        sqlx::query_as("select key, slot from contact_properties where company_id = $1::uuid")
            .bind(company)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let mut columns = vec![
        "id",
        "company_id",
        "first_name",
        "last_name",
        "phone",
        "email",
        "country",
        "company_name",
        "job_title",
        "owner_id",
        "label_ids",
        "created_at",
        "updated_at",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    let mut values = vec![
        "gen_random_uuid()".to_string(),
        format!("'{company}'::uuid"),
        format!("({})[1 + {} % {}]", sql_array(FIRST), r(1), FIRST.len()),
        format!("({})[1 + {} % {}]", sql_array(LAST), r(2), LAST.len()),
        "'+62811' || lpad(g::text, 8, '0')".to_string(),
        format!(
            "case when {} % 10 < 7 then 'user' || g || '@example.com' end",
            r(3)
        ),
        format!(
            "({})[1 + {} % 6]",
            sql_array(&["ID", "SG", "MY", "TH", "PH", "VN"]),
            r(4)
        ),
        format!("'Company ' || ({} % 50000)", r(5)),
        format!(
            "({})[1 + {} % 4]",
            sql_array(&["Owner", "Manager", "Buyer", "Engineer"]),
            r(6)
        ),
        format!("'{owner}'::uuid"),
        "'{}'::uuid[]".to_string(),
        format!("now() - ({} % 730) * interval '1 day'", r(7)),
        "now()".to_string(),
    ];
    for (index, (key, kind, options)) in PROPERTIES.iter().enumerate() {
        let slot = &slots.iter().find(|(k, _)| k == key).unwrap().1;
        columns.push(slot.clone());
        values.push(value_sql(index, kind, options));
    }
    let sql = format!(
        "insert into contacts ({}) select {} from generate_series(1, {count}) as g",
        columns.join(", "),
        values.join(", ")
    );
    let started = Instant::now();
    sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
    let took = started.elapsed().as_secs_f64();
    sqlx::raw_sql("vacuum analyze contacts")
        .execute(&mut *conn)
        .await
        .unwrap();
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn timed_gql(app: &TestApp, token: &str, query: &str, variables: &Value) -> f64 {
    let started = Instant::now();
    let response = app.gql(Some(token), query, variables.clone()).await;
    let took = ms(started.elapsed());
    assert!(response.get("errors").is_none(), "{response:#}");
    took
}

fn report(name: &str, samples: Vec<f64>) -> f64 {
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let p95 = percentile(&sorted, 95.0);
    let (p50, p99, mean) = summary(samples);
    println!(
        "{name:<52} p50 {p50:>8.2} ms  p95 {p95:>8.2} ms  p99 {p99:>8.2} ms  mean {mean:>8.2} ms"
    );
    p95
}

/// A connection acting as the server does: the application role, one company's rows.
async fn as_app(app: &TestApp, company: &str) -> PgConnection {
    let mut conn = app.db.superuser().await.unwrap();
    sqlx::raw_sql(&format!(
        "set role obrol_app; select set_config('app.company_id', '{company}', false)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn
}

fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let queries: usize = std::env::var("QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let count: i64 = std::env::var("CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let env = [("OBROL_LOG", "warn".to_string())];
    let (app, admin) = match std::env::var("BENCH_DATABASE") {
        Ok(name) => {
            let db = TestDatabase::existing(&name).await.unwrap();
            let app = TestApp::start_on(db, obrol_tests::hex_key(), &env).await;
            let email: String = sqlx::query_scalar(
                "select email from users where role = 'ADMIN' order by created_at limit 1",
            )
            .fetch_one(&mut app.db.superuser().await.unwrap())
            .await
            .unwrap();
            let admin = app.log_in(&email, PASSWORD).await;
            (app, admin)
        }
        Err(_) => {
            let mut app = TestApp::spawn_with(&env).await;
            app.db.keep();
            let admin = app.sign_up("Bench CRM").await;
            define_properties(&app, &admin).await;
            let mut conn = app.db.superuser().await.unwrap();
            let took = generate(&mut conn, &admin.company_id, &admin.user_id, count).await;
            println!("generated {count} contacts with {} custom properties in {took:.1} s (one insert ... select)", PROPERTIES.len());
            (app, admin)
        }
    };
    let company = admin.company_id.clone();
    let mut superuser = app.db.superuser().await.unwrap();
    let total: i64 =
        sqlx::query_scalar("select count(*) from contacts where company_id = $1::uuid")
            .bind(&company)
            .fetch_one(&mut superuser)
            .await
            .unwrap();
    let table_mb: i64 = sqlx::query_scalar("select pg_total_relation_size('contacts') / 1048576")
        .fetch_one(&mut superuser)
        .await
        .unwrap();
    println!("company {company}: {total} contacts; contacts table with indexes {table_mb} MB");

    // 1. The filter.
    let filter = json!({ "and": [
        { "condition": { "property": "industry", "op": "EQ", "value": "Technology" } },
        { "condition": { "property": "employees", "op": "GT", "value": "50" } } ] });
    let page = "query($f: ContactFilter) { contacts(filter: $f, first: 50) {
        nodes { id name phone email customProperties } pageInfo { hasNextPage endCursor } } }";
    let counted = "query($f: ContactFilter) { contacts(filter: $f, first: 50) {
        totalCount nodes { id name phone email customProperties } } }";
    let trivial = "{ me { id } }";
    let vars = json!({ "f": filter });
    for _ in 0..20 {
        timed_gql(&app, &admin.token, page, &vars).await;
    }
    let mut page_ms = Vec::new();
    let mut trivial_ms = Vec::new();
    for _ in 0..queries {
        page_ms.push(timed_gql(&app, &admin.token, page, &vars).await);
        trivial_ms.push(timed_gql(&app, &admin.token, trivial, &json!({})).await);
    }
    let count_runs = (queries / 4).max(10);
    for _ in 0..3 {
        timed_gql(&app, &admin.token, counted, &vars).await;
    }
    let mut counted_ms = Vec::new();
    for _ in 0..count_runs {
        counted_ms.push(timed_gql(&app, &admin.token, counted, &vars).await);
    }
    let matches = app.gql_ok(Some(&admin.token), counted, vars.clone()).await["contacts"]
        ["totalCount"]
        .as_i64()
        .unwrap();

    // The same SQL by hand.
    let slots: Vec<(String, String)> =
        sqlx::query_as("select key, slot from contact_properties where company_id = $1::uuid order by created_at, id")
            .bind(&company)
            .fetch_all(&mut superuser)
            .await
            .unwrap();
    let slot = |key: &str| slots.iter().find(|(k, _)| k == key).unwrap().1.clone();
    let select: Vec<String> = [
        "id",
        "first_name",
        "last_name",
        "display_name",
        "phone",
        "email",
        "country",
        "location",
        "company_name",
        "job_title",
        "owner_id",
        "team_id",
        "label_ids",
        "last_contacted_at",
        "last_inbound_at",
        "created_at",
        "updated_at",
    ]
    .iter()
    .map(|c| format!("c.{c}"))
    .chain(slots.iter().map(|(_, s)| format!("c.{s}")))
    .collect();
    let where_sql = format!(
        "where c.company_id = $1::uuid and (c.{} = $2 and c.{} > $3)",
        slot("industry"),
        slot("employees")
    );
    let page_sql = format!(
        "select {} from contacts c {where_sql} order by c.id desc limit 51",
        select.join(", ")
    );
    let count_sql = format!("select count(*) from contacts c {where_sql}");
    let mut conn = as_app(&app, &company).await;
    let mut sql_page_ms = Vec::new();
    let mut sql_count_ms = Vec::new();
    for i in 0..queries + 20 {
        let started = Instant::now();
        let rows = sqlx::query(&page_sql)
            .bind(&company)
            .bind("Technology")
            .bind(50.0_f64)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows.len(), 51);
        if i >= 20 {
            sql_page_ms.push(ms(started.elapsed()));
        }
    }
    for _ in 0..count_runs {
        let started = Instant::now();
        let n: i64 = sqlx::query(&count_sql)
            .bind(&company)
            .bind("Technology")
            .bind(50.0_f64)
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, matches);
        sql_count_ms.push(ms(started.elapsed()));
    }
    println!("\n1. filter industry = Technology AND employees > 50 ({matches} of {total} match), {queries} requests each");
    let api_page = report("GraphQL contacts(first: 50)", page_ms);
    let api_count = report("GraphQL contacts(first: 50) with totalCount", counted_ms);
    let sql_page = report("same page SQL by hand (app role, RLS)", sql_page_ms);
    let sql_count = report("same count(*) SQL by hand", sql_count_ms);
    let trivial_p95 = report("trivial GraphQL request { me { id } }", trivial_ms);
    println!(
        "ratios (p95): page API/SQL {:.2}, page+count API/count SQL {:.2}, page API/trivial {:.2}",
        api_page / sql_page,
        api_count / sql_count,
        api_page / trivial_p95
    );

    // 2. Import of 100,000 rows: new contacts (phones and e-mails unique to this run), then
    // the same file again, which updates every one of them.
    let rows = 100_000;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 1000;
    let mut csv = String::from("Name,Phone,Email,Industry,Employees,City,VIP,Signup\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "{} {},+628{run:03}{i:07},import{run}-{i}@example.net,{},{},{},{},2026-{:02}-{:02}\n",
            FIRST[i % FIRST.len()],
            LAST[i % LAST.len()],
            PROPERTIES[0].2[i % 8],
            1 + i % 900,
            CITIES[i % CITIES.len()],
            if i % 3 == 0 { "yes" } else { "no" },
            1 + i % 12,
            1 + i % 28
        ));
    }
    let mapping = json!([
        { "column": 0, "property": "name" }, { "column": 1, "property": "phone" },
        { "column": 2, "property": "email" }, { "column": 3, "property": "industry" },
        { "column": 4, "property": "employees" }, { "column": 5, "property": "city" },
        { "column": 6, "property": "vip" }, { "column": 7, "property": "signup" } ]);
    let mut imports = Vec::new();
    for _pass in 0..2 {
        let started = Instant::now();
        let response = app
            .gql_upload(
                &admin.token,
                "mutation($file: Upload!, $m: [ImportColumnMapping!]!) { importContacts(file: $file, mapping: $m) { id } }",
                json!({ "file": null, "m": mapping }),
                "bench.csv",
                csv.clone().into_bytes(),
            )
            .await;
        let import_id = response["data"]["importContacts"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{response:#}"))
            .to_string();
        let job = loop {
            let job = app
                .gql_ok(
                    Some(&admin.token),
                    "query($id: ID!) { contactImport(id: $id) { status created updated skipped } }",
                    json!({ "id": import_id }),
                )
                .await["contactImport"]
                .clone();
            if job["status"] == "DONE" || job["status"] == "FAILED" {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        imports.push((started.elapsed().as_secs_f64(), job));
    }
    // Baseline: PostgreSQL inserting 100,000 generated rows into the same table, with the
    // same indexes, by itself (into a second company, rolled back).
    let baseline_company = uuid::Uuid::new_v4();
    let mut tx = superuser.begin().await.unwrap();
    sqlx::query("insert into companies (id, name) values ($1, 'baseline')")
        .bind(baseline_company)
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = Instant::now();
    sqlx::raw_sql(&format!(
        "insert into contacts (id, company_id, first_name, last_name, phone, email, {}, {}, {}, {}, {})
         select gen_random_uuid(), '{baseline_company}', 'Ana', 'Lim' || g, '+62899' || lpad(g::text, 7, '0'),
                'import' || g || '@example.net', 'Technology', g % 900, 'Jakarta', g % 3 = 0, date '2026-01-01' + g % 300
         from generate_series(1, {rows}) as g",
        slot("industry"), slot("employees"), slot("city"), slot("vip"), slot("signup")
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    let baseline_s = started.elapsed().as_secs_f64();
    tx.rollback().await.unwrap();
    println!(
        "\n2. import of a {rows}-row CSV ({:.1} MB); PostgreSQL inserting {rows} generated rows by itself: {baseline_s:.1} s",
        csv.len() as f64 / 1_048_576.0
    );
    for ((seconds, job), what) in imports
        .iter()
        .zip(["new contacts", "the same file again (updates)"])
    {
        println!(
            "   {what}: {seconds:.1} s until DONE ({:.0} rows/s), job {job}; ratio to the bulk insert {:.1}",
            rows as f64 / seconds,
            seconds / baseline_s
        );
    }

    // 3. Export of every contact.
    let pid = app.server.pid().unwrap();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").ok();
    let before_kb = vm_hwm_kb(pid);
    let link = app
        .gql_ok(
            Some(&admin.token),
            "mutation { exportContacts { url } }",
            json!({}),
        )
        .await["exportContacts"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let mut response = app.http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let export_s = started.elapsed().as_secs_f64();
    let peak_kb = vm_hwm_kb(pid);
    let mut conn = as_app(&app, &company).await;
    let started = Instant::now();
    let mut copy = conn
        .copy_out_raw(&format!(
            "copy (select {} from contacts c where c.company_id = '{company}' order by c.id) to stdout with (format csv)",
            select.join(", ")
        ))
        .await
        .unwrap();
    let mut copy_bytes = 0usize;
    use futures_util::StreamExt;
    while let Some(chunk) = copy.next().await {
        copy_bytes += chunk.unwrap().len();
    }
    let copy_s = started.elapsed().as_secs_f64();
    println!(
        "\n3. export of {} contacts: {export_s:.1} s, {:.0} MB of CSV; server peak memory {:.1} MB \
         (VmHWM reset before; {:.1} MB at the start); COPY of the same rows: {copy_s:.1} s ({:.0} MB); ratio {:.1}",
        lines - 1,
        bytes as f64 / 1_048_576.0,
        peak_kb as f64 / 1024.0,
        before_kb as f64 / 1024.0,
        copy_bytes as f64 / 1_048_576.0,
        export_s / copy_s
    );
    println!(
        "\nThe data is in database {0}; BENCH_DATABASE={0} scripts/bench-contacts measures again on it \
         (each run imports 100,000 more contacts into it).",
        app.db.name
    );
}
