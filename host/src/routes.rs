//! Which app serves a request: each app claims host names (exact, or
//! `*.example.com` for every subdomain) and/or path prefixes; an app with
//! both needs both to match. The most specific claim wins: an exact host
//! over a wildcard over none (a longer wildcard over a shorter), then the
//! longest path prefix. Two apps may not make the same claim.

use std::collections::HashMap;

/// One app's claim: a host pattern (none: any host) and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Claim {
    host: HostPattern,
    prefix: String,
}

/// A host name to match, lower-cased, without a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Subdomains(String),
}

impl HostPattern {
    /// `api.example.com`, or `*.example.com` for its subdomains.
    pub(crate) fn parse(pattern: &str) -> Result<HostPattern, String> {
        let pattern = pattern.trim().to_ascii_lowercase();
        let valid = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        match pattern.strip_prefix("*.") {
            Some(domain) if valid(domain) => Ok(HostPattern::Subdomains(format!(".{domain}"))),
            None if valid(&pattern) => Ok(HostPattern::Exact(pattern)),
            _ => Err(format!(
                "host {pattern:?}: use a name such as \"api.example.com\" or \"*.example.com\" (no port, no scheme)"
            )),
        }
    }

    /// Whether `host` (lower-cased, without a port) is one it names.
    pub(crate) fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Exact(exact), Some(host)) => exact == host,
            (HostPattern::Subdomains(suffix), Some(host)) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
            (_, None) => false,
        }
    }

    /// Exact beats any wildcard; a longer wildcard beats a shorter one.
    pub(crate) fn rank(&self) -> usize {
        match self {
            HostPattern::Any => 0,
            HostPattern::Subdomains(suffix) => 1 + suffix.len(),
            HostPattern::Exact(_) => usize::MAX,
        }
    }

    fn describe(&self) -> String {
        match self {
            HostPattern::Any => "any host".to_owned(),
            HostPattern::Exact(host) => format!("host {host:?}"),
            HostPattern::Subdomains(suffix) => format!("host \"*{suffix}\""),
        }
    }
}

impl Claim {
    /// The claims of an app with `hosts` (empty: any host) and `routes`.
    pub(crate) fn all(hosts: &[String], routes: &[String]) -> Result<Vec<Claim>, String> {
        let hosts = if hosts.is_empty() {
            vec![HostPattern::Any]
        } else {
            hosts
                .iter()
                .map(|host| HostPattern::parse(host))
                .collect::<Result<_, _>>()?
        };
        Ok(hosts
            .iter()
            .flat_map(|host| {
                routes.iter().map(move |prefix| Claim {
                    host: host.clone(),
                    prefix: prefix.clone(),
                })
            })
            .collect())
    }

    /// How the claim reads in an error.
    pub(crate) fn describe(&self) -> String {
        format!("{} and path prefix {:?}", self.host.describe(), self.prefix)
    }
}

/// The apps of a manifest by their claims, indexed so that finding one
/// costs a few hash lookups however many apps there are: by exact host,
/// by wildcard suffix, or any host; then by path prefix.
pub(crate) struct RouteTable<A> {
    exact: HashMap<String, Prefixes<A>>,
    /// `*.example.com` claims by their suffix, `.example.com`.
    subdomains: HashMap<String, Prefixes<A>>,
    any: Prefixes<A>,
}

/// One host pattern's apps by path prefix.
struct Prefixes<A> {
    by_prefix: HashMap<String, A>,
}

impl<A> Default for Prefixes<A> {
    fn default() -> Self {
        Prefixes {
            by_prefix: HashMap::new(),
        }
    }
}

impl<A> Prefixes<A> {
    /// The longest prefix that `path` matches ([`prefix_matches`]): the
    /// whole path, then at each `/` from the right the part up to and
    /// including it, then the part before it.
    fn find<'a>(&'a self, path: &str) -> Option<Found<'a, A>> {
        if self.by_prefix.is_empty() {
            return None;
        }
        let candidates = std::iter::once(path).chain(
            path.rmatch_indices('/')
                .flat_map(|(at, _)| [&path[..=at], &path[..at]]),
        );
        candidates
            .filter_map(|candidate| self.by_prefix.get_key_value(candidate))
            .map(|(prefix, app)| Found { app, prefix })
            .next()
    }
}

/// A request's way to an app: the app, and the prefix it matched (for
/// `strip_prefix`).
pub(crate) struct Found<'a, A> {
    pub(crate) app: &'a A,
    pub(crate) prefix: &'a str,
}

