//! What an app may reach: the manifest's `outbound` destinations and
//! `pubsub` topics.
//!
//! An outbound rule is `scheme://host[:port]`: the port defaults to the scheme's
//! (80, 443), `*` allows any port, and a host of `*.example.com` allows
//! every subdomain of `example.com`. Nothing is reachable unless a rule
//! allows it.

use http::Uri;
use std::net::IpAddr;

/// The allow-list of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OutboundPolicy {
    rules: Vec<OutboundRule>,
}

/// One allowed destination pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboundRule {
    scheme: Scheme,
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any subdomain, stored as `.example.com`.
    Subdomains(String),
}

impl Scheme {
    fn parse(text: &str) -> Option<Scheme> {
        match text {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl OutboundPolicy {
    pub(crate) fn new(rules: Vec<OutboundRule>) -> Self {
        OutboundPolicy { rules }
    }

    /// Whether `uri` (absolute) is allowed.
    pub(crate) fn allows(&self, uri: &Uri) -> bool {
        let Some(scheme) = uri.scheme_str().and_then(Scheme::parse) else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        self.rules.iter().any(|rule| {
            rule.scheme == scheme
                && rule.port.is_none_or(|allowed| allowed == port)
                && rule.host.matches(&host)
        })
    }
}

impl OutboundPolicy {
    /// This policy with `more` rules besides its own.
    pub(crate) fn with(&self, more: &[OutboundRule]) -> OutboundPolicy {
        let mut rules = self.rules.clone();
        rules.extend_from_slice(more);
        OutboundPolicy { rules }
    }

    /// The rules as written (`https://api.example.com`, `http://*.x.com:*`).
    pub(crate) fn patterns(&self) -> Vec<String> {
        self.rules.iter().map(OutboundRule::pattern).collect()
    }

    /// Whether a name that resolved to `ip` may be reached on `port`: any
    /// public address; an internal one (loopback, private, link-local, ...)
    /// or one of the host's own (`own`) only if a rule for that port names
    /// that address, or names `localhost` for loopback.
    pub(crate) fn allows_address(&self, ip: IpAddr, port: u16, own: bool) -> bool {
        if !is_internal(ip) && !own {
            return true;
        }
        self.rules.iter().any(|rule| {
            rule.port.is_none_or(|allowed| allowed == port) && rule.host.names_address(ip)
        })
    }
}

/// Whether `ip` is one of this machine's addresses (a public one included):
/// only those can be bound. A guest must not reach the host, or services
/// beside it, through the machine's public address.
pub(crate) fn is_own(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Addresses inside the host or its networks: loopback, private ranges,
/// link-local (cloud metadata at 169.254.169.254 among them), shared
/// (CGNAT), unspecified, broadcast and multicast; IPv6 unique-local and
/// link-local, and IPv4 addresses written as IPv6.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [first, second, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || first == 0
                || (first == 100 && (64..128).contains(&second))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

impl OutboundRule {
    /// The rule as `scheme://host[:port|:*]`.
    fn pattern(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let host = self.host.pattern();
        match self.port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}:*"),
        }
    }

    /// Parse `scheme://host[:port|:*]`.
    pub(crate) fn parse(pattern: &str) -> Result<OutboundRule, String> {
        let invalid = |why: &str| format!("outbound rule {pattern:?}: {why}");
        let (scheme, rest) = pattern.split_once("://").ok_or_else(|| {
            invalid("expected scheme://host[:port], e.g. \"https://api.example.com\"")
        })?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| invalid("the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(invalid(
                "give only scheme, host and port (no path, query or user)",
            ));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| invalid("bad host or port"))?;
        let port = match port {
            None => Some(scheme.default_port()),
            Some("*") => None,
            Some(port) => Some(port.parse::<u16>().map_err(|_| invalid("bad port"))?),
        };
        let host = HostPattern::parse(host).map_err(invalid)?;
        Ok(OutboundRule { scheme, host, port })
    }
}

impl HostPattern {
    /// `name`, an IP address, or `*.domain`.
    fn parse(host: &str) -> Result<HostPattern, &'static str> {
        let host = host.to_ascii_lowercase();
        match host.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => {
                Ok(HostPattern::Subdomains(format!(".{domain}")))
            }
            _ if host.is_empty() || host.contains('*') => {
                Err("the host must be a name, an IP address or *.domain")
            }
            _ => Ok(HostPattern::Exact(host)),
        }
    }

    /// Whether `host` (lowercase, without brackets) is one it names.
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => exact == host,
            HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
        }
    }

    /// Whether it names `ip` itself (or `localhost`, for loopback).
    fn names_address(&self, ip: IpAddr) -> bool {
        match self {
            HostPattern::Exact(host) => {
                host.parse::<IpAddr>().is_ok_and(|named| named == ip)
                    || (host == "localhost" && ip.is_loopback())
            }
            HostPattern::Subdomains(_) => false,
        }
    }

    fn pattern(&self) -> String {
        match self {
            HostPattern::Exact(host) => host.clone(),
            HostPattern::Subdomains(suffix) => format!("*{suffix}"),
        }
    }
}

