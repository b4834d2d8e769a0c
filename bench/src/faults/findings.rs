//! What a fault scenario found wrong, and the verdict it ends with.

use std::path::Path;
use std::time::Duration;

use super::ledger::{Follower, Tally, Tenant, verify};

/// What a scenario found wrong; empty when everything held.
#[derive(Default)]
pub struct Findings(Vec<String>);

impl Findings {
    pub fn check(&mut self, holds: bool, what: impl Into<String>) {
        if !holds {
            self.0.push(what.into());
        }
    }

    pub fn add(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    /// The verifier's problems, and whatever the writers got refused,
    /// failed at or never got acknowledged.
    pub fn settle(&mut self, problems: Vec<String>, tallies: &[&Tally]) {
        self.0.extend(problems);
        for tally in tallies {
            self.0.extend(tally.refused());
            self.0.extend(tally.failures());
            for key in tally.unfinished() {
                self.add(format!("{key} was never acknowledged"));
            }
        }
    }

    /// Ok when nothing was found; else every finding in one error.
    pub fn verdict(self, scenario: &str) -> Result<(), String> {
        if self.0.is_empty() {
            println!("{scenario}: PASS");
            Ok(())
        } else {
            Err(format!("{scenario}: FAIL\n  - {}", self.0.join("\n  - ")))
        }
    }
}

/// The common ending with one live subscriber: waits until it has seen
/// every acknowledged recording, runs the verifier, and adds its problems
/// and the writers' to `findings`.
pub async fn settle_with_subscriber(
    findings: &mut Findings,
    follower: Follower,
    ledger: &Path,
    database_url: &str,
    base: &str,
    tenant: &Tenant,
    tallies: &[&Tally],
) -> Result<(), String> {
    let expected: u64 = tallies.iter().map(|t| t.acked()).sum();
    let seen = follower
        .finish(expected as usize, Duration::from_secs(30))
        .await;
    let verdict = verify(
        ledger,
        database_url,
        base,
        tenant,
        &[("the live subscriber".to_owned(), seen)],
    )
    .await?;
    println!("  verifier: {}", verdict.line());
    findings.settle(verdict.problems, tallies);
    Ok(())
}
