//! The data generator: a deterministic, realistic population written through the store's
//! public functions, so every row (and every audit event) is what the real server writes.
//!
//! Determinism: the shape and the texts depend only on `--investigations` and `--seed`
//! (each investigation draws from its own generator, whatever the order of the parallel
//! jobs). Ids are UUID v7 and timestamps are the real clock, as the store makes them.

use crate::rng::Rng;
use anyhow::{Context as _, anyhow};
use chrono::Utc;
use rkflow_api::auth::{AuthConfig, Passwords};
use rkflow_domain::investigation::{NewVersion, RebuttalTerms};
use rkflow_domain::rebuttal::{CollegePosition, NewResponse};
use rkflow_domain::submission::CouncilDecision;
use rkflow_domain::{
    Actor, Command, CommissionId, DocumentId, DocumentKind, Grant, MunicipalityId,
    RecommendationAddressee, RecommendationId, ResponseId, ResponseMode, Role, Scope, UserId,
    VersionId, content,
};
use rkflow_store::investigations::{NewInvestigation, VersionBody};
use rkflow_store::{Db, Origin, accounts, investigations, organisation};
use sea_orm::ConnectionTrait;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// The password of every generated account.
pub const PASSWORD: &str = "rkflow-bench-wachtwoord";

/// The municipalities (each with its own rekenkamercommissie).
pub const MUNICIPALITIES: [&str; 30] = [
    "Bloemendaal",
    "Heemstede",
    "Haarlem",
    "Zandvoort",
    "Velsen",
    "Beverwijk",
    "Heemskerk",
    "Uitgeest",
    "Castricum",
    "Alkmaar",
    "Bergen",
    "Heiloo",
    "Dijk en Waard",
    "Schagen",
    "Hollands Kroon",
    "Den Helder",
    "Texel",
    "Enkhuizen",
    "Hoorn",
    "Medemblik",
    "Opmeer",
    "Koggenland",
    "Drechterland",
    "Stede Broec",
    "Edam-Volendam",
    "Purmerend",
    "Waterland",
    "Landsmeer",
    "Oostzaan",
    "Wormerland",
];

const TOPICS: [&str; 12] = [
    "jeugdzorg",
    "de Wmo-uitvoering",
    "het grondbeleid",
    "de ICT-samenwerking",
    "de sociale woningbouw",
    "het subsidiebeleid",
    "de energietransitie",
    "de schuldhulpverlening",
    "het onderhoud van de openbare ruimte",
    "de verbonden partijen",
    "de participatiewet",
    "de informatievoorziening aan de raad",
];

const WORDS: [&str; 40] = [
    "de",
    "gemeente",
    "raad",
    "college",
    "beleid",
    "uitvoering",
    "kosten",
    "doelen",
    "resultaten",
    "informatie",
    "sturing",
    "verantwoording",
    "samenwerking",
    "budget",
    "realisatie",
    "prestaties",
    "inwoners",
    "maatschappelijke",
    "effecten",
    "rapportage",
    "kaders",
    "risico's",
    "monitoring",
    "evaluatie",
    "en",
    "van",
    "het",
    "in",
    "op",
    "met",
    "zijn",
    "wordt",
    "onvoldoende",
    "duidelijk",
    "gerealiseerd",
    "afspraken",
    "regio",
    "jaarrekening",
    "begroting",
    "programma",
];

/// Phases an investigation is taken to; CANCELLED is reached by cancelling in an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Proposal,
    Research,
    Rebuttal,
    Epilogue,
    CouncilSubmission,
    FollowUp,
    Closed,
    Cancelled,
}

/// The share of each target phase, in per mille.
const DISTRIBUTION: [(Target, u64); 8] = [
    (Target::Proposal, 150),
    (Target::Research, 200),
    (Target::Rebuttal, 150),
    (Target::Epilogue, 100),
    (Target::CouncilSubmission, 80),
    (Target::FollowUp, 170),
    (Target::Closed, 100),
    (Target::Cancelled, 50),
];

#[derive(Clone)]
pub struct Person {
    pub id: Uuid,
    pub email: String,
    pub actor: Actor,
}

