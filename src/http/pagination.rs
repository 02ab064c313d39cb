//! Cursor pagination (conventions.md): `limit` (default 50, max 200) and an opaque `cursor`
//! (base64 of the sort key); lists answer `{items, next_cursor}`.

use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// `?limit=&cursor=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The validated page size.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=200).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::field("limit", "must be 1-200")),
        }
    }

    /// The id the page starts after (for lists ordered by UUIDv7 id).
    pub fn after_id(&self) -> Result<Option<Uuid>, ApiError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| ApiError::field("cursor", "invalid cursor"))?;
        Uuid::from_slice(&bytes)
            .map(Some)
            .map_err(|_| ApiError::field("cursor", "invalid cursor"))
    }
}

/// An opaque cursor for a list keyed by more than an id: the URL-safe base64 of the key's
/// JSON. Answers `None` only if the key cannot be serialized (it always can).
pub fn encode_cursor<K: Serialize>(key: &K) -> Option<String> {
    serde_json::to_vec(key)
        .ok()
        .map(|bytes| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Reads a cursor made by [`encode_cursor`]; 400 naming `cursor` when it is not one.
pub fn decode_cursor<K: serde::de::DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field("cursor", "invalid cursor"))
}

/// A list page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `limit + 1` fetched rows keyed by `id`: the extra row only says there is
    /// more.
    pub fn from_rows<R>(
        rows: Vec<R>,
        limit: i64,
        id: impl Fn(&R) -> Uuid,
        map: impl Fn(R) -> T,
    ) -> Self {
        Self::with_cursor(
            rows,
            limit,
            |last| {
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id(last).as_bytes()))
            },
            map,
        )
    }

    /// A page from `limit + 1` fetched rows whose next cursor is made from the last row kept.
    pub fn with_cursor<R>(
        mut rows: Vec<R>,
        limit: i64,
        cursor: impl Fn(&R) -> Option<String>,
        map: impl Fn(R) -> T,
    ) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().and_then(cursor)
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }

    /// A complete, single page.
    pub fn all(items: Vec<T>) -> Self {
        Page {
            items,
            next_cursor: None,
        }
    }
}
