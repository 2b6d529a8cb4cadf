//! The client's address: the peer, or, behind trusted proxies, the right-most untrusted entry
//! of `X-Forwarded-For`. Entries a client wrote itself sit to the left of what our proxies
//! appended, so they are never believed.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

/// Resolves the client address from the peer address and the `X-Forwarded-For` values.
pub fn resolve<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted(peer, proxies) {
        return Some(peer);
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted(ip, proxies) {
                    break;
                }
            }
            // Garbage in the chain: stop at the last address we could vouch for.
            Err(_) => break,
        }
    }
    Some(client)
}

pub fn client_ip(req: &HttpRequest, proxies: &[IpNet]) -> Option<IpAddr> {
    let values = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    resolve(req.peer_addr().map(|a| a.ip()), values, proxies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let got = resolve(Some(ip("198.51.100.1")), ["203.0.113.5"].into_iter(), &[]);
        assert_eq!(got, Some(ip("198.51.100.1")));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = ["10.0.0.0/8".parse().unwrap()];
        let chain = ["1.1.1.1, 203.0.113.5", "10.0.0.2"];
        let got = resolve(Some(ip("10.0.0.3")), chain.into_iter(), &proxies);
        assert_eq!(got, Some(ip("203.0.113.5")));
        let garbage = resolve(Some(ip("10.0.0.3")), ["x, 10.0.0.9"].into_iter(), &proxies);
        assert_eq!(garbage, Some(ip("10.0.0.9")));
    }
}
