//! The mutation root. Each lifecycle mutation is one store command (one transaction with its
//! audit events); the resolver only parses input and maps the result.

use crate::auth;
use crate::context::{request, session, state};
use crate::error::{ApiError, ApiResult, Code};
use crate::types::{
    CollegePosition, CommissionObject, CouncilDecision, Date, DocumentKind, ExtensionRequestObject,
    InvestigationObject, LoginPayload, MunicipalityObject, Phase, RecommendationAddressee,
    RecommendationObject, ResponseMode, ResponseObject, Role, RoleGrantObject, UserObject,
    VersionObject, parse_input_id,
};
use async_graphql::{Context, ID, InputObject, Object, Upload};
use chrono::{DateTime, Utc};
use rkflow_domain::content;
use rkflow_domain::investigation::{NewVersion, RebuttalTerms};
use rkflow_domain::rebuttal::NewResponse;
use rkflow_domain::role::{AdminAction, authorize_admin};
use rkflow_domain::{
    Command, CommissionId, DocumentId, ExtensionId, Grant, RecommendationId, ResponseId, Scope,
    UserId, VersionId,
};
use rkflow_store::investigations::{Executed, VersionBody};
use rkflow_store::{accounts, audit, investigations, organisation};
use std::io::Read;
use uuid::Uuid;

/// Longest name of a municipality, commission or person.
const MAX_NAME_CHARS: usize = 200;