/// Where an app may open TCP connections (`tcp_outbound`): rules of
/// `host:port` or `host:*`, hosts as in `outbound`. Nothing is reachable
/// unless a rule allows it, and a name resolving to an internal address
/// only if a rule names that address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TcpPolicy {
    rules: Vec<TcpRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TcpRule {
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
}

impl TcpPolicy {
    /// Parse rules of `host:port` or `host:*`.
    pub(crate) fn new(patterns: &[String]) -> Result<TcpPolicy, String> {
        let mut rules = Vec::new();
        for pattern in patterns {
            let invalid = |why: &str| format!("tcp_outbound rule {pattern:?}: {why}");
            let Some((host, Some(port))) = split_host_port(pattern) else {
                return Err(invalid(
                    "expected host:port or host:*, e.g. \"db.internal:5432\"",
                ));
            };
            let port = match port {
                "*" => None,
                port => Some(port.parse::<u16>().map_err(|_| invalid("bad port"))?),
            };
            let host = HostPattern::parse(host).map_err(invalid)?;
            rules.push(TcpRule { host, port });
        }
        Ok(TcpPolicy { rules })
    }

    /// Whether it grants nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The names and IP addresses its rules give for `port` (wildcard
    /// names cannot be resolved, so they are left out).
    pub(crate) fn hosts_for(&self, port: u16) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(move |rule| match &rule.host {
            HostPattern::Exact(host) if rule.port.is_none_or(|allowed| allowed == port) => {
                Some(host.as_str())
            }
            _ => None,
        })
    }

    /// Whether `host:port` is allowed (before resolution).
    pub(crate) fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.rules
            .iter()
            .any(|rule| rule.port.is_none_or(|allowed| allowed == port) && rule.host.matches(&host))
    }

    /// Whether `ip:port`, which a name resolved to, may be reached: any
    /// public address; an internal one or one of the machine's own only if
    /// a rule for that port names the address itself (or `localhost`).
    pub(crate) fn allows_address(&self, ip: IpAddr, port: u16, own: bool) -> bool {
        (!is_internal(ip) && !own)
            || self.rules.iter().any(|rule| {
                rule.port.is_none_or(|allowed| allowed == port) && rule.host.names_address(ip)
            })
    }

    /// The rules as written.
    pub(crate) fn patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|rule| match rule.port {
                Some(port) => format!("{}:{port}", rule.host.pattern()),
                None => format!("{}:*", rule.host.pattern()),
            })
            .collect()
    }
}

