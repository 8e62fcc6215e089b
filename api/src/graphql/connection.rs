//! Relay connections: `first`/`after` in, `edges`/`pageInfo`/`totalCount` out.
//! Pages are keyset pages on UUIDv7 ids (time ordered), so a page costs an index range scan
//! however deep it is. The cursor is the id of the edge's node, opaque to clients.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{OutputType, SimpleObject};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

#[derive(SimpleObject)]
pub struct Totals {
    /// How many items there are in all, across pages.
    pub total_count: i64,
}

pub type CountedConnection<N> = Connection<String, N, Totals, EmptyFields>;

/// A validated page request. `fetch` is one more than the page size, to learn whether
/// another page follows without a second query.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub size: usize,
}

impl PageRequest {
    pub fn fetch(&self) -> i64 {
        self.size as i64 + 1
    }
}

pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn decode_cursor(cursor: &str) -> ApiResult<Uuid> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::validation("the 'after' cursor is not one this API gave out"))
}

pub fn page_request(first: Option<i32>, after: Option<String>) -> ApiResult<PageRequest> {
    let size = first.unwrap_or(DEFAULT_PAGE);
    if !(0..=MAX_PAGE).contains(&size) {
        return Err(ApiError::validation(format!(
            "'first' must be between 0 and {MAX_PAGE}"
        )));
    }
    let after = after.as_deref().map(decode_cursor).transpose()?;
    Ok(PageRequest {
        after,
        size: size as usize,
    })
}

/// Builds the connection from up to `request.fetch()` rows in page order.
pub fn connection<R, N: OutputType>(
    mut rows: Vec<R>,
    request: PageRequest,
    total_count: i64,
    id_of: impl Fn(&R) -> Uuid,
    node: impl Fn(R) -> N,
) -> CountedConnection<N> {
    let has_next = rows.len() > request.size;
    rows.truncate(request.size);
    let mut connection = Connection::with_additional_fields(
        request.after.is_some(),
        has_next,
        Totals { total_count },
    );
    connection.edges.extend(
        rows.into_iter()
            .map(|row| Edge::new(encode_cursor(id_of(&row)), node(row))),
    );
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_a_validation_error() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        assert_eq!(
            decode_cursor("not a cursor").unwrap_err().code(),
            "VALIDATION"
        );
        assert!(page_request(Some(101), None).is_err());
        assert!(page_request(Some(-1), None).is_err());
        assert_eq!(page_request(None, None).unwrap().fetch(), 21);
    }
}