impl<A> RouteTable<A> {
    /// A table over `(claims, app)`; an error names two apps making the
    /// same claim.
    pub(crate) fn new(
        apps: impl IntoIterator<Item = (String, Vec<Claim>, A)>,
    ) -> Result<Self, String>
    where
        A: Clone,
    {
        let mut table = RouteTable {
            exact: HashMap::new(),
            subdomains: HashMap::new(),
            any: Prefixes::default(),
        };
        let mut owners: HashMap<Claim, String> = HashMap::new();
        for (name, claims, app) in apps {
            for claim in claims {
                if let Some(other) = owners.get(&claim) {
                    if *other != name {
                        return Err(format!(
                            "apps {other:?} and {name:?} both claim {}",
                            claim.describe()
                        ));
                    }
                    continue;
                }
                let prefixes = match &claim.host {
                    HostPattern::Any => &mut table.any,
                    HostPattern::Exact(host) => table.exact.entry(host.clone()).or_default(),
                    HostPattern::Subdomains(suffix) => {
                        table.subdomains.entry(suffix.clone()).or_default()
                    }
                };
                prefixes.by_prefix.insert(claim.prefix.clone(), app.clone());
                owners.insert(claim, name.clone());
            }
        }
        Ok(table)
    }

    /// The app serving `path` on `host` (the `Host` header or `:authority`,
    /// as sent: the port is ignored, case too). The most specific host
    /// pattern with a matching prefix wins: exact, then the longest
    /// wildcard, then any host.
    pub(crate) fn find(&self, host: Option<&str>, path: &str) -> Option<Found<'_, A>> {
        if let Some(host) = host.and_then(host_name) {
            if let Some(found) = self.exact.get(&host).and_then(|apps| apps.find(path)) {
                return Some(found);
            }
            if !self.subdomains.is_empty() {
                // `.example.com` for `a.example.com`: a subdomain needs a
                // label before the suffix, so never the whole name.
                let suffixes = host
                    .match_indices('.')
                    .filter(|(at, _)| *at > 0)
                    .map(|(at, _)| &host[at..]);
                for suffix in suffixes {
                    if let Some(found) =
                        self.subdomains.get(suffix).and_then(|apps| apps.find(path))
                    {
                        return Some(found);
                    }
                }
            }
        }
        self.any.find(path)
    }
}

/// The host an authority (a `Host` header, an `:authority`) names:
/// `Example.COM:8080` as `example.com`, `[::1]:80` as `[::1]`; `None` if
/// it is not an authority.
pub(crate) fn host_name(authority: &str) -> Option<String> {
    let authority: http::uri::Authority = authority.trim().parse().ok()?;
    Some(authority.host().trim_end_matches('.').to_ascii_lowercase())
}