/// The topics an app may publish, wait on and subscribe to: exact names, or
/// a prefix ending in `*` (`room.*`). Nothing is granted by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TopicPolicy {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl TopicPolicy {
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        let mut policy = TopicPolicy::default();
        for pattern in patterns {
            let (name, is_prefix) = match pattern.strip_suffix('*') {
                Some(prefix) => (prefix, true),
                None => (pattern.as_str(), false),
            };
            if !name.chars().all(is_topic_char) || (name.is_empty() && !is_prefix) {
                return Err(format!(
                    "topic pattern {pattern:?}: use letters, digits and . _ - : (a trailing * matches any rest)"
                ));
            }
            if is_prefix {
                policy.prefixes.push(name.to_owned());
            } else {
                policy.exact.push(name.to_owned());
            }
        }
        Ok(policy)
    }

    /// The patterns as written (`chat`, `room.*`).
    pub(crate) fn patterns(&self) -> Vec<String> {
        self.exact
            .iter()
            .cloned()
            .chain(self.prefixes.iter().map(|prefix| format!("{prefix}*")))
            .collect()
    }

    /// Whether `topic` is granted.
    pub(crate) fn allows(&self, topic: &str) -> bool {
        !topic.is_empty()
            && topic.chars().all(is_topic_char)
            && (self.exact.iter().any(|exact| exact == topic)
                || self
                    .prefixes
                    .iter()
                    .any(|prefix| topic.starts_with(prefix.as_str())))
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            port => Some((host, Some(port.strip_prefix(':')?))),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((text, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_rules_name_host_and_port() {
        let rules = ["db.internal:5432", "*.cache.example:*", "127.0.0.1:6379"];
        let policy = TcpPolicy::new(&rules.map(str::to_owned)).expect("valid rules");
        assert!(policy.allows("db.internal", 5432));
        assert!(policy.allows("DB.Internal", 5432));
        assert!(!policy.allows("db.internal", 5433));
        assert!(policy.allows("a.cache.example", 1));
        assert!(!policy.allows("cache.example", 1));
        assert!(policy.allows("127.0.0.1", 6379));
        assert!(policy.allows_address("127.0.0.1".parse().expect("ip"), 6379, true));
        // A rule names loopback for one port only.
        assert!(!policy.allows_address("127.0.0.1".parse().expect("ip"), 22, true));
        assert!(!policy.allows_address("10.0.0.1".parse().expect("ip"), 5432, false));
        assert!(policy.allows_address("93.184.216.34".parse().expect("ip"), 1, false));
        assert_eq!(policy.patterns(), rules);
        for bad in ["db.internal", "db:port", "*:80", ":80"] {
            assert!(TcpPolicy::new(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    fn policy(rules: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(
            rules
                .iter()
                .map(|rule| OutboundRule::parse(rule).expect("valid rule"))
                .collect(),
        )
    }

    fn allowed(policy: &OutboundPolicy, url: &str) -> bool {
        policy.allows(&url.parse().expect("valid URL"))
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allowed(&OutboundPolicy::default(), "http://127.0.0.1/"));
    }

    #[test]
    fn scheme_host_and_port_must_match() {
        let p = policy(&["https://api.example.com", "http://127.0.0.1:*"]);
        assert!(allowed(&p, "https://api.example.com/v1?q=1"));
        assert!(allowed(&p, "https://API.example.com:443/"));
        assert!(!allowed(&p, "http://api.example.com/"));
        assert!(!allowed(&p, "https://api.example.com:8443/"));
        assert!(!allowed(&p, "https://evil.com/"));
        assert!(allowed(&p, "http://127.0.0.1:9000/x"));
        assert!(allowed(&p, "http://127.0.0.1/x"));
        assert!(!allowed(&p, "https://127.0.0.1/x"));
    }

    #[test]
    fn subdomain_wildcards() {
        let p = policy(&["https://*.example.com"]);
        assert!(allowed(&p, "https://a.example.com/"));
        assert!(allowed(&p, "https://a.b.example.com/"));
        assert!(!allowed(&p, "https://example.com/"));
        assert!(!allowed(&p, "https://badexample.com/"));
    }

    #[test]
    fn ipv6_hosts() {
        let p = policy(&["http://[::1]:8080"]);
        assert!(allowed(&p, "http://[::1]:8080/"));
        assert!(!allowed(&p, "http://[::1]:8081/"));
    }

    #[test]
    fn topics_are_granted_exactly_or_by_prefix() {
        let topics = TopicPolicy::new(&["chat".into(), "room.*".into()]).expect("valid");
        assert!(topics.allows("chat"));
        assert!(!topics.allows("chatter"));
        assert!(topics.allows("room.42"));
        assert!(!topics.allows("rooms"));
        assert!(!topics.allows(""));
        assert!(!TopicPolicy::default().allows("chat"));
        assert!(TopicPolicy::new(&["a b".into()]).is_err());
        assert!(
            TopicPolicy::new(&["*".into()])
                .expect("everything")
                .allows("anything")
        );
    }

    #[test]
    fn internal_addresses_need_a_rule_that_names_them() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("an address");
        let public = policy(&["https://*.example.com"]);
        assert!(public.allows_address(ip("93.184.216.34"), 443, false));
        // The machine's own public address is refused like an internal one.
        assert!(!public.allows_address(ip("93.184.216.34"), 443, true));
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                !public.allows_address(ip(internal), 443, false),
                "{internal}"
            );
        }
        let named = policy(&[
            "http://10.1.2.3:*",
            "http://localhost:8080",
            "http://*.tenant.test:*",
        ]);
        assert!(named.allows_address(ip("10.1.2.3"), 5432, false));
        assert!(!named.allows_address(ip("10.1.2.4"), 80, false));
        assert!(
            named.allows_address(ip("127.0.0.1"), 8080, false),
            "localhost names loopback"
        );
        assert!(named.allows_address(ip("::1"), 8080, false));
        // Only for the port its rule names: a wildcard rule on a name that
        // resolves to loopback reaches no other loopback port.
        assert!(!named.allows_address(ip("127.0.0.1"), 6379, false));
        assert!(!named.allows_address(ip("169.254.169.254"), 80, false));
    }

    #[test]
    fn bad_rules_are_explained() {
        for rule in [
            "api.example.com",
            "ftp://x",
            "https://x/path",
            "https://x:port",
            "https://*",
        ] {
            assert!(
                OutboundRule::parse(rule).is_err(),
                "{rule} should be rejected"
            );
        }
    }
}
