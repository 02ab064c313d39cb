//! The client's IP address, trusted-proxy aware (operations.md, "Rate limits").
//!
//! The TCP peer is the client unless it is a trusted proxy; then the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy is. A spoofed header from an
//! untrusted peer is ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The client IP of `req`, or `None` when the peer address is unknown (unix sockets, tests).
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(format!("{peer}:5000").parse().unwrap());
        if let Some(xff) = xff {
            req = req.insert_header(("x-forwarded-for", xff));
        }
        req.to_http_request()
    }

    #[test]
    fn untrusted_peer_ignores_forwarded_header() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(&request("203.0.113.9", Some("1.2.3.4")), &trusted);
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn trusted_peer_uses_rightmost_untrusted_entry() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(
            &request("10.0.0.2", Some("6.6.6.6, 198.51.100.7, 10.0.0.3")),
            &trusted,
        );
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
    }
}
