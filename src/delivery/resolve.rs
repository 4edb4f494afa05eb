//! Name resolution for the network outputs without a thread per connection where none is
//! needed. With a timeout set, ureq's resolver runs each lookup on a thread of its own so that
//! a hung DNS server cannot outlast the timeout; that is a thread created and destroyed per
//! new connection, CPU the function pays for. An IP address needs no lookup, and `localhost`
//! is loopback by definition (RFC 6761), so those are answered here; every other name goes to
//! ureq's resolver, timeout and all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

#[derive(Debug, Default)]
pub struct LiteralFirst(DefaultResolver);

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some((ips, port)) = literal(uri) else {
            return self.0.resolve(uri, config, timeout);
        };
        let mut addrs = self.empty();
        for ip in ips.into_iter().flatten() {
            addrs.push(SocketAddr::new(ip, port));
        }
        Ok(addrs)
    }
}

/// The addresses of a URI whose host is an IP address or `localhost`, and its port.
fn literal(uri: &Uri) -> Option<([Option<IpAddr>; 2], u16)> {
    let authority = uri.authority()?;
    let port = authority.port_u16().or(match uri.scheme_str()? {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    })?;
    let host = authority.host();
    if host.eq_ignore_ascii_case("localhost") {
        let loopback = [
            Some(Ipv4Addr::LOCALHOST.into()),
            Some(Ipv6Addr::LOCALHOST.into()),
        ];
        return Some((loopback, port));
    }
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(([Some(ip), None], port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(url: &str) -> Option<Vec<String>> {
        let (ips, port) = literal(&url.parse().unwrap())?;
        Some(
            ips.into_iter()
                .flatten()
                .map(|ip| SocketAddr::new(ip, port).to_string())
                .collect(),
        )
    }

    #[test]
    fn addresses_and_localhost_need_no_lookup() {
        assert_eq!(
            addrs("http://127.0.0.1:4318/v1/logs").unwrap(),
            ["127.0.0.1:4318"]
        );
        assert_eq!(addrs("https://[::1]/x").unwrap(), ["[::1]:443"]);
        assert_eq!(addrs("http://10.0.0.7/").unwrap(), ["10.0.0.7:80"]);
        assert_eq!(
            addrs("https://LocalHost:8443/").unwrap(),
            ["127.0.0.1:8443", "[::1]:8443"]
        );
        assert_eq!(addrs("https://api.honeycomb.io/v1/traces"), None);
        assert_eq!(addrs("http://127.0.0.1.nip.io:80/"), None);
    }
}
