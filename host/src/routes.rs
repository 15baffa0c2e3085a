//! Which app serves a request: each app claims host names (exact, or
//! `*.example.com` for every subdomain) and/or path prefixes; an app with
//! both needs both to match. The most specific claim wins: an exact host
//! over a wildcard over none (a longer wildcard over a shorter), then the
//! longest path prefix. Two apps may not make the same claim.

/// One app's claim: a host pattern (none: any host) and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    host: HostPattern,
    prefix: String,
}

/// A host name to match, lower-cased, without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The apps of a manifest by their claims.
pub(crate) struct RouteTable<A> {
    /// Most specific first, so the first match wins.
    entries: Vec<(Claim, A)>,
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
        let mut entries: Vec<(Claim, A)> = Vec::new();
        let mut owners: Vec<(Claim, String)> = Vec::new();
        for (name, claims, app) in apps {
            for claim in claims {
                if let Some((_, other)) = owners.iter().find(|(taken, _)| *taken == claim) {
                    if *other != name {
                        return Err(format!(
                            "apps {other:?} and {name:?} both claim {}",
                            claim.describe()
                        ));
                    }
                    continue;
                }
                owners.push((claim.clone(), name.clone()));
                entries.push((claim, app.clone()));
            }
        }
        entries
            .sort_by_key(|(claim, _)| std::cmp::Reverse((claim.host.rank(), claim.prefix.len())));
        Ok(RouteTable { entries })
    }

    /// The app serving `path` on `host` (the `Host` header or `:authority`,
    /// as sent: the port is ignored, case too).
    pub(crate) fn find(&self, host: Option<&str>, path: &str) -> Option<Found<'_, A>> {
        let host = host.map(host_name);
        self.entries
            .iter()
            .find(|(claim, _)| {
                claim.host.matches(host.as_deref()) && prefix_matches(&claim.prefix, path)
            })
            .map(|(claim, app)| Found {
                app,
                prefix: &claim.prefix,
            })
    }
}

/// `Example.COM:8080` as `example.com`; `[::1]:80` as `[::1]`.
fn host_name(authority: &str) -> String {
    let authority = authority.trim();
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority, |end| &authority[..=end])
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
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
        assert_eq!(host_name("[::1]:8080"), "[::1]");
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

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        assert_eq!(strip_prefix("/api", "/api"), "/");
        assert_eq!(strip_prefix("/api", "/api/users?x"), "/users?x");
        assert_eq!(strip_prefix("/api/", "/api/users"), "/users");
        assert_eq!(strip_prefix("/", "/x"), "/x");
    }
}
