//! GraphiQL at `/graphiql`: pinned production builds of GraphiQL and React
//! (`graphiql/vendor`, with their licences and versions) and a small page
//! script of our own, compiled into the binary so that it works offline and
//! behind proxies that block CDNs.

use axum::Router;

use super::AppState;
use super::pages::{self, CSS, File, HTML, JAVASCRIPT};

const INDEX_HTML: &str = include_str!("graphiql/index.html");

const FILES: &[File] = &[
    ("/graphiql", HTML, INDEX_HTML),
    ("/graphiql/", HTML, INDEX_HTML),
    (
        "/graphiql/graphiql-page.js",
        JAVASCRIPT,
        include_str!("graphiql/graphiql-page.js"),
    ),
    (
        "/graphiql/graphiql-page.css",
        CSS,
        include_str!("graphiql/graphiql-page.css"),
    ),
    (
        "/graphiql/graphiql.min.js",
        JAVASCRIPT,
        include_str!("graphiql/vendor/graphiql.min.js"),
    ),
    (
        "/graphiql/graphiql.min.css",
        CSS,
        include_str!("graphiql/vendor/graphiql.min.css"),
    ),
    (
        "/graphiql/react.production.min.js",
        JAVASCRIPT,
        include_str!("graphiql/vendor/react.production.min.js"),
    ),
    (
        "/graphiql/react-dom.production.min.js",
        JAVASCRIPT,
        include_str!("graphiql/vendor/react-dom.production.min.js"),
    ),
];

/// The admin page's policy, plus the fonts GraphiQL's stylesheet carries
/// inline as `data:` URLs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    pages::routes(FILES, CONTENT_SECURITY_POLICY)
}
