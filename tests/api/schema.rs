//! `schema.graphql` is exactly what `convtrack schema` prints.

#[test]
fn schema_graphql_matches_the_served_schema() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
        .arg("schema")
        .output()
        .expect("run convtrack schema");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    assert!(
        printed == committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}