#[derive(Clone)]
struct CommissionPeople {
    chair: Person,
    members: [Person; 2],
    secretary: Person,
}

#[derive(Clone)]
struct MunicipalityPeople {
    college: Person,
    civil: Person,
    griffier: Person,
}

/// The generated organisation.
struct Org {
    municipalities: Vec<Uuid>,
    commissions: Vec<Uuid>,
    commission_people: Vec<CommissionPeople>,
    municipality_people: Vec<MunicipalityPeople>,
}

pub fn chair_email(commission: usize) -> String {
    format!("voorzitter.{commission}@rkc.bench")
}

pub fn member_email(commission: usize) -> String {
    format!("lid1.{commission}@rkc.bench")
}

pub fn all_emails(municipalities: usize) -> Vec<String> {
    let mut emails = Vec::new();
    for c in 0..municipalities {
        emails.push(chair_email(c));
        emails.push(member_email(c));
        emails.push(format!("lid2.{c}@rkc.bench"));
        emails.push(format!("secretaris.{c}@rkc.bench"));
        emails.push(format!("college.{c}@gemeente.bench"));
        emails.push(format!("ambtelijk.{c}@gemeente.bench"));
        emails.push(format!("griffier.{c}@gemeente.bench"));
        emails.push(format!("raadslid.{c}@gemeente.bench"));
    }
    emails
}

fn system() -> Origin {
    Origin {
        actor: None,
        client: Some("bench-seed".into()),
    }
}

async fn person(
    db: &Db,
    hash: &str,
    email: String,
    name: String,
    grant: Option<Grant>,
) -> anyhow::Result<Person> {
    let now = Utc::now();
    let user = accounts::create_user(db, &system(), now, &email, &name, hash).await?;
    let mut grants = Vec::new();
    if let Some(grant) = grant {
        accounts::grant_role(db, &system(), now, user.id, grant).await?;
        grants.push(grant);
    }
    Ok(Person {
        id: user.id,
        email,
        actor: Actor::user(UserId(user.id), grants),
    })
}

async fn organisation(db: &Db, hash: &str) -> anyhow::Result<Org> {
    let mut org = Org {
        municipalities: Vec::new(),
        commissions: Vec::new(),
        commission_people: Vec::new(),
        municipality_people: Vec::new(),
    };
    person(
        db,
        hash,
        "beheer@rkflow.bench".into(),
        "Beheerder".into(),
        Some(Grant {
            role: Role::Admin,
            scope: Scope::Global,
        }),
    )
    .await?;
    for (index, name) in MUNICIPALITIES.iter().enumerate() {
        let now = Utc::now();
        let m = organisation::create_municipality(db, &system(), now, name).await?;
        let c = organisation::create_commission(
            db,
            &system(),
            now,
            &format!("Rekenkamercommissie {name}"),
            &[m.id],
        )
        .await?
        .commission;
        let in_commission = |role| {
            Some(Grant {
                role,
                scope: Scope::Commission(c.id.into()),
            })
        };
        let in_municipality = |role| {
            Some(Grant {
                role,
                scope: Scope::Municipality(m.id.into()),
            })
        };
        let chair = person(
            db,
            hash,
            chair_email(index),
            format!("Voorzitter RKC {name}"),
            in_commission(Role::Chair),
        )
        .await?;
        let member1 = person(
            db,
            hash,
            member_email(index),
            format!("Lid 1 RKC {name}"),
            in_commission(Role::Member),
        )
        .await?;
        let member2 = person(
            db,
            hash,
            format!("lid2.{index}@rkc.bench"),
            format!("Lid 2 RKC {name}"),
            in_commission(Role::Member),
        )
        .await?;
        let secretary = person(
            db,
            hash,
            format!("secretaris.{index}@rkc.bench"),
            format!("Secretaris RKC {name}"),
            in_commission(Role::Secretary),
        )
        .await?;
        let college = person(
            db,
            hash,
            format!("college.{index}@gemeente.bench"),
            format!("Contactpersoon college {name}"),
            in_municipality(Role::CollegeContact),
        )
        .await?;
        let civil = person(
            db,
            hash,
            format!("ambtelijk.{index}@gemeente.bench"),
            format!("Ambtelijk contactpersoon {name}"),
            in_municipality(Role::CivilServiceContact),
        )
        .await?;
        let griffier = person(
            db,
            hash,
            format!("griffier.{index}@gemeente.bench"),
            format!("Griffier {name}"),
            in_municipality(Role::Griffier),
        )
        .await?;
        person(
            db,
            hash,
            format!("raadslid.{index}@gemeente.bench"),
            format!("Raadslid {name}"),
            in_municipality(Role::CouncilMember),
        )
        .await?;
        org.municipalities.push(m.id);
        org.commissions.push(c.id);
        org.commission_people.push(CommissionPeople {
            chair,
            members: [member1, member2],
            secretary,
        });
        org.municipality_people.push(MunicipalityPeople {
            college,
            civil,
            griffier,
        });
    }
    Ok(org)
}

