//! The analyst's dashboard: one page at `/`, its script and its style sheet, compiled into the
//! binary (no build step, no external library: the chart is drawn as SVG by `app.js`). The
//! page reads the monitor's own API (`/v1/stats`, `/v1/alerts`, `/v1/callers/{tn}`,
//! `/v1/spcs/{spc}`, `/v1/traceback`) and refreshes itself every 5 seconds; it puts every
//! value into the page as text, never as markup.

/// One file of the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The Content-Security-Policy the dashboard's answers carry: only its own script, style and
/// API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The dashboard file served at `path` (`/`, `/dashboard/app.js`, `/dashboard/style.css`),
/// or `None`.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body): (&str, &[u8]) = match path {
        "/" | "/dashboard" | "/dashboard/" => (
            "text/html; charset=utf-8",
            include_bytes!("dashboard/index.html"),
        ),
        "/dashboard/app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("dashboard/app.js"),
        ),
        "/dashboard/style.css" => (
            "text/css; charset=utf-8",
            include_bytes!("dashboard/style.css"),
        ),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_files_that_are_served() {
        let page =
            std::str::from_utf8(asset("/").map(|a| a.body).unwrap_or_default()).unwrap_or_default();
        for href in ["/dashboard/app.js", "/dashboard/style.css"] {
            assert!(page.contains(href), "the page loads {href}");
            assert!(asset(href).is_some(), "{href} is served");
        }
        assert_eq!(asset("/dashboard/../Cargo.toml"), None);
        assert_eq!(asset("/nothing"), None);
    }

    #[test]
    fn the_script_never_writes_markup_from_data() {
        let script = std::str::from_utf8(
            asset("/dashboard/app.js")
                .map(|a| a.body)
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
    }
}
