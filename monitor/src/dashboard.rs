//! The analyst's dashboard: the files served at `/` and under `/dashboard/`.
//!
//! HOOK: the dashboard is written separately; until then no asset exists and these paths
//! answer 404. The API routes `GET /` and `GET /dashboard/*` here.

/// The asset at `path` (`/` or `/dashboard/...`): its content type and bytes.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let _ = path;
    None
}