/// `/chat` matches `/chat` and `/chat/...` but not `/chatter`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// `path` without the mount prefix `prefix`, still starting with `/`.
pub(crate) fn strip_prefix<'a>(prefix: &str, path: &'a str) -> std::borrow::Cow<'a, str> {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some("") => "/".into(),
        Some(rest) if rest.starts_with('/') => rest.into(),
        _ => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(apps: &[(&str, &[&str], &[&str])]) -> Result<RouteTable<String>, String> {
        RouteTable::new(apps.iter().map(|(name, hosts, routes)| {
            let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
            let routes: Vec<String> = routes.iter().map(|r| (*r).to_owned()).collect();
            let claims = Claim::all(&hosts, &routes).expect("valid claims");
            ((*name).to_owned(), claims, (*name).to_owned())
        }))
    }

    fn find<'a>(table: &'a RouteTable<String>, host: Option<&str>, path: &str) -> Option<&'a str> {
        table.find(host, path).map(|found| found.app.as_str())
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/", "/"));
        assert!(prefix_matches("/", "/anything/at/all"));
        assert!(prefix_matches("/chat", "/chat"));
        assert!(prefix_matches("/chat", "/chat/room"));
        assert!(!prefix_matches("/chat", "/chatter"));
        assert!(prefix_matches("/chat/", "/chat/room"));
        assert!(!prefix_matches("/chat/", "/chat"));
        assert!(!prefix_matches("/Chat", "/chat"));
    }

    #[test]
    fn the_longest_prefix_wins() {
        let table = table(&[
            ("root", &[], &["/"]),
            ("api", &[], &["/api", "/v2/api"]),
            ("admin", &[], &["/api/admin"]),
        ])
        .expect("no overlap");
        assert_eq!(find(&table, None, "/"), Some("root"));
        assert_eq!(find(&table, None, "/apis"), Some("root"));
        assert_eq!(find(&table, None, "/api/users"), Some("api"));
        assert_eq!(find(&table, None, "/v2/api"), Some("api"));
        assert_eq!(find(&table, None, "/api/admin/x"), Some("admin"));
    }

    #[test]
    fn exact_hosts_beat_wildcards_beat_paths_alone() {
        let table = table(&[
            ("any", &[], &["/"]),
            ("wild", &["*.example.com"], &["/"]),
            ("deeper", &["*.eu.example.com"], &["/"]),
            ("exact", &["api.example.com"], &["/"]),
            ("exact-api", &["api.example.com"], &["/v1"]),
        ])
        .expect("no overlap");
        assert_eq!(find(&table, Some("api.example.com"), "/"), Some("exact"));
        assert_eq!(
            find(&table, Some("api.example.com"), "/v1/x"),
            Some("exact-api")
        );
        assert_eq!(find(&table, Some("www.example.com"), "/"), Some("wild"));
        assert_eq!(find(&table, Some("a.eu.example.com"), "/"), Some("deeper"));
        assert_eq!(
            find(&table, Some("example.com"), "/"),
            Some("any"),
            "a wildcard needs a subdomain"
        );
        assert_eq!(find(&table, Some("other.org"), "/"), Some("any"));
        assert_eq!(find(&table, None, "/"), Some("any"), "no Host (HTTP/1.0)");
    }

    #[test]
    fn hosts_ignore_port_and_case() {
        let table = table(&[("a", &["Hello.Localhost"], &["/"])]).expect("valid");
        assert_eq!(find(&table, Some("hello.localhost:8080"), "/"), Some("a"));
        assert_eq!(find(&table, Some("HELLO.LOCALHOST"), "/x"), Some("a"));
        assert_eq!(find(&table, Some("hello.localhost."), "/x"), Some("a"));
        assert_eq!(find(&table, Some("other.localhost"), "/"), None);
        assert_eq!(find(&table, None, "/"), None);
        assert_eq!(host_name("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(host_name("a.test:x").as_deref(), Some("a.test"));
        assert_eq!(host_name("bad host"), None);
    }

    #[test]
    fn both_host_and_path_must_match() {
        let table = table(&[("a", &["a.test"], &["/api"])]).expect("valid");
        assert_eq!(find(&table, Some("a.test"), "/api/x"), Some("a"));
        assert_eq!(find(&table, Some("a.test"), "/"), None);
        assert_eq!(find(&table, Some("b.test"), "/api"), None);
    }

    #[test]
    fn the_same_claim_twice_is_refused_naming_both_apps() {
        let err = table(&[("a", &[], &["/x"]), ("b", &[], &["/x"])])
            .err()
            .expect("overlap");
        assert!(err.contains("\"a\"") && err.contains("\"b\""), "{err}");
        assert!(err.contains("/x"), "{err}");
        let err = table(&[("a", &["*.t.io"], &["/"]), ("b", &["*.T.io"], &["/"])])
            .err()
            .expect("same wildcard");
        assert!(err.contains("*.t.io"), "{err}");
        assert!(table(&[("a", &["x.t.io"], &["/"]), ("b", &["*.t.io"], &["/"])]).is_ok());
    }

    #[test]
    fn bad_hosts_are_explained() {
        for bad in ["", "*", "a b", "https://x.com", "x.com:80", "*.", "a.*.com"] {
            assert!(
                Claim::all(&[bad.to_owned()], &["/".to_owned()]).is_err(),
                "{bad:?}"
            );
        }
    }

    /// The rule the index implements, as a scan: the most specific host
    /// pattern first (exact, longer wildcards, any), then the longest prefix.
    fn find_by_scan<'a>(
        claims: &'a [(Claim, String)],
        host: Option<&str>,
        path: &str,
    ) -> Option<&'a str> {
        let host = host.and_then(host_name);
        claims
            .iter()
            .filter(|(claim, _)| {
                claim.host.matches(host.as_deref()) && prefix_matches(&claim.prefix, path)
            })
            .max_by_key(|(claim, _)| (claim.host.rank(), claim.prefix.len()))
            .map(|(_, app)| app.as_str())
    }

    proptest::proptest! {
        #[test]
        fn the_index_finds_what_a_scan_finds(
            apps in proptest::collection::vec(
                (
                    proptest::option::of("(\\*\\.)?(a|b|x\\.a|b\\.x\\.a)"),
                    "/((a|b|ab)/?){0,3}",
                ),
                1..12,
            ),
            host in proptest::option::of("(a|b|x\\.a|b\\.x\\.a|y\\.b\\.x\\.a|A:80)"),
            path in "/((a|b|ab|c)/?){0,4}",
        ) {
            let mut claims: Vec<(Claim, String)> = Vec::new();
            for (n, (host, prefix)) in apps.iter().enumerate() {
                let hosts: Vec<String> = host.iter().cloned().collect();
                for claim in Claim::all(&hosts, std::slice::from_ref(prefix)).expect("valid") {
                    if !claims.iter().any(|(taken, _)| *taken == claim) {
                        claims.push((claim, format!("app{n}")));
                    }
                }
            }
            let table = RouteTable::new(
                claims.iter().map(|(claim, app)| (app.clone(), vec![claim.clone()], app.clone())),
            )
            .expect("distinct claims");
            proptest::prop_assert_eq!(
                find(&table, host.as_deref(), &path),
                find_by_scan(&claims, host.as_deref(), &path)
            );
        }
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        assert_eq!(strip_prefix("/api", "/api"), "/");
        assert_eq!(strip_prefix("/api", "/api/users?x"), "/users?x");
        assert_eq!(strip_prefix("/api/", "/api/users"), "/users");
        assert_eq!(strip_prefix("/", "/x"), "/x");
    }
}
