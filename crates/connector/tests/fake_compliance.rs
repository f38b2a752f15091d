//! The fake connector passes the shared compliance suite (as every real connector must).

use mosaic_connector::compliance::run_suite;
use mosaic_connector::fake::{FakeConnector, FakePlatform};
use std::sync::Arc;

#[tokio::test]
async fn the_fake_connector_is_compliant() {
    run_suite(&FakePlatform(Arc::new(FakeConnector::new("fake", 2000)))).await;
}
