//! TODO(helper): the chat wire format.

use axum::Router;

use crate::Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
