//! Rate limits (operations.md, "Rate limits"), with governor's GCRA in process.
//!
//! Buckets: anonymous callers by client IP; users (and their instance tokens) by user id; API
//! keys by key, at each key's own rate; sign-in routes by client IP and, in the handler, by the
//! submitted email. Health, metrics and preflights are exempt. Every limited response carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the
//! bucket is full again); a refusal is 429 `RATE_LIMITED` with `Retry-After`. With several
//! nodes each enforces its own budget until the Redis-backed limiter arrives with scale-out.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::client_ip::client_ip;
use crate::auth::principal::{authenticate, credential, PrincipalKind};
use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

type Keyed<K> = DefaultKeyedRateLimiter<K, StateInformationMiddleware>;
/// A limiter with its rate per minute (for the headers).
type Limiter<K> = (u32, Keyed<K>);

/// Routes limited per client IP at the sign-in rate.
const SIGN_IN_ROUTES: [&str; 3] = [
    "/api/v1/auth/login",
    "/api/v1/auth/sso",
    "/api/v1/auth/refresh",
];

/// The outcome of one check.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Requests per minute.
    pub limit: u32,
    /// Left in the current window.
    pub remaining: u32,
    /// Seconds until the bucket is full again (or, refused, until a retry can pass).
    pub reset_secs: u64,
    /// Whether the request was refused.
    pub refused: bool,
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
}

fn keyed<K: Hash + Eq + Clone>(per_minute: u32) -> Keyed<K> {
    RateLimiter::keyed(quota(per_minute)).with_middleware::<StateInformationMiddleware>()
}

/// Every limiter of the node.
pub struct RateLimits {
    enabled: bool,
    anonymous: Limiter<IpAddr>,
    users: Limiter<Uuid>,
    sign_in_ip: Limiter<IpAddr>,
    sign_in_email: Limiter<String>,
    api_keys: Mutex<HashMap<u32, Arc<Limiter<Uuid>>>>,
}

impl RateLimits {
    /// Limiters at the configured rates.
    pub fn new(config: &Config) -> Self {
        Self {
            enabled: config.rate_limit_enabled,
            anonymous: (
                config.rate_limit_anon_per_min,
                keyed(config.rate_limit_anon_per_min),
            ),
            users: (
                config.rate_limit_user_per_min,
                keyed(config.rate_limit_user_per_min),
            ),
            sign_in_ip: (
                config.rate_limit_login_per_min,
                keyed(config.rate_limit_login_per_min),
            ),
            sign_in_email: (
                config.rate_limit_login_per_min,
                keyed(config.rate_limit_login_per_min),
            ),
            api_keys: Mutex::new(HashMap::new()),
        }
    }

    fn check<K: Hash + Eq + Clone>((limit, limiter): &Limiter<K>, key: &K) -> Budget {
        match limiter.check_key(key) {
            Ok(snapshot) => Budget {
                limit: *limit,
                remaining: snapshot.remaining_burst_capacity(),
                // GCRA refills continuously; an emptied bucket is full again within a minute.
                reset_secs: 60,
                refused: false,
            },
            Err(not_until) => Budget {
                limit: *limit,
                remaining: 0,
                reset_secs: not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_secs()
                    .max(1),
                refused: true,
            },
        }
    }

    /// Keys are limited at their own rate: one keyed limiter per distinct rate, keyed by key.
    fn check_api_key(&self, key_id: Uuid, per_minute: u32) -> Budget {
        let limiter = {
            let mut by_rate = self.api_keys.lock().unwrap_or_else(|p| p.into_inner());
            by_rate
                .entry(per_minute)
                .or_insert_with(|| Arc::new((per_minute, keyed(per_minute))))
                .clone()
        };
        Self::check(&limiter, &key_id)
    }

    /// The per-email sign-in limit (checked by the handler once the body is read).
    pub fn check_login_email(&self, email: &str) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let budget = Self::check(&self.sign_in_email, &email.to_lowercase());
        if budget.refused {
            return Err(ApiError::RateLimited {
                retry_after_secs: budget.reset_secs,
            });
        }
        Ok(())
    }
}

fn exempt(req: &ServiceRequest) -> bool {
    let path = req.path();
    req.method() == Method::OPTIONS || path.starts_with("/health") || path == "/metrics"
}

fn set_headers(headers: &mut actix_web::http::header::HeaderMap, budget: &Budget) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-ratelimit-limit", budget.limit.to_string());
    set("x-ratelimit-remaining", budget.remaining.to_string());
    set("x-ratelimit-reset", budget.reset_secs.to_string());
}

/// The middleware function (wrap with `actix_web::middleware::from_fn(rate_limit)`).
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state.filter(|s| s.rate_limits.enabled && !exempt(&req)) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let limits = &state.rate_limits;
    let ip = client_ip(req.request(), &state.config.trusted_proxies);
    let budget = if SIGN_IN_ROUTES.contains(&req.path()) {
        ip.map(|ip| RateLimits::check(&limits.sign_in_ip, &ip))
    } else {
        // Resolve the caller once; the `Principal` extractor reuses it. A bad credential falls
        // back to the anonymous bucket and the handler answers 401.
        let principal = match credential(req.request()) {
            Ok(Some(credential)) => authenticate(&state, &credential).await.ok(),
            _ => None,
        };
        match principal {
            Some(principal) => {
                let budget = match (&principal.kind, principal.user_id) {
                    (
                        PrincipalKind::ApiKey {
                            key_id,
                            rate_limit_per_minute,
                        },
                        _,
                    ) => limits.check_api_key(*key_id, *rate_limit_per_minute),
                    (_, Some(user_id)) => RateLimits::check(&limits.users, &user_id),
                    (_, None) => RateLimits::check(
                        &limits.anonymous,
                        &ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    ),
                };
                req.extensions_mut().insert(principal);
                Some(budget)
            }
            None => ip.map(|ip| RateLimits::check(&limits.anonymous, &ip)),
        }
    };
    let Some(budget) = budget else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if budget.refused {
        state
            .metrics
            .auth_attempts
            .with_label_values(&["rate_limited"])
            .inc_by(u64::from(SIGN_IN_ROUTES.contains(&req.path())));
        let mut response = ApiError::RateLimited {
            retry_after_secs: budget.reset_secs,
        }
        .error_response();
        set_headers(response.headers_mut(), &budget);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    set_headers(res.headers_mut(), &budget);
    Ok(res.map_into_left_body())
}