/// Markdown of roughly `bytes` bytes.
pub fn markdown_text(rng: &mut Rng, title: &str, bytes: usize) -> String {
    let mut text = format!("# {title}\n\n");
    let mut section = 1;
    while text.len() < bytes {
        if rng.below(6) == 0 {
            text.push_str(&format!("\n## Paragraaf {section}\n\n"));
            section += 1;
        }
        let words = 12 + rng.below(30) as usize;
        let mut sentence = String::new();
        for w in 0..words {
            let word = WORDS[rng.below(WORDS.len() as u64) as usize];
            if w == 0 {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    sentence.extend(first.to_uppercase());
                    sentence.push_str(chars.as_str());
                }
            } else {
                sentence.push(' ');
                sentence.push_str(word);
            }
        }
        sentence.push_str(". ");
        text.push_str(&sentence);
        if rng.below(4) == 0 {
            text.push_str("\n\n");
        }
    }
    text.push('\n');
    text
}

struct Ctx {
    db: Db,
    org: Org,
}

impl Ctx {
    async fn run(
        &self,
        who: &Person,
        id: Uuid,
        command: Command,
        body: Option<VersionBody>,
    ) -> anyhow::Result<()> {
        let origin = Origin {
            actor: Some(who.id),
            client: Some("bench-seed".into()),
        };
        let label = format!("{:?}", command.action());
        investigations::execute(&self.db, &origin, Utc::now(), &who.actor, id, command, body)
            .await
            .map(|_| ())
            .map_err(|err| anyhow!("{label} by {} failed: {err}", who.email))
    }

    #[allow(clippy::too_many_arguments)]
    async fn submit(
        &self,
        rng: &mut Rng,
        who: &Person,
        id: Uuid,
        kind: DocumentKind,
        title: Option<&str>,
        versions: u32,
    ) -> anyhow::Result<()> {
        for number in 1..=versions {
            let heading = format!("{} (versie {number})", title.unwrap_or(kind.as_str()));
            let size = 1_000 + rng.below(3_000) as usize;
            let text = markdown_text(rng, &heading, size);
            let meta = content::markdown(&text).map_err(|e| anyhow!("{e}"))?;
            self.run(
                who,
                id,
                Command::SubmitVersion {
                    version: NewVersion {
                        kind,
                        title: title.map(str::to_string),
                        base_version: None,
                        content: meta,
                        note: (number > 1).then(|| format!("Verwerkt commentaar ronde {number}")),
                        municipality: None,
                    },
                    new_document: DocumentId(Uuid::now_v7()),
                    new_version: VersionId(Uuid::now_v7()),
                },
                Some(VersionBody {
                    bytes: text.into_bytes(),
                    file_name: None,
                }),
            )
            .await?;
        }
        Ok(())
    }

