//! Where the wallet may post a merchant's webhooks. A webhook URL is the
//! merchant's text, and the wallet sends a request there: without a guard
//! a merchant could make the wallet call its own admin ports, the cloud's
//! metadata service (169.254.169.254) or anything on the private network
//! (server-side request forgery).
//!
//! Outside the sandbox, an endpoint is `https` and every address it is
//! reached at is public: not loopback, private, link-local, CGNAT, multicast,
//! broadcast, documentation or unspecified (IPv4-mapped IPv6 addresses are
//! judged as the IPv4 address they carry). Names are judged after DNS
//! resolution, by the resolver the client connects with, so the address
//! checked is the address connected to (a name that resolves to a public
//! address when set and to 127.0.0.1 when delivered is refused then).
//! The sandbox allows `http` and loopback, for receivers on the machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which endpoints are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// `http` and non-public addresses allowed (the sandbox).
    pub allow_local: bool,
}

impl EndpointPolicy {
    /// Production: `https` to public addresses only.
    pub const PUBLIC_HTTPS: Self = Self { allow_local: false };
    /// The sandbox: also `http` and addresses on this machine or network.
    pub const SANDBOX: Self = Self { allow_local: true };

    /// Why `url` may not be an endpoint, if it may not. Names are checked
    /// again, resolved, when a delivery connects.
    pub fn refusal(&self, url: &url::Url) -> Option<&'static str> {
        if self.allow_local {
            return None;
        }
        if url.scheme() != "https" {
            return Some("an https URL");
        }
        let ip = match url.host()? {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if d == "localhost" || d.ends_with(".localhost") {
                    return Some("a public host, not localhost");
                }
                return None;
            }
        };
        (!is_public(ip))
            .then_some("a public address, not a loopback, private, link-local or reserved one")
    }
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // CGNAT, 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24; benchmarking, 198.18.0.0/15.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // Documentation 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // IPv4-compatible and NAT64 well-known prefixes carry v4 addresses.
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

/// A DNS resolver that keeps only the addresses `policy` allows: the
/// client then connects only to those, so the check cannot be raced by a
/// second resolution.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: EndpointPolicy,
}

#[derive(Debug, thiserror::Error)]
#[error("the endpoint resolves to no public address")]
struct NoPublicAddress;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.allow_local || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(NoPublicAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client webhooks are posted with: no redirects (a redirect to
/// a private address would bypass the check), the guarded resolver.
pub fn webhook_client(policy: EndpointPolicy, timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .build()
        .expect("a plain HTTP client builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        EndpointPolicy::PUBLIC_HTTPS
            .refusal(&url::Url::parse(url).unwrap())
            .is_some()
    }

    #[test]
    fn only_https_to_public_addresses_outside_the_sandbox() {
        for url in [
            "http://shop.example/hooks",
            "https://127.0.0.1/hooks",
            "https://localhost:8443/",
            "https://api.localhost/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://224.0.0.1/",
            "https://0.0.0.0/",
            "https://255.255.255.255/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
        for url in [
            "https://shop.example/hooks",
            "https://93.184.216.34/",
            "https://[2606:4700::1111]/",
        ] {
            assert!(!refused(url), "{url} is allowed");
        }
        let local = url::Url::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!(EndpointPolicy::SANDBOX.refusal(&local), None);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_when_connecting() {
        let resolver = GuardedResolver {
            policy: EndpointPolicy::PUBLIC_HTTPS,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(resolver.resolve(name).await.is_err());
        let sandbox = GuardedResolver {
            policy: EndpointPolicy::SANDBOX,
        };
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = sandbox.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
