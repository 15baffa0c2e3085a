//! Picks the app for a request by path prefix (the longest match wins).

use crate::runtime::SharedApp;

/// The apps of a manifest, by route prefix.
pub struct Router {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<(String, SharedApp)>,
}

impl Router {
    /// A router over `(prefixes, app)` pairs.
    pub fn new(apps: impl IntoIterator<Item = (Vec<String>, SharedApp)>) -> Self {
        let mut routes: Vec<(String, SharedApp)> = apps
            .into_iter()
            .flat_map(|(prefixes, app)| prefixes.into_iter().map(move |p| (p, app.clone())))
            .collect();
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Router { routes }
    }

    /// The app serving `path`, if any.
    pub fn find(&self, path: &str) -> Option<&SharedApp> {
        self.routes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, app)| app)
    }
}

/// `/chat` matches `/chat` and `/chat/...` but not `/chatter`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_matches;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/", "/"));
        assert!(prefix_matches("/", "/anything/at/all"));
        assert!(prefix_matches("/chat", "/chat"));
        assert!(prefix_matches("/chat", "/chat/room"));
        assert!(!prefix_matches("/chat", "/chatter"));
        assert!(prefix_matches("/chat/", "/chat/room"));
        assert!(!prefix_matches("/chat/", "/chat"));
    }
}
