//! Which addresses a webhook may reach: public ones, unless the table says
//! `'allow-private-network' = 'true'`.
//!
//! A query file names the URL, so without this check a webhook table is a way
//! to make the engine POST into its own network (server-side request
//! forgery): a cloud metadata service on a link-local address, an admin port
//! on loopback. The check runs twice. At declaration, a URL whose host is an
//! address (or `localhost`) is refused outright. At delivery, names go
//! through [`PublicOnlyResolver`], which refuses a name if any address it
//! resolves to is not public, and hands the HTTP client exactly the addresses
//! it checked, so a name cannot resolve differently between the check and
//! the connection. Redirects are never followed (see the delivery client), so
//! a public endpoint cannot bounce a request inward either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is an address a webhook must not reach by default: loopback,
/// private, link-local, unique-local, shared (carrier-grade NAT),
/// unspecified, broadcast or multicast, IPv4-mapped forms included.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_non_public_v4(v4),
            None => is_non_public_v6(v6),
        },
    }
}

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [first, second, ..] = ip.octets();
    let shared_address_space = first == 100 && (64..128).contains(&second);
    let this_network = first == 0;
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_broadcast() || ip.is_multicast() || shared_address_space || this_network
}

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || ip.is_unique_local() || ip.is_unicast_link_local() || ip.is_multicast()
}

/// Why a URL's host is refused at declaration, if it is: a non-public
/// address written as such, or `localhost`.
pub(crate) fn refused_host(url: &Url) -> Option<String> {
    // An IPv6 host comes bracketed, as in the URL.
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return is_non_public(ip).then(|| format!("{ip} is not a public address"));
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    (name == "localhost" || name.ends_with(".localhost")).then(|| format!("{name} is the loopback interface"))
}

/// The URL as it may be shown and stored: without user name, password or
/// query, which may hold credentials.
pub(crate) fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have credentials, which is fine.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A DNS resolver that fails for names resolving to any non-public address.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(refused) = addresses.iter().find(|address| is_non_public(address.ip())) {
                return Err(format!(
                    "{host} resolves to {}, which is not a public address (set 'allow-private-network' = 'true' to allow it)",
                    refused.ip()
                )
                .into());
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
        ] {
            assert!(is_non_public(address.parse().unwrap()), "{address}");
        }
        for address in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "192.169.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(!is_non_public(address.parse().unwrap()), "{address}");
        }
    }

    #[test]
    fn literal_private_hosts_and_localhost_are_refused_at_declaration() {
        let refused = |url: &str| refused_host(&Url::parse(url).unwrap());
        assert!(refused("http://127.0.0.1:8080/hook").is_some());
        assert!(refused("https://[::1]/hook").is_some());
        assert!(refused("https://169.254.169.254/latest/meta-data").is_some());
        assert!(refused("http://localhost:9000/").is_some());
        assert!(refused("http://api.LOCALHOST./").is_some());
        assert_eq!(refused("https://93.184.215.14/hook"), None);
        assert_eq!(refused("https://partner.example.com/hook"), None);
    }

    #[test]
    fn shown_urls_lose_credentials_and_queries() {
        let url = Url::parse("https://user:pass@partner.example.com:8443/hooks/a?token=abc#x").unwrap();
        assert_eq!(redacted_url(&url), "https://partner.example.com:8443/hooks/a");
    }

    #[test]
    fn names_resolving_to_loopback_are_refused_at_delivery() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let error = runtime
            .block_on(PublicOnlyResolver.resolve("localhost".parse().unwrap()))
            .err()
            .expect("localhost resolves to loopback");
        assert!(error.to_string().contains("not a public address"), "{error}");
    }
}
