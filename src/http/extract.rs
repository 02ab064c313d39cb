//! Request extractors with the hub's error contract.
//!
//! [`Json`] replaces actix's: it requires `application/json` (415), caps the body (413), names
//! the failing field of a type error or unknown field (400 `VALIDATION_ERROR`; malformed JSON
//! is 400 `BAD_REQUEST`), then runs the type's `garde` rules and reports them per field.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{ApiError, FieldError};

/// Default request body cap (conventions.md: 1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A validated JSON body.
#[derive(Debug)]
pub struct Json<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        })
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::BadRequest("could not read the request body".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses and validates a JSON document.
pub fn parse_json<T>(bytes: &[u8]) -> Result<T, ApiError>
where
    T: DeserializeOwned + garde::Validate<Context = ()>,
{
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let inner = e.inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::BadRequest(format!("malformed JSON: {inner}").into())
            }
            _ => {
                let message = inner.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                let path = e.path().to_string();
                let field = if path == "." {
                    field_named_in(&message).unwrap_or_else(|| "body".to_owned())
                } else {
                    path
                };
                ApiError::Validation {
                    message: format!("{field}: {message}"),
                    fields: vec![FieldError { field, message }],
                }
            }
        }
    })?;
    value.validate().map_err(|report| {
        let fields: Vec<FieldError> = report
            .iter()
            .map(|(path, error)| FieldError {
                field: path.to_string(),
                message: error.message().to_string(),
            })
            .collect();
        let message = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::Validation { message, fields }
    })?;
    Ok(value)
}

/// serde reports unknown and missing fields at the parent's path; the field's name is in the
/// message (`unknown field `x`, expected ...`, `missing field `x``).
fn field_named_in(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    Some(rest.split('`').next()?.to_owned())
}

impl<T> FromRequest for Json<T>
where
    T: DeserializeOwned + garde::Validate<Context = ()> + 'static,
{
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json(&req) {
                return Err(ApiError::UnsupportedMediaType);
            }
            let bytes = read_body(&req, &mut payload, DEFAULT_BODY_LIMIT).await?;
            parse_json(&bytes).map(Json)
        })
    }
}

/// Path segments that do not parse (a malformed id) are answered like a missing resource.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into())
}

/// Query strings that do not parse are a 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::BadRequest(format!("invalid query: {e}").into()).into())
}

/// For `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>` PATCH
/// field: absent → `None` (unchanged), `null` → `Some(None)` (cleared), a value → `Some(Some)`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, garde::Validate)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[garde(length(min = 1, max = 5))]
        name: String,
        #[garde(range(min = 1, max = 10))]
        count: i64,
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation { fields, .. } => fields.into_iter().map(|f| f.field).collect(),
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_bad_request() {
        assert!(matches!(
            parse_json::<Body>(b"{"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn unknown_field_and_wrong_type_name_the_field() {
        let e = parse_json::<Body>(br#"{"name":"a","count":1,"extra":true}"#).unwrap_err();
        assert_eq!(fields(e), ["extra"]);
        let e = parse_json::<Body>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(fields(e), ["count"]);
        let e = parse_json::<Body>(br#"{"name":"a","count":"x"}"#).unwrap_err();
        assert_eq!(fields(e), ["count"]);
        let e = parse_json::<Body>(br#"{"name":"a","count":99999999999999999999999}"#).unwrap_err();
        assert_eq!(fields(e), ["count"]);
    }

    #[test]
    fn garde_rules_are_reported_per_field() {
        let e = parse_json::<Body>(br#"{"name":"toolong","count":0}"#).unwrap_err();
        let mut f = fields(e);
        f.sort();
        assert_eq!(f, ["count", "name"]);
        assert!(parse_json::<Body>(br#"{"name":"ok","count":3}"#).is_ok());
    }
}