fn check_name(field: &str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_input(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_input(
            field,
            format!("at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

fn check_email(email: &str) -> ApiResult<String> {
    let email = accounts::normalize_email(email);
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(ApiError::bad_input("email", "not a valid email address"))
    }
}

fn require_admin<'a>(ctx: &Context<'a>, action: AdminAction) -> ApiResult<&'a auth::Session> {
    let session = session(ctx)?;
    authorize_admin(&session.actor, action)?;
    Ok(session)
}

/// Runs one command on an investigation, publishes its audit events and answers the
/// investigation as the command left it, as the caller sees it (read in the command's own
/// transaction: no second connection, and no later writer's state).
async fn run(
    ctx: &Context<'_>,
    id: Uuid,
    command: Command,
    body: Option<VersionBody>,
) -> ApiResult<InvestigationObject> {
    session(ctx)?;
    let state = state(ctx);
    let request = request(ctx);
    let executed = investigations::execute(
        &state.db,
        &request.origin(),
        state.clock.now(),
        &request.actor(),
        id,
        command,
        body,
    )
    .await?;
    answer(ctx, executed)
}

/// Publishes a command's audit events; its investigation as the caller sees it.
fn answer(ctx: &Context<'_>, executed: Executed) -> ApiResult<InvestigationObject> {
    state(ctx).events.publish(executed.written);
    InvestigationObject::for_actor(executed.investigation, &request(ctx).actor())
        .ok_or_else(ApiError::not_found)
}

/// [`run`] for a mutation that names its investigation by `investigationId`.
async fn command_on(
    ctx: &Context<'_>,
    investigation_id: &ID,
    command: Command,
) -> ApiResult<InvestigationObject> {
    let id = parse_input_id("investigationId", investigation_id)?;
    run(ctx, id, command, None).await
}

#[derive(InputObject)]
pub struct ProposeInvestigationInput {
    pub title: String,
    /// The participating commissions: one, or several for a joint investigation.
    pub commission_ids: Vec<ID>,
    pub research_questions: Vec<String>,
    pub scope_start: Option<Date>,
    pub scope_end: Option<Date>,
}

#[derive(InputObject)]
pub struct FileResponseInput {
    pub investigation_id: ID,
    /// The colleges this response speaks for: several for a joint response.
    pub college_ids: Vec<ID>,
    pub content: Option<String>,
    pub file: Option<Upload>,
    pub positions: Option<Vec<RecommendationPositionInput>>,
}

#[derive(InputObject)]
pub struct RecommendationPositionInput {
    pub recommendation_id: ID,
    pub position: CollegePosition,
}

/// Municipalities named by their colleges' ids; BAD_USER_INPUT for an unknown college.
async fn colleges(ctx: &Context<'_>, field: &str, ids: &[ID]) -> ApiResult<Vec<Uuid>> {
    let ids = ids
        .iter()
        .map(|id| parse_input_id(field, id))
        .collect::<ApiResult<Vec<Uuid>>>()?;
    let found = organisation::municipalities_by_college_ids(&state(ctx).db.conn, &ids).await?;
    ids.iter()
        .map(|college| {
            found
                .iter()
                .find(|m| m.college_id == *college)
                .map(|m| m.id)
                .ok_or_else(|| ApiError::bad_input(field, "unknown college"))
        })
        .collect()
}

/// The response as stored after a command.
fn response_in(found: InvestigationObject, response: Uuid) -> ApiResult<ResponseObject> {
    let domain = &found.loaded.domain;
    let state = domain
        .responses
        .iter()
        .find(|r| r.id.0 == response)
        .ok_or_else(ApiError::not_found)?;
    let version = found
        .loaded
        .versions
        .iter()
        .find(|v| v.id == state.version.0)
        .ok_or_else(|| ApiError::internal(&"a response without its version"))?;
    Ok(ResponseObject {
        counted: domain.counted_responses().iter().any(|c| c.id == state.id),
        state: state.clone(),
        version: version.clone(),
    })
}

/// A recommendation as stored after a command, as the caller sees it.
fn recommendation_in(
    found: InvestigationObject,
    recommendation: Uuid,
) -> ApiResult<RecommendationObject> {
    found
        .recommendation_objects()
        .into_iter()
        .find(|r| r.model.id == recommendation)
        .ok_or_else(ApiError::not_found)
}

/// The extension request as stored after a command.
fn extension_in(found: InvestigationObject, request: Uuid) -> ApiResult<ExtensionRequestObject> {
    found
        .loaded
        .extensions
        .iter()
        .find(|e| e.id == request)
        .cloned()
        .map(ExtensionRequestObject)
        .ok_or_else(ApiError::not_found)
}

#[derive(InputObject)]
pub struct SubmitDocumentVersionInput {
    pub investigation_id: ID,
    pub kind: DocumentKind,
    pub title: Option<String>,
    /// Markdown text. Exactly one of content and file.
    pub content: Option<String>,
    pub file: Option<Upload>,
    /// The version this one was edited from; CONFLICT when a newer version exists.
    pub base_version: Option<i32>,
    pub note: Option<String>,
    /// For a FACTUAL_RESPONSE by the contact of several concerned municipalities: which one.
    pub municipality_id: Option<ID>,
}

/// Reads the content of a new version: Markdown text or an uploaded file, exactly one.
fn version_content(
    ctx: &Context<'_>,
    text: Option<String>,
    file: Option<Upload>,
) -> ApiResult<(content::ContentMeta, VersionBody)> {
    match (text, file) {
        (Some(text), None) => {
            let meta = content::markdown(&text)?;
            Ok((
                meta,
                VersionBody {
                    bytes: text.into_bytes(),
                    file_name: None,
                },
            ))
        }
        (None, Some(upload)) => {
            let value = upload
                .value(ctx)
                .map_err(|_| ApiError::bad_input("file", "the upload could not be read"))?;
            let mut bytes = Vec::new();
            value
                .into_read()
                .take(content::MAX_UPLOAD_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|_| ApiError::bad_input("file", "the upload could not be read"))?;
            let file_name = value_name(&upload, ctx);
            let meta = content::uploaded_file(&file_name, &bytes)?;
            Ok((
                meta,
                VersionBody {
                    bytes,
                    file_name: Some(file_name),
                },
            ))
        }
        _ => Err(ApiError::bad_input(
            "content",
            "give exactly one of content (Markdown) and file (upload)",
        )),
    }
}

fn value_name(upload: &Upload, ctx: &Context<'_>) -> String {
    let name = upload.value(ctx).map(|v| v.filename).unwrap_or_default();
    let cleaned: String = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if cleaned.is_empty() {
        "upload".into()
    } else {
        cleaned
    }
}

pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Logs in; the token goes in `Authorization: Bearer <token>`.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> ApiResult<LoginPayload> {
        let state = state(ctx);
        let request = request(ctx);
        let result = auth::login(
            &state.db,
            &state.auth,
            &state.passwords,
            &request.origin(),
            state.clock.now(),
            &email,
            &password,
        )
        .await;
        state.logins.observe(&result);
        let (token, expires_at, user) = result?;
        Ok(LoginPayload {
            token,
            expires_at,
            user: UserObject::own(&user),
        })
    }

    /// Ends the current session.
    async fn logout(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let session = session(ctx)?;
        let state = state(ctx);
        accounts::revoke_session(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            session.id,
        )
        .await?;
        Ok(true)
    }

    /// Ends one session: the caller's own, or (ADMIN) anyone's.
    async fn revoke_session(&self, ctx: &Context<'_>, session_id: ID) -> ApiResult<bool> {
        let session = session(ctx)?;
        let id = parse_input_id("sessionId", &session_id)?;
        let state = state(ctx);
        let found = accounts::find_session_by_id(&state.db.conn, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if found.user_id != session.user.id {
            authorize_admin(&session.actor, AdminAction::ManageSessions)
                .map_err(|_| ApiError::not_found())?;
        }
        if found.revoked_at.is_some() {
            return Ok(false);
        }
        accounts::revoke_session(&state.db, &request(ctx).origin(), state.clock.now(), id).await?;
        Ok(true)
    }

    /// Ends every session of a user (the caller when no userId; another user: ADMIN only),
    /// optionally keeping the caller's current one; answers how many ended.
    async fn revoke_all_sessions(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        #[graphql(default = false)] keep_current: bool,
    ) -> ApiResult<i32> {
        let session = session(ctx)?;
        let user = match &user_id {
            Some(id) => parse_input_id("userId", id)?,
            None => session.user.id,
        };
        if user != session.user.id {
            authorize_admin(&session.actor, AdminAction::ManageSessions)?;
        }
        let state = state(ctx);
        let keep = (keep_current && user == session.user.id).then_some(session.id);
        let revoked = accounts::revoke_all_sessions(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            user,
            keep,
        )
        .await?;
        Ok(i32::try_from(revoked).unwrap_or(i32::MAX))
    }

    /// Changes the caller's password; the current one is required. Other sessions end unless
    /// `revokeOtherSessions` is false.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
        #[graphql(default = true)] revoke_other_sessions: bool,
    ) -> ApiResult<bool> {
        let session = session(ctx)?;
        let state = state(ctx);
        let user = accounts::find_user(&state.db.conn, session.user.id)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        auth::verify_current_password(
            &state.db,
            &state.auth,
            &state.passwords,
            &request(ctx).origin(),
            state.clock.now(),
            &user,
            &current_password,
        )
        .await?;
        auth::check_password_for(&new_password, &user.email, &user.name)?;
        let hash = state.passwords.hash(&new_password).await?;
        accounts::change_password(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            user.id,
            &hash,
            Some(session.id),
            revoke_other_sessions,
        )
        .await?;
        Ok(true)
    }

    async fn create_municipality(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> ApiResult<MunicipalityObject> {
        require_admin(ctx, AdminAction::CreateMunicipality)?;
        let name = check_name("name", &name)?;
        let state = state(ctx);
        let created = organisation::create_municipality(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            &name,
        )
        .await?;
        Ok(MunicipalityObject(created))
    }

    async fn create_commission(
        &self,
        ctx: &Context<'_>,
        name: String,
        municipality_ids: Vec<ID>,
    ) -> ApiResult<CommissionObject> {
        require_admin(ctx, AdminAction::CreateCommission)?;
        let name = check_name("name", &name)?;
        let ids = municipality_ids
            .iter()
            .map(|id| parse_input_id("municipalityIds", id))
            .collect::<ApiResult<Vec<Uuid>>>()?;
        let distinct: std::collections::BTreeSet<&Uuid> = ids.iter().collect();
        if ids.is_empty() || distinct.len() != ids.len() {
            return Err(ApiError::bad_input(
                "municipalityIds",
                "name each municipality the commission serves, once",
            ));
        }
        let state = state(ctx);
        let created = organisation::create_commission(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            &name,
            &ids,
        )
        .await?;
        Ok(CommissionObject(created))
    }

    async fn create_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        name: String,
        password: String,
    ) -> ApiResult<UserObject> {
        require_admin(ctx, AdminAction::CreateUser)?;
        let email = check_email(&email)?;
        let name = check_name("name", &name)?;
        auth::check_password_for(&password, &email, &name)?;
        let state = state(ctx);
        let hash = state.passwords.hash(&password).await?;
        let created = accounts::create_user(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            &email,
            &name,
            &hash,
        )
        .await?;
        Ok(UserObject::written(&created))
    }

    /// Disabling ends every session of the user at once.
    async fn set_user_disabled(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        disabled: bool,
    ) -> ApiResult<UserObject> {
        let session = require_admin(ctx, AdminAction::SetUserDisabled)?;
        let user_id = parse_input_id("userId", &user_id)?;
        if disabled && user_id == session.user.id {
            return Err(ApiError::conflict("you cannot disable your own account"));
        }
        let state = state(ctx);
        let updated = accounts::set_disabled(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            user_id,
            disabled,
        )
        .await?;
        Ok(UserObject::written(&updated))
    }

    /// CHAIR, MEMBER, SECRETARY need a commissionId; the municipality roles a municipalityId;
    /// ADMIN neither.
    async fn grant_role(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: Role,
        commission_id: Option<ID>,
        municipality_id: Option<ID>,
    ) -> ApiResult<RoleGrantObject> {
        require_admin(ctx, AdminAction::GrantRole)?;
        let user_id = parse_input_id("userId", &user_id)?;
        let db = &state(ctx).db;
        let scope = match (commission_id, municipality_id) {
            (None, None) => Scope::Global,
            (Some(id), None) => {
                let id = parse_input_id("commissionId", &id)?;
                if organisation::commissions_by_ids(&db.conn, &[id])
                    .await?
                    .is_empty()
                {
                    return Err(ApiError::bad_input("commissionId", "unknown commission"));
                }
                Scope::Commission(CommissionId(id))
            }
            (None, Some(id)) => {
                let id = parse_input_id("municipalityId", &id)?;
                if organisation::municipalities_by_ids(&db.conn, &[id])
                    .await?
                    .is_empty()
                {
                    return Err(ApiError::bad_input(
                        "municipalityId",
                        "unknown municipality",
                    ));
                }
                Scope::Municipality(id.into())
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_input(
                    "municipalityId",
                    "give a commissionId or a municipalityId, not both",
                ));
            }
        };
        let grant = Grant::new(role.into(), scope)?;
        let state = state(ctx);
        let stored = accounts::grant_role(
            db,
            &request(ctx).origin(),
            state.clock.now(),
            user_id,
            grant,
        )
        .await?;
        Ok(RoleGrantObject(stored))
    }

    async fn revoke_role(&self, ctx: &Context<'_>, grant_id: ID) -> ApiResult<bool> {
        require_admin(ctx, AdminAction::RevokeRole)?;
        let grant_id = parse_input_id("grantId", &grant_id)?;
        let state = state(ctx);
        accounts::revoke_role(
            &state.db,
            &request(ctx).origin(),
            state.clock.now(),
            grant_id,
        )
        .await?;
        Ok(true)
    }

    async fn propose_investigation(
        &self,
        ctx: &Context<'_>,
        input: ProposeInvestigationInput,
    ) -> ApiResult<InvestigationObject> {
        session(ctx)?;
        let commission_ids = input
            .commission_ids
            .iter()
            .map(|id| parse_input_id("commissionIds", id))
            .collect::<ApiResult<Vec<Uuid>>>()?;
        let state = state(ctx);
        let request = request(ctx);
        let executed = investigations::propose(
            &state.db,
            &request.origin(),
            state.clock.now(),
            &request.actor(),
            investigations::NewInvestigation {
                commission_ids,
                title: input.title,
                research_questions: input.research_questions,
                scope_start: input.scope_start.map(|d| d.0),
                scope_end: input.scope_end.map(|d| d.0),
            },
        )
        .await?;
        answer(ctx, executed)
    }

    /// A CHAIR assigns a rapporteur for their own participating commission.
    async fn assign_rapporteur(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        commission_id: ID,
        user_id: ID,
    ) -> ApiResult<InvestigationObject> {
        let command = Command::AssignRapporteur {
            user: UserId(parse_input_id("userId", &user_id)?),
            commission: CommissionId(parse_input_id("commissionId", &commission_id)?),
        };
        command_on(ctx, &investigation_id, command).await
    }

    async fn submit_document_version(
        &self,
        ctx: &Context<'_>,
        input: SubmitDocumentVersionInput,
    ) -> ApiResult<VersionObject> {
        let id = parse_input_id("investigationId", &input.investigation_id)?;
        session(ctx)?;
        let (meta, body) = version_content(ctx, input.content, input.file)?;
        let new_version = VersionId::new();
        let command = Command::SubmitVersion {
            version: NewVersion {
                kind: input.kind.into(),
                title: input.title,
                base_version: input.base_version,
                content: meta,
                note: input.note,
                municipality: input
                    .municipality_id
                    .as_ref()
                    .map(|id| parse_input_id("municipalityId", id))
                    .transpose()?
                    .map(Into::into),
            },
            new_document: DocumentId::new(),
            new_version,
        };
        let found = run(ctx, id, command, Some(body)).await?;
        found
            .loaded
            .versions
            .iter()
            .find(|v| v.id == new_version.0)
            .cloned()
            .map(VersionObject)
            .ok_or_else(|| ApiError::internal(&"the new version is missing"))
    }

    /// Recommendations are added in RESEARCH and numbered in order.
    async fn add_recommendation(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        text: String,
        addressee: RecommendationAddressee,
    ) -> ApiResult<RecommendationObject> {
        let id = parse_input_id("investigationId", &investigation_id)?;
        let recommendation = RecommendationId::new();
        let found = run(
            ctx,
            id,
            Command::AddRecommendation {
                id: recommendation,
                text,
                addressee: addressee.into(),
            },
            None,
        )
        .await?;
        recommendation_in(found, recommendation.0)
    }

    /// The rebuttal mode and, optionally, its due date (else the policy term applies).
    async fn set_rebuttal_terms(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        mode: ResponseMode,
        due_date: Option<Date>,
    ) -> ApiResult<InvestigationObject> {
        let command = Command::SetRebuttalTerms {
            terms: RebuttalTerms {
                mode: mode.into(),
                due_date: due_date.map(|d| d.0),
            },
        };
        command_on(ctx, &investigation_id, command).await
    }

    /// Records the approval of the current gate by the caller's commission(s); the last one
    /// needed advances the phase.
    async fn approve_phase(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        comment: Option<String>,
        #[graphql(
            desc = "The phase being approved; when given and the investigation is in another phase, CONFLICT (guards against a repeated click)."
        )]
        phase: Option<Phase>,
    ) -> ApiResult<InvestigationObject> {
        let command = Command::Approve {
            comment,
            phase: phase.map(Into::into),
        };
        command_on(ctx, &investigation_id, command).await
    }

    /// Voids every approval of the current gate, with the reason.
    async fn request_changes(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        reason: String,
    ) -> ApiResult<InvestigationObject> {
        command_on(ctx, &investigation_id, Command::RequestChanges { reason }).await
    }

    /// Starts the factual check (ambtelijk wederhoor): a deadline per concerned municipality,
    /// on the due date given or after the policy term.
    async fn start_factual_check(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        due_date: Option<Date>,
    ) -> ApiResult<InvestigationObject> {
        let command = Command::StartFactualCheck {
            due_date: due_date.map(|d| d.0),
        };
        command_on(ctx, &investigation_id, command).await
    }

    /// Files a college's response (bestuurlijke reactie): JOINT for several colleges (it counts
    /// for each once a contact of it filed or co-signed), or SEPARATE for one.
    async fn file_response(
        &self,
        ctx: &Context<'_>,
        input: FileResponseInput,
    ) -> ApiResult<ResponseObject> {
        let id = parse_input_id("investigationId", &input.investigation_id)?;
        session(ctx)?;
        let college_municipalities = colleges(ctx, "collegeIds", &input.college_ids).await?;
        let positions = input
            .positions
            .unwrap_or_default()
            .iter()
            .map(|p| {
                Ok((
                    RecommendationId(parse_input_id("positions", &p.recommendation_id)?),
                    p.position.into(),
                ))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let (meta, body) = version_content(ctx, input.content, input.file)?;
        let response = ResponseId::new();
        let command = Command::FileResponse(NewResponse {
            colleges: college_municipalities.into_iter().map(Into::into).collect(),
            content: meta,
            positions,
            response,
            document: DocumentId::new(),
            version: VersionId::new(),
        });
        response_in(run(ctx, id, command, Some(body)).await?, response.0)
    }

    /// Co-signs a JOINT response for the caller's college, so that it counts for it too.
    async fn cosign_response(
        &self,
        ctx: &Context<'_>,
        response_id: ID,
    ) -> ApiResult<ResponseObject> {
        session(ctx)?;
        let response = parse_input_id("responseId", &response_id)?;
        let id = investigations::investigation_of_response(&state(ctx).db, response)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let command = Command::CosignResponse {
            response: ResponseId(response),
        };
        response_in(run(ctx, id, command, None).await?, response)
    }

    /// A college contact asks to move its college's deadline.
    async fn request_extension(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        college_id: ID,
        proposed_due_date: Date,
        reason: String,
    ) -> ApiResult<ExtensionRequestObject> {
        let id = parse_input_id("investigationId", &investigation_id)?;
        session(ctx)?;
        let college = colleges(ctx, "collegeId", std::slice::from_ref(&college_id)).await?[0];
        let request = ExtensionId::new();
        let command = Command::RequestExtension {
            id: request,
            college: college.into(),
            proposed_due_date: proposed_due_date.0,
            reason,
        };
        extension_in(run(ctx, id, command, None).await?, request.0)
    }

    /// A chair decides for their commission: granted when every participating commission
    /// agrees, refused when one refuses.
    async fn decide_extension(
        &self,
        ctx: &Context<'_>,
        request_id: ID,
        grant: bool,
        comment: Option<String>,
    ) -> ApiResult<ExtensionRequestObject> {
        session(ctx)?;
        let request = parse_input_id("requestId", &request_id)?;
        let id = investigations::investigation_of_extension(&state(ctx).db, request)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let command = Command::DecideExtension {
            request: ExtensionId(request),
            grant,
            comment,
        };
        extension_in(run(ctx, id, command, None).await?, request)
    }

    /// A GRIFFIER records their council's decision on a recommendation; a later record
    /// replaces the earlier one as current (both are kept).
    async fn record_council_decision(
        &self,
        ctx: &Context<'_>,
        recommendation_id: ID,
        council_id: ID,
        decision: CouncilDecision,
        note: Option<String>,
    ) -> ApiResult<RecommendationObject> {
        session(ctx)?;
        let recommendation = parse_input_id("recommendationId", &recommendation_id)?;
        let council = parse_input_id("councilId", &council_id)?;
        let id = investigations::investigation_of_recommendation(&state(ctx).db, recommendation)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let municipality = organisation::municipality_of_body(&state(ctx).db.conn, council)
            .await?
            .filter(|m| m.council_id == council)
            .ok_or_else(|| ApiError::bad_input("councilId", "unknown council"))?;
        let command = Command::RecordCouncilDecision {
            recommendation: RecommendationId(recommendation),
            municipality: municipality.id.into(),
            decision: decision.into(),
            note,
        };
        recommendation_in(run(ctx, id, command, None).await?, recommendation)
    }

    /// A COLLEGE_CONTACT reports on the implementation of a recommendation in their
    /// municipality (append-only).
    async fn add_implementation_update(
        &self,
        ctx: &Context<'_>,
        recommendation_id: ID,
        municipality_id: ID,
        text: String,
    ) -> ApiResult<RecommendationObject> {
        session(ctx)?;
        let recommendation = parse_input_id("recommendationId", &recommendation_id)?;
        let municipality = parse_input_id("municipalityId", &municipality_id)?;
        let id = investigations::investigation_of_recommendation(&state(ctx).db, recommendation)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let command = Command::AddImplementationUpdate {
            recommendation: RecommendationId(recommendation),
            municipality: municipality.into(),
            text,
        };
        recommendation_in(run(ctx, id, command, None).await?, recommendation)
    }

    async fn suspend_investigation(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        reason: String,
    ) -> ApiResult<InvestigationObject> {
        command_on(ctx, &investigation_id, Command::Suspend { reason }).await
    }

    async fn resume_investigation(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
    ) -> ApiResult<InvestigationObject> {
        command_on(ctx, &investigation_id, Command::Resume).await
    }

    async fn cancel_investigation(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        reason: String,
    ) -> ApiResult<InvestigationObject> {
        command_on(ctx, &investigation_id, Command::Cancel { reason }).await
    }

    /// ADMIN only, and only when the server runs with --manual-clock (else FORBIDDEN). Moves
    /// the clock forward, never back.
    async fn advance_clock(
        &self,
        ctx: &Context<'_>,
        to: DateTime<Utc>,
    ) -> ApiResult<DateTime<Utc>> {
        require_admin(ctx, AdminAction::AdvanceClock)?;
        let state = state(ctx);
        let before = state.clock.now();
        match state.clock.advance(to) {
            None => Err(ApiError::forbidden(
                "the clock can only be moved when the server runs with --manual-clock",
            )),
            Some(Err(now)) => Err(ApiError::new(
                Code::Conflict,
                format!("the clock stands at {now}; it moves forward only"),
            )),
            Some(Ok(now)) => {
                let txn = state.db.begin_write().await?;
                audit::record(
                    &txn,
                    &request(ctx).origin(),
                    now,
                    "clock.advanced",
                    serde_json::json!({ "from": before, "to": now }),
                )
                .await?;
                txn.commit().await?;
                crate::scheduler::run_tick(state).await?;
                Ok(now)
            }
        }
    }
}
