//! TODO(helper): the responses wire format.

use axum::Router;

use crate::Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
