use crate::http::Hub;
use axum::Router;
use std::sync::Arc;
pub fn routes() -> Router<Arc<Hub>> {
    Router::new()
}
