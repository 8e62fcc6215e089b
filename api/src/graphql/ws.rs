//! Credentials on long-lived WebSocket connections.
//!
//! A graphql-ws connection sends its token once, in `connection_init`, but may stay open for
//! hours and run many operations. Resolving the token once would let a socket keep powers its
//! user has lost (demoted, deactivated, logged out). So the connection keeps only the token,
//! and the token is resolved again (usually from the credential cache, so without a database
//! round trip) before every operation and before every subscription event.

use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, NoCache};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerResult};
use futures_util::{Stream, StreamExt};

use super::loaders::TenantLoader;
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

/// Schema extension: for operations on a WebSocket, resolves the connection's token again
/// and puts the resulting `Auth` (and a DataLoader) into the operation's data.
pub struct ReauthenticateSockets;

impl ExtensionFactory for ReauthenticateSockets {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ReauthenticateSocketsExtension)
    }
}

struct ReauthenticateSocketsExtension;

#[async_trait::async_trait]
impl Extension for ReauthenticateSocketsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let (Some(credential), Some(state)) =
            (ctx.data_opt::<WsCredential>(), ctx.data_opt::<AppState>())
        else {
            return next.run(ctx, request).await;
        };
        let auth = credential.resolve(state).await;
        let mut request = request;
        if let Auth::Actor(actor) = &auth {
            let loader = TenantLoader {
                db: state.db.clone(),
                company_id: actor.company_id,
            };
            // No cache: a subscription's loader lives as long as the operation.
            request = request.data(DataLoader::with_cache(loader, tokio::spawn, NoCache));
        }
        next.run(ctx, request.data(auth)).await
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
