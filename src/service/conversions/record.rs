//! `recordConversion`: a checkout, form or agent reporting an outcome.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend};

use super::plan::{Attribution, Plan, Planned, plan, session_and_related};
use super::write::{retry_raced, write};
use super::{ATTRIBUTION_EXPIRED, MAX_RECORD_ID_CHARS, Origin, RecordConversion, Recorded};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::conversion::{ConversionKind, ConversionSource};
use crate::domain::idempotency::{self, fingerprint};
use crate::domain::link::{CtaAction, LinkClaims};
use crate::domain::role::Operation;
use crate::domain::text;
use crate::error::{AppError, stored};
use crate::service::{Caller, Services};

impl Services {
    #[tracing::instrument(skip(self, caller, input), fields(tenant = %caller.tenant_id, kind = %input.kind))]
    pub async fn record_conversion(
        &self,
        caller: &Caller,
        input: RecordConversion,
    ) -> Result<Recorded, AppError> {
        caller.require(Operation::RecordConversions, "record conversions")?;
        let record_id = text::required("recordId", &input.record_id, MAX_RECORD_ID_CHARS)?;
        let new_customer_id = text::optional(
            "newCustomerId",
            input.new_customer_id.as_deref(),
            MAX_RECORD_ID_CHARS,
        )?;
        if new_customer_id.is_some() && input.kind != ConversionKind::ContractCreated {
            return Err(AppError::BadInput(
                "newCustomerId goes with kind CONTRACT_CREATED (a membership sign-up by a new customer)"
                    .into(),
            ));
        }
        let idempotency_key = text::optional(
            "idempotencyKey",
            input.idempotency_key.as_deref(),
            idempotency::MAX_KEY_CHARS,
        )?;
        let origin_text = match &input.origin {
            Origin::Session(id) => format!("session:{id}"),
            Origin::LinkToken(token) => format!("link:{token}"),
        };
        // A value joins the fingerprint only when given, so that keys bound
        // before values existed still match their retries.
        let value_text = input
            .value
            .map(|v| format!("{} {}", v.amount(), v.currency));
        let mut fields = vec![
            Some(origin_text.as_str()),
            Some(input.kind.as_str()),
            Some(&record_id),
            new_customer_id.as_deref(),
        ];
        if let Some(value) = &value_text {
            fields.push(Some(value));
        }
        let payload = fingerprint(&fields);
        let mut planned = vec![Planned {
            kind: input.kind,
            record_id,
            value: input.value,
        }];
        if let Some(customer) = new_customer_id {
            planned.push(Planned {
                kind: ConversionKind::CustomerCreated,
                record_id: customer,
                value: None,
            });
        }
        let now = self.clock.now();

        // A token's signature is checked before the write transaction: a
        // forged token must not hold the write lock, even briefly.
        let claims = match &input.origin {
            Origin::LinkToken(token) => Some(self.verify_token(&self.db, token).await?),
            Origin::Session(_) => None,
        };
        let key = idempotency_key.map(|k| (k, payload));
        retry_raced(|| {
            self.record_once(caller, &input, claims.as_ref(), &planned, key.clone(), now)
        })
        .await
    }

    /// One attempt of [`Self::record_conversion`]. On PostgreSQL the
    /// checks read without locks and the rows are written at once (see
    /// [`write`]); on SQLite both run in the next group commit (see
    /// [`super::group`]), so that checks see every recording committed or
    /// batched before them.
    async fn record_once(
        &self,
        caller: &Caller,
        input: &RecordConversion,
        claims: Option<&LinkClaims>,
        planned: &[Planned],
        idempotency: Option<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, AppError> {
        let plan = if self.db.get_database_backend() == DatabaseBackend::Postgres {
            let request = (caller, input, claims, planned);
            self.plan_and_write(&self.db, request, idempotency, now)
                .await?
        } else {
            let services = self.clone();
            let (caller, input) = (*caller, input.clone());
            let (claims, planned) = (claims.cloned(), planned.to_vec());
            self.write_in_group(Box::new(move |txn| {
                Box::pin(async move {
                    let request = (&caller, &input, claims.as_ref(), &planned[..]);
                    services
                        .plan_and_write(txn, request, idempotency, now)
                        .await
                })
            }))
            .await?
        };
        plan.committed(&self.events);
        plan.into_recorded()
    }

    /// Reads what the recording means on `db`, then writes it there.
    async fn plan_and_write<C: ConnectionTrait>(
        &self,
        db: &C,
        (caller, input, claims, planned): (
            &Caller,
            &RecordConversion,
            Option<&LinkClaims>,
            &[Planned],
        ),
        idempotency: Option<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<Plan, AppError> {
        let (conversation, related, attribution) = match (&input.origin, claims) {
            (Origin::LinkToken(_), Some(claims)) => {
                let (conversation, link) = self
                    .resolve_link_claims(db, caller.tenant_id, claims)
                    .await?;
                // The expiry the link was issued with, whatever the window is now.
                let within = now <= from_micros(link.expires_at);
                let action: CtaAction = stored("cta_link.action", &link.action)?;
                let attribution = Attribution {
                    source: ConversionSource::Link,
                    attributed: within,
                    unattributed_reason: (!within).then_some(ATTRIBUTION_EXPIRED),
                    link: Some((link.id, action)),
                };
                (conversation, None, attribution)
            }
            (Origin::Session(session_id), _) => {
                let (conversation, related) =
                    session_and_related(db, caller.tenant_id, session_id.as_str(), planned)
                        .await?
                        .ok_or(AppError::NotFound("session"))?;
                let within = now <= from_micros(conversation.started_at) + input.attribution_window;
                let attribution = Attribution {
                    source: ConversionSource::Direct,
                    attributed: within,
                    unattributed_reason: (!within).then_some(ATTRIBUTION_EXPIRED),
                    link: None,
                };
                (conversation, Some(related), attribution)
            }
            (Origin::LinkToken(_), None) => return Err(AppError::InvalidLinkToken),
        };
        let mut plan = plan(
            db,
            &conversation,
            related,
            planned,
            &attribution,
            idempotency,
            to_micros(now),
        )
        .await?;
        if plan.writes() {
            write(db, &mut plan).await?;
        }
        Ok(plan)
    }
}