    async fn approve_all(&self, id: Uuid, commissions: &[usize]) -> anyhow::Result<()> {
        for c in commissions {
            self.run(
                &self.org.commission_people[*c].chair,
                id,
                Command::Approve {
                    comment: Some("Akkoord".into()),
                    phase: None,
                },
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// One investigation, taken through the lifecycle to its target phase.
    async fn investigation(&self, seed: u64, index: usize) -> anyhow::Result<u64> {
        let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let count = self.org.commissions.len();
        let first = index % count;
        let mut commissions = vec![first];
        if rng.below(10) < 3 {
            commissions.push((first + 1 + rng.below(count as u64 - 1) as usize) % count);
        }
        let mut target = Target::Closed;
        let mut roll = rng.below(1000);
        for (t, share) in DISTRIBUTION {
            if roll < share {
                target = t;
                break;
            }
            roll -= share;
        }
        let cancel_in = if target == Target::Cancelled {
            [
                Target::Proposal,
                Target::Research,
                Target::Rebuttal,
                Target::Epilogue,
            ][rng.below(4) as usize]
        } else {
            target
        };
        let people = &self.org.commission_people[first];
        let topic = TOPICS[rng.below(TOPICS.len() as u64) as usize];
        let title = format!("Onderzoek naar {topic} ({})", index + 1);
        let questions = (0..2 + rng.below(3))
            .map(|q| format!("Deelvraag {}: hoe doeltreffend is {topic}?", q + 1))
            .collect();
        let proposer = &people.members[0];
        let origin = Origin {
            actor: Some(proposer.id),
            client: Some("bench-seed".into()),
        };
        let id = investigations::propose(
            &self.db,
            &origin,
            Utc::now(),
            &proposer.actor,
            NewInvestigation {
                commission_ids: commissions
                    .iter()
                    .map(|c| self.org.commissions[*c])
                    .collect(),
                title,
                research_questions: questions,
                scope_start: chrono::NaiveDate::from_ymd_opt(2020, 1, 1),
                scope_end: chrono::NaiveDate::from_ymd_opt(2024, 12, 31),
            },
        )
        .await
        .context("propose")?
        .investigation
        .id();
        let mut commands = 1;
        let cancel = |phase: Target| phase == cancel_in && target == Target::Cancelled;

        // PROPOSAL
        self.run(
            &people.chair,
            id,
            Command::AssignRapporteur {
                user: UserId(people.members[1].id),
                commission: CommissionId(self.org.commissions[first]),
            },
            None,
        )
        .await?;
        self.submit(&mut rng, proposer, id, DocumentKind::Proposal, None, 5)
            .await?;
        commands += 6;
        if cancel(Target::Proposal) {
            return self.cancel(id, first, commands).await;
        }
        if target == Target::Proposal {
            // Half of them have one approval of a joint proposal already.
            if commissions.len() > 1 && rng.below(2) == 0 {
                self.approve_all(id, &commissions[..1]).await?;
                commands += 1;
            }
            return Ok(commands);
        }
        self.approve_all(id, &commissions).await?;
        commands += commissions.len() as u64;

        // RESEARCH
        self.submit(
            &mut rng,
            &people.members[1],
            id,
            DocumentKind::ResearchReport,
            None,
            5,
        )
        .await?;
        self.submit(
            &mut rng,
            &people.secretary,
            id,
            DocumentKind::Conclusions,
            None,
            5,
        )
        .await?;
        commands += 10;
        let mut recommendations = Vec::new();
        for n in 0..3 + rng.below(4) {
            let rec = RecommendationId(Uuid::now_v7());
            let addressee = [
                RecommendationAddressee::Council,
                RecommendationAddressee::College,
                RecommendationAddressee::Administration,
            ][rng.below(3) as usize];
            self.run(
                proposer,
                id,
                Command::AddRecommendation {
                    id: rec,
                    text: format!(
                        "Aanbeveling {}: {}",
                        n + 1,
                        markdown_text(&mut rng, "aanbeveling", 200).replace('\n', " ")
                    ),
                    addressee,
                },
                None,
            )
            .await?;
            recommendations.push(rec);
            commands += 1;
        }
        let joint = commissions.len() > 1 && rng.below(2) == 0;
        self.run(
            &people.chair,
            id,
            Command::SetRebuttalTerms {
                terms: RebuttalTerms {
                    mode: if joint {
                        ResponseMode::Joint
                    } else {
                        ResponseMode::Separate
                    },
                    due_date: None,
                },
            },
            None,
        )
        .await?;
        commands += 1;
        if cancel(Target::Research) {
            return self.cancel(id, first, commands).await;
        }
        if target == Target::Research {
            match rng.below(10) {
                // A factual check under way, one municipality has answered.
                0..=3 => {
                    self.run(
                        &people.chair,
                        id,
                        Command::StartFactualCheck { due_date: None },
                        None,
                    )
                    .await?;
                    let civil = &self.org.municipality_people[first].civil;
                    self.submit(&mut rng, civil, id, DocumentKind::FactualResponse, None, 1)
                        .await?;
                    commands += 2;
                }
                4 => {
                    self.run(
                        &people.chair,
                        id,
                        Command::Suspend {
                            reason: "Wachten op aanvullende stukken".into(),
                        },
                        None,
                    )
                    .await?;
                    commands += 1;
                }
                _ => {}
            }
            return Ok(commands);
        }
        self.approve_all(id, &commissions).await?;
        commands += commissions.len() as u64;

        // ADMINISTRATIVE_REBUTTAL: one response per college (SEPARATE) or a joint one.
        let colleges: Vec<usize> = commissions.clone();
        let respond_all = target > Target::Rebuttal || cancel_in > Target::Rebuttal;
        let respond: Vec<usize> = if respond_all {
            colleges.clone()
        } else if rng.below(2) == 0 {
            colleges[..1].to_vec()
        } else {
            Vec::new()
        };
        if !respond.is_empty() {
            let positions: Vec<(RecommendationId, CollegePosition)> = recommendations
                .iter()
                .map(|r| {
                    (
                        *r,
                        [
                            CollegePosition::Agrees,
                            CollegePosition::Partly,
                            CollegePosition::Disagrees,
                            CollegePosition::NoPosition,
                        ][rng.below(4) as usize],
                    )
                })
                .collect();
            if joint {
                let response = self
                    .file_response(&mut rng, id, respond[0], &colleges, positions)
                    .await?;
                commands += 1;
                for college in &respond[1..] {
                    self.run(
                        &self.org.municipality_people[*college].college,
                        id,
                        Command::CosignResponse { response },
                        None,
                    )
                    .await?;
                    commands += 1;
                }
            } else {
                for college in &respond {
                    self.file_response(&mut rng, id, *college, &[*college], positions.clone())
                        .await?;
                    commands += 1;
                }
            }
        }
        if cancel(Target::Rebuttal) {
            return self.cancel(id, first, commands).await;
        }
        if target == Target::Rebuttal {
            return Ok(commands);
        }
        self.approve_all(id, &commissions).await?;
        commands += commissions.len() as u64;

        // EPILOGUE
        self.submit(&mut rng, proposer, id, DocumentKind::Epilogue, None, 5)
            .await?;
        self.submit(
            &mut rng,
            &people.secretary,
            id,
            DocumentKind::CoverLetter,
            None,
            5,
        )
        .await?;
        commands += 10;
        if cancel(Target::Epilogue) {
            return self.cancel(id, first, commands).await;
        }
        if target == Target::Epilogue {
            return Ok(commands);
        }
        self.approve_all(id, &commissions).await?;
        commands += commissions.len() as u64;

        // COUNCIL_SUBMISSION
        if target == Target::CouncilSubmission {
            // A joint one has one chair's signature already.
            if commissions.len() > 1 {
                self.approve_all(id, &commissions[..1]).await?;
                commands += 1;
            }
            return Ok(commands);
        }
        self.approve_all(id, &commissions).await?;
        commands += commissions.len() as u64;

        // FOLLOW_UP: council decisions and implementation updates.
        for m in &commissions {
            let local = &self.org.municipality_people[*m];
            for rec in &recommendations {
                let decision = [
                    CouncilDecision::Adopted,
                    CouncilDecision::Amended,
                    CouncilDecision::Rejected,
                    CouncilDecision::Noted,
                ][rng.below(4) as usize];
                self.run(
                    &local.griffier,
                    id,
                    Command::RecordCouncilDecision {
                        recommendation: *rec,
                        municipality: MunicipalityId(self.org.municipalities[*m]),
                        decision,
                        note: None,
                    },
                    None,
                )
                .await?;
                commands += 1;
            }
            self.run(
                &local.college,
                id,
                Command::AddImplementationUpdate {
                    recommendation: recommendations[0],
                    municipality: MunicipalityId(self.org.municipalities[*m]),
                    text: "Het college heeft een plan van aanpak vastgesteld.".into(),
                },
                None,
            )
            .await?;
            commands += 1;
        }
        if target == Target::FollowUp {
            return Ok(commands);
        }
        self.approve_all(id, &commissions).await?;
        Ok(commands + commissions.len() as u64)
    }

    async fn file_response(
        &self,
        rng: &mut Rng,
        id: Uuid,
        by: usize,
        colleges: &[usize],
        positions: Vec<(RecommendationId, CollegePosition)>,
    ) -> anyhow::Result<ResponseId> {
        let size = 1_500 + rng.below(2_000) as usize;
        let text = markdown_text(rng, "Bestuurlijke reactie", size);
        let meta = content::markdown(&text).map_err(|e| anyhow!("{e}"))?;
        let response = ResponseId(Uuid::now_v7());
        let set: BTreeSet<MunicipalityId> = colleges
            .iter()
            .map(|c| MunicipalityId(self.org.municipalities[*c]))
            .collect();
        self.run(
            &self.org.municipality_people[by].college,
            id,
            Command::FileResponse(NewResponse {
                colleges: set,
                content: meta,
                positions,
                response,
                document: DocumentId(Uuid::now_v7()),
                version: VersionId(Uuid::now_v7()),
            }),
            Some(VersionBody {
                bytes: text.into_bytes(),
                file_name: None,
            }),
        )
        .await?;
        Ok(response)
    }

    async fn cancel(&self, id: Uuid, first: usize, commands: u64) -> anyhow::Result<u64> {
        self.run(
            &self.org.commission_people[first].chair,
            id,
            Command::Cancel {
                reason: "De raad heeft het onderwerp zelf opgepakt".into(),
            },
            None,
        )
        .await?;
        Ok(commands + 1)
    }
}

/// The file of a SQLite URL (`rkflow.db`, `sqlite://path?mode=rwc`).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    Some(path.split('?').next().unwrap_or(path).into())
}

/// Seeds an empty database.
///
/// Durability is switched off while seeding (and only then), because with a commit per
/// command the seed would otherwise wait for the disk ~60,000 times: on PostgreSQL
/// `synchronous_commit` is off for the database until the seed ends; SQLite is written in
/// /dev/shm and the finished file copied to its place. The rows are the same either way.
pub async fn seed(url: &str, investigations: usize, seed: u64, jobs: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let sqlite = sqlite_path(url);
    let scratch = sqlite.as_ref().and_then(|path| {
        let shm = std::path::Path::new("/dev/shm");
        shm.is_dir().then(|| {
            let name = path.file_name().map_or("rkflow-bench.db".into(), |n| {
                n.to_string_lossy().into_owned()
            });
            shm.join(format!("seed-{}-{name}", std::process::id()))
        })
    });
    if let Some(path) = &sqlite
        && path.exists()
    {
        anyhow::bail!("{} exists; seed a fresh file", path.display());
    }
    // The finished file is copied to its place at the end: make sure the place exists first.
    if let Some(parent) = sqlite.as_ref().and_then(|path| path.parent())
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let working_url = match &scratch {
        Some(path) => format!("sqlite://{}?mode=rwc", path.display()),
        None => url.to_string(),
    };
    if sqlite.is_none() {
        set_synchronous_commit(url, false).await?;
    }
    let db = rkflow_server::open_database(&working_url).await?;
    if !organisation::municipalities(&db.conn).await?.is_empty() {
        anyhow::bail!("the database is not empty; seed a fresh one");
    }
    let passwords = Passwords::new(&AuthConfig::default())
        .map_err(|e| anyhow!("argon2 parameters: {}", e.message))?;
    let hash = passwords
        .hash(PASSWORD)
        .await
        .map_err(|e| anyhow!("hashing failed: {}", e.message))?;
    let org = organisation(&db, &hash).await?;
    let org_time = started.elapsed();
    let ctx = Arc::new(Ctx { db, org });
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..jobs.max(1) {
        let ctx = ctx.clone();
        let next = next.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut commands = 0u64;
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= investigations {
                    return Ok::<u64, anyhow::Error>(commands);
                }
                commands += ctx
                    .investigation(seed, index)
                    .await
                    .with_context(|| format!("investigation {index}"))?;
                let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if finished.is_multiple_of(500) {
                    eprintln!("  {finished}/{investigations} investigations");
                }
            }
        }));
    }
    let mut commands = 0;
    for task in tasks {
        commands += task.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "seeded {investigations} investigations (seed {seed}, {jobs} jobs) in {:.1} s (organisation {:.1} s; {commands} commands, {:.0} commands/s)",
        elapsed.as_secs_f64(),
        org_time.as_secs_f64(),
        commands as f64 / (elapsed - org_time).as_secs_f64().max(0.001)
    );
    print_counts(&ctx.db).await?;
    let checked = Instant::now();
    let differing = rkflow_store::snapshot::verify(&ctx.db).await?;
    anyhow::ensure!(
        differing.is_empty(),
        "the snapshots of {} investigations differ from their tables, e.g. {}",
        differing.len(),
        differing[0]
    );
    println!(
        "snapshots: all {investigations} hold what their tables hold (checked in {:.1} s)",
        checked.elapsed().as_secs_f64()
    );
    let Ok(ctx) = Arc::try_unwrap(ctx) else {
        anyhow::bail!("seed tasks still hold the database");
    };
    ctx.db.close().await;
    if sqlite.is_none() {
        set_synchronous_commit(url, true).await?;
    }
    if let (Some(target), Some(scratch)) = (&sqlite, &scratch) {
        // Closing the last connection checkpointed the WAL into the file.
        for suffix in ["-wal", "-shm"] {
            let extra = std::path::PathBuf::from(format!("{}{suffix}", scratch.display()));
            if extra.exists() {
                std::fs::copy(&extra, format!("{}{suffix}", target.display()))?;
                std::fs::remove_file(&extra)?;
            }
        }
        std::fs::copy(scratch, target)
            .with_context(|| format!("copying the seeded file to {}", target.display()))?;
        std::fs::remove_file(scratch)?;
        let file = std::fs::File::open(target)?;
        file.sync_all()?;
        println!(
            "written to {} ({:.0} MB)",
            target.display(),
            file.metadata()?.len() as f64 / 1e6
        );
    }
    Ok(())
}

