//! Credentials on long-lived WebSocket connections.
//!
//! A graphql-ws connection sends its token once, in `connection_init`, but may stay open for
//! hours and run many operations. Resolving the token once would let a socket keep powers its
//! user has lost (demoted, deactivated, logged out). So the connection keeps only the token,
//! and the token is resolved again (usually from the credential cache, so without a database
//! round trip) before every operation ([`SocketExecutor`]) and before every subscription
//! event ([`while_authorized`]).

use std::any::TypeId;
use std::future::Future;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, NoCache};
use async_graphql::{Data, Executor, Request, Response};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use super::loaders::TenantLoader;
use super::ObrolSchema;
use crate::app::AppState;
use crate::auth::{authenticate, ApiScope, Auth, Role};

/// The token a WebSocket connection authenticated with (none: anonymous).
#[derive(Clone, Debug)]
pub struct WsCredential {
    pub token: Option<String>,
}

impl WsCredential {
    /// Resolves the token as it stands now.
    pub async fn resolve(&self, state: &AppState) -> Auth {
        match authenticate(&state.db, &state.credentials, self.token.as_deref()).await {
            Ok(auth) => auth,
            // A database outage must not leave a socket with stale powers.
            Err(_) => Auth::Rejected,
        }
    }
}

/// The executor behind `/graphql/ws`: the schema, but every operation first resolves the
/// connection's token again and runs with the resulting `Auth` (and a DataLoader). Plain HTTP
/// requests do not pass through here, so they pay nothing for it.
#[derive(Clone)]
pub struct SocketExecutor {
    pub schema: ObrolSchema,
    pub state: AppState,
}

impl Executor for SocketExecutor {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        // graphql-ws runs every operation through `execute_stream`; this path has no socket.
        let schema = self.schema.clone();
        async move { schema.execute(request).await }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let schema = self.schema.clone();
        let state = self.state.clone();
        let credential = session_data
            .as_ref()
            .and_then(|data| data.get(&TypeId::of::<WsCredential>()))
            .and_then(|value| value.downcast_ref::<WsCredential>())
            .cloned();
        futures_util::stream::once(async move {
            let mut request = request;
            if let Some(credential) = credential {
                let auth = credential.resolve(&state).await;
                if let Auth::Actor(actor) = &auth {
                    let loader = TenantLoader {
                        db: state.db.clone(),
                        company_id: actor.company_id,
                    };
                    // No cache: a subscription's loader lives as long as the operation.
                    request = request.data(DataLoader::with_cache(loader, tokio::spawn, NoCache));
                }
                request = request.data(auth);
            }
            schema.execute_stream_with_session_data(request, session_data.unwrap_or_default())
        })
        .flatten()
        .boxed()
    }
}

/// Ends a subscription's `stream` before the first item its subscriber may no longer receive:
/// each item is delivered only after the connection's token is resolved again and still
/// carries `min_role` and `scope`. Outside WebSockets the stream is returned unchanged.
pub fn while_authorized<S, T>(
    ctx: &async_graphql::Context<'_>,
    stream: S,
    min_role: Role,
    scope: ApiScope,
) -> impl Stream<Item = T> + Send + 'static
where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    let credential = ctx.data_opt::<WsCredential>().cloned();
    let state = ctx.data_unchecked::<AppState>().clone();
    stream
        .then(move |item| {
            let credential = credential.clone();
            let state = state.clone();
            async move {
                let Some(credential) = credential else {
                    return Some(item);
                };
                match credential.resolve(&state).await {
                    Auth::Actor(actor) if actor.require(min_role, scope).is_ok() => Some(item),
                    _ => None,
                }
            }
        })
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(std::future::ready)
}
