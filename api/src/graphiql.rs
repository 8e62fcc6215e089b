//! GraphiQL, the in-browser GraphQL IDE served on `GET /graphql`.
//!
//! Its JavaScript (GraphiQL, React) comes from npm into `frontend/graphiql/node_modules`
//! (installed by scripts/bootstrap) and is served from `/graphiql/assets/`, so the page works
//! on a machine without internet access. When those files are missing, the page falls back to
//! async-graphql's CDN-hosted GraphiQL and the log says how to install them.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// The files the page loads: URL name → (path under node_modules, content type).
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "react.js",
        "react/umd/react.production.min.js",
        "text/javascript",
    ),
    (
        "react-dom.js",
        "react-dom/umd/react-dom.production.min.js",
        "text/javascript",
    ),
    ("graphiql.js", "graphiql/graphiql.min.js", "text/javascript"),
    ("graphiql.css", "graphiql/graphiql.min.css", "text/css"),
];

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Obrol GraphQL</title>
  <link rel="stylesheet" href="/graphiql/assets/graphiql.css">
  <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="/graphiql/assets/react.js"></script>
  <script src="/graphiql/assets/react-dom.js"></script>
  <script src="/graphiql/assets/graphiql.js"></script>
  <script>
    const wsOrigin = location.origin.replace(/^http/, 'ws');
    const fetcher = GraphiQL.createFetcher({
      url: location.origin + '/graphql',
      subscriptionUrl: wsOrigin + '/graphql/ws',
    });
    const defaultQuery = [
      '# Welcome to Obrol. Log in (the demo login is printed by `make run`), then copy the',
      '# token into Headers as {"Authorization": "Bearer <token>"} and ask who you are.',
      '',
      'mutation LogIn {',
      '  logIn(input: { email: "admin@demo.example.com", password: "" }) { token }',
      '}',
      '',
      'query Me {',
      '  me { name role company { name plan } teams { name } }',
      '}',
      '',
    ].join('\n');
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, { fetcher, defaultQuery, defaultEditorToolsVisibility: true }),
    );
  </script>
</body>
</html>
"#;

/// Finds the asset directory: as configured, or (for a relative path) beside the repository
/// the binary was built in, so `./target/release/obrol` works from any directory.
pub fn locate(configured: &Path) -> Option<PathBuf> {
    let mut candidates = vec![configured.to_path_buf()];
    if configured.is_relative() {
        if let Ok(exe) = std::env::current_exe() {
            // target/<profile>/obrol → the repository root is three levels up.
            if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
                candidates.push(root.join(configured));
            }
        }
    }
    let found = candidates
        .into_iter()
        .find(|dir| ASSETS.iter().all(|(_, file, _)| dir.join(file).is_file()));
    if found.is_none() {
        tracing::warn!(
            "GraphiQL's assets were not found under {}; the IDE page will load them from a CDN \
             (run scripts/bootstrap to install them)",
            configured.display()
        );
    }
    found
}

/// The IDE page; `assets` is the located asset directory, if any.
pub fn page(assets: Option<&Path>) -> Html<String> {
    match assets {
        Some(_) => Html(PAGE.to_string()),
        None => Html(
            async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .title("Obrol GraphQL")
                .finish(),
        ),
    }
}

/// Serves one of the four known asset files; anything else is 404.
pub async fn asset(
    State(assets): State<Option<PathBuf>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let Some(dir) = assets else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some((_, file, content_type)) = ASSETS.iter().find(|(url_name, _, _)| *url_name == name)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(dir.join(file)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(err) => {
            tracing::warn!(error = %err, file, "cannot read a GraphiQL asset");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}