/// Switches `synchronous_commit` off (or back to the default) for one PostgreSQL database.
async fn set_synchronous_commit(url: &str, on: bool) -> anyhow::Result<()> {
    let db = Db::connect(url).await?;
    let setting = if on {
        "RESET synchronous_commit"
    } else {
        "SET synchronous_commit = off"
    };
    db.conn
        .execute_unprepared(&format!(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I {setting}', current_database()); END $$"
        ))
        .await?;
    db.close().await;
    Ok(())
}

/// Row counts of the main tables.
pub async fn print_counts(db: &Db) -> anyhow::Result<()> {
    let tables = [
        "municipality",
        "commission",
        "app_user",
        "role_grant",
        "investigation",
        "investigation_commission",
        "rapporteur",
        "document",
        "document_version",
        "version_content",
        "approval",
        "frozen_version",
        "recommendation",
        "deadline",
        "response",
        "response_position",
        "council_submission",
        "submission_version",
        "council_decision",
        "implementation_update",
        "audit_event",
    ];
    let mut line = String::new();
    for table in tables {
        let row = db
            .conn
            .query_one_raw(sea_orm::Statement::from_string(
                db.backend(),
                format!("SELECT COUNT(*) FROM {table}"),
            ))
            .await?
            .ok_or_else(|| anyhow!("no count"))?;
        let count: i64 = row.try_get_by_index(0)?;
        line.push_str(&format!("{table}={count} "));
    }
    let phases = db
        .conn
        .query_all_raw(sea_orm::Statement::from_string(
            db.backend(),
            "SELECT phase, COUNT(*) FROM investigation GROUP BY phase ORDER BY phase",
        ))
        .await?;
    let mut by_phase = String::new();
    for row in phases {
        let phase: String = row.try_get_by_index(0)?;
        let count: i64 = row.try_get_by_index(1)?;
        by_phase.push_str(&format!("{phase}={count} "));
    }
    println!("rows: {}", line.trim_end());
    println!("phases: {}", by_phase.trim_end());
    Ok(())
}
