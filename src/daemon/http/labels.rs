//! The page's label routes (`/api/labels…`).

use super::{Request, Response, WriteCtx};

pub(super) async fn route(_req: &Request, _ctx: &WriteCtx) -> Response {
    Response::text("404 Not Found", "the label routes are not built yet\n")
}
