//! SQLite group commit: recordings that wait for the one writer share its
//! transaction. SQLite makes every commit durable on its own (a sync of
//! the write-ahead log), and that sync, not the statements, bounds how
//! many recordings a second one writer commits. Whoever gets the write
//! turn takes every recording queued by then (up to [`MAX_BATCH`]), runs
//! each in a savepoint of one transaction, commits once, and only then
//! answers them: a recording is never reported before its commit is
//! durable, and one that fails is rolled back to its savepoint alone.

use std::collections::VecDeque;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::plan::Plan;
use crate::domain::locked;
use crate::error::{AppError, is_transient};
use crate::service::Services;

/// Recordings per transaction at most: bounds how long the first of a
/// batch waits for the last.
const MAX_BATCH: usize = 64;

/// One recording's reads and writes, run inside the batch's transaction.
pub(crate) type Work = Box<
    dyn for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Plan, AppError>> + Send,
>;

struct Queued {
    work: Work,
    answer: oneshot::Sender<Result<Plan, AppError>>,
}

/// The recordings waiting for the writer.
#[derive(Default)]
pub struct GroupCommit {
    queue: Mutex<VecDeque<Queued>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl Services {
    /// Runs `work` in the next group commit and answers once that commit is
    /// durable (or with the error `work` failed with).
    pub(super) async fn write_in_group(&self, work: Work) -> Result<Plan, AppError> {
        let (answer, mut answered) = oneshot::channel();
        locked(&self.group_commit.queue).push_back(Queued { work, answer });
        let abandoned = |_| Err(AppError::internal("a group commit ended without an answer"));
        loop {
            let turn = tokio::select! {
                biased;
                result = &mut answered => return result.unwrap_or_else(abandoned),
                turn = self.write_turn() => turn,
            };
            if let Ok(result) = answered.try_recv() {
                return result;
            }
            let batch: Vec<Queued> = {
                let mut queue = locked(&self.group_commit.queue);
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            // A task of its own: a caller that goes away mid-batch must not
            // take the others' transaction with it.
            let services = self.clone();
            let committing = tokio::spawn(async move { services.commit_batch(turn, batch).await });
            if committing.await.is_err() {
                tracing::error!(
                    "a group commit failed unexpectedly; its recordings were rolled back"
                );
            }
        }
    }

    async fn commit_batch(&self, turn: OwnedMutexGuard<()>, batch: Vec<Queued>) {
        let txn = match self.begin_write_in_turn(Some(turn)).await {
            Ok(txn) => txn,
            Err(e) => return answer_all(batch.into_iter().map(|q| q.answer), &e),
        };
        let mut written = Vec::with_capacity(batch.len());
        for Queued { work, answer } in batch {
            // Its caller went away before its turn: nobody would learn of it.
            if answer.is_closed() {
                continue;
            }
            match in_savepoint(&txn, work).await {
                Ok(plan) => written.push((plan, answer)),
                Err(e) => {
                    let _ = answer.send(Err(e));
                }
            }
        }
        if written.is_empty() {
            return;
        }
        match txn.commit().await {
            Ok(()) => {
                for (plan, answer) in written {
                    let _ = answer.send(Ok(plan));
                }
            }
            Err(e) => answer_all(written.into_iter().map(|(_, answer)| answer), &e),
        }
    }
}

/// Runs one recording; on failure only its own writes are undone.
async fn in_savepoint(txn: &DatabaseTransaction, work: Work) -> Result<Plan, AppError> {
    let savepoint = txn.begin().await?;
    match work(&savepoint).await {
        Ok(plan) => {
            savepoint.commit().await?;
            Ok(plan)
        }
        Err(e) => {
            savepoint.rollback().await?;
            Err(e)
        }
    }
}

/// The same database failure, for every recording of a batch.
fn answer_all(answers: impl Iterator<Item = oneshot::Sender<Result<Plan, AppError>>>, e: &DbErr) {
    tracing::warn!(error = %e, "a group commit failed");
    // Each caller gets the failure's class (busy is a retryable 503), not
    // the driver's error itself, which has one owner.
    let transient = is_transient(e);
    for answer in answers {
        let copy = DbErr::Custom(e.to_string());
        let error = if transient {
            AppError::Unavailable(copy)
        } else {
            AppError::from(copy)
        };
        let _ = answer.send(Err(error));
    }
}
