//! The JSON Schemas published in docs/schema are the ones the code produces: they cannot drift.
//! Regenerate them with `MOSAIC_BLESS=1 cargo test --test schemas`.

use std::path::Path;

fn check(file: &str, schema: schemars::Schema) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/schema")
        .join(file);
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("MOSAIC_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "{} is out of date: run MOSAIC_BLESS=1 cargo test --test schemas",
        path.display()
    );
}

#[test]
fn the_ps_schema_is_published() {
    check(
        "fleet-ps.v1.json",
        schemars::schema_for!(mosaic_fleet::FleetStatus),
    );
}

#[test]
fn the_event_schema_is_published() {
    check(
        "events.v1.json",
        schemars::schema_for!(mosaic_bridge::events::Event),
    );
}

#[test]
fn the_outcome_schema_is_published() {
    check(
        "outcome.v1.json",
        schemars::schema_for!(mosaic_exec::Outcome),
    );
}

#[test]
fn the_api_wire_schemas_are_published() {
    check(
        "api-health.v1.json",
        schemars::schema_for!(mosaic_api::wire::HealthReport),
    );
    check(
        "api-reply.v1.json",
        schemars::schema_for!(mosaic_api::wire::ReplyRequest),
    );
}
