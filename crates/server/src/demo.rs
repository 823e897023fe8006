//! The demo: the organisation of the 2019 joint investigation of the rekenkamercommissies of
//! Bloemendaal and Heemstede, and the investigation itself, placed in RESEARCH with both
//! chairs' approval of the research gate pending. Seeded only into an empty database, through
//! the same store commands the API uses. The texts are this crate's own copy of excerpts of the
//! commissions' letter of 15 November 2019.

use anyhow::{Context as _, anyhow};
use rkflow_api::ApiState;
use rkflow_domain::content;
use rkflow_domain::investigation::{NewVersion, RebuttalTerms};
use rkflow_domain::{
    Actor, Command, CommissionId, DocumentId, DocumentKind, Grant, RecommendationAddressee,
    RecommendationId, ResponseMode, Role, Scope, UserId, VersionId,
};
use rkflow_store::investigations::VersionBody;
use rkflow_store::{Origin, accounts, investigations, organisation};
use uuid::Uuid;

/// The password of every demo account (demo only; printed at start-up).
pub const DEMO_PASSWORD: &str = "rkflow-demo-2019";

pub const TITLE: &str = "Evaluatie van de samenwerking tussen Bloemendaal en Heemstede op het gebied van de automatisering en informatisering";

pub const RESEARCH_QUESTIONS: [&str; 4] = [
    "Op welke wijze heeft de ICT-governance invulling gekregen en wat was daarvan het effect op de ICT-samenwerking?",
    "Hoe hebben de organisatievormen van de ICT-samenwerking en de wijze waarop daarin gewerkt wordt, (de uitvoering) bijgedragen aan het resultaat van de ICT-samenwerking?",
    "Wat zijn de opbrengsten en kosten van de ICT-samenwerking tussen Heemstede en Bloemendaal?",
    "Kan de samenwerking worden ontvlochten en zo ja, wat zijn daarvan de gevolgen?",
];

/// The ten recommendations: five for the councils and colleges, five for the administration.
pub const RECOMMENDATIONS: [(&str, RecommendationAddressee); 10] = [
    (
        "Verlaat het idee dat ontvlechten altijd mogelijk moet zijn. Bouw dit om naar een positief streven waarin de doelen van de ICT-samenwerking op het gebied van Automatisering en Informatisering concreet zijn geformuleerd, zodat deze ook houvast geven aan de werkorganisatie. Hef daarmee de belemmering op de ontwikkeling van de afdeling Informatisering op. Maak er een \"gewone\" afdeling van met een eigen budget en een eigen formatie.",
        RecommendationAddressee::Council,
    ),
    (
        "Wees bewust dat outsourcing niet mag betekenen \"loslaten\". Outsourcing vergt, nog meer dan het management in de eigen organisatie, dat er gestuurd wordt op concrete afspraken en dat de uitvoering daarvan geregeld en nauwkeurig gecontroleerd wordt. Richt daarvoor een (regie)organisatie in die daarvoor qua kennis en kunde voldoende geëquipeerd is.",
        RecommendationAddressee::Council,
    ),
    (
        "Maak beleid voor het omgaan met data en versterk het databeheer (de data governance). Tot nu toe hebben de raden zich nog geen beeld gevormd over de mogelijkheden en de consequenties. Dit is nodig als eerste stap naar beleidsvorming op dit gebied (start met voorlichten en opleiden).",
        RecommendationAddressee::Council,
    ),
    (
        "Laat de transitie niet langer duren dan nodig is. Verklaar wat de (extra frictie-) kosten zijn die tijdens de transitie gemaakt worden, maak afspraken hoe en wanneer dat traject wordt afgerond en bepaal vooraf wat de concrete opbrengsten moeten zijn. Kortom: ga daar stevig op sturen, ook op de kosten, stel concrete doelen en controleer daar op.",
        RecommendationAddressee::Council,
    ),
    (
        "Verbeter de legitimatie voor ICT uitgaven - met name voor Informatisering en onderken daarmee de consequenties die de digitale overheid met zich meebrengt. Zorg met name ook voor meer transparantie en verantwoording van de kostenverdeling tussen Bloemendaal en Heemstede.",
        RecommendationAddressee::Council,
    ),
    (
        "Houd functioneel beheer in het hart van de organisatie. Volg het advies van Gateway 2018 op en zorg ervoor dat de gebruikers actief (actiever) betrokken worden (eigenaarschap) en organiseer de vraagkant van de informatievoorziening.",
        RecommendationAddressee::Administration,
    ),
    (
        "Betrek de gebruikers actief bij de verdere ontwikkeling van de I-functie in de organisaties. Vooral de gebruikersbehoeften zijn in samenhang maatgevend. Functioneel beheer vormt de cruciale schakel tussen de ICT-er en de gebruiker.",
        RecommendationAddressee::Administration,
    ),
    (
        "Zorg dat de verantwoordings- en rapportagelijnen helder en eenvoudig zijn. Taken, bevoegdheden en verantwoordelijkheden zijn een samenhangende eenheid; het beroep op \"vertrouwen\" mag de duidelijkheid daarover - ook in financieel opzicht - niet vertroebelen.",
        RecommendationAddressee::Administration,
    ),
    (
        "Zorg ervoor dat betreffende processen en procedures tussen beide gemeenten zoveel mogelijk geharmoniseerd worden zodat de gemeenten meer efficiencywinst kunnen boeken. Zet daar (tijdelijk) een apart programma voor op en zorg voor goede afstemming daarover met de raden.",
        RecommendationAddressee::Administration,
    ),
    (
        "Evalueer de (effecten van) de omschakeling op zaakgericht werken zo spoedig mogelijk en gebruik de uitkomsten voor het zetten van verder stappen op het gebied van de harmonisatie van werkprocessen.",
        RecommendationAddressee::Administration,
    ),
];

const PROPOSAL_TEXT: &str = "# Onderzoeksvoorstel\n\nDe rekenkamercommissies van Bloemendaal en Heemstede doen gezamenlijk onderzoek naar de samenwerking tussen de gemeenten Bloemendaal en Heemstede op het gebied van de automatisering en de informatisering.\n\n## Periode\n\nBegin 2015 tot juni 2019. Uitvoering van maart tot en met augustus 2019.\n\n## Onderzoeksvragen\n\n1. Op welke wijze heeft de ICT-governance invulling gekregen en wat was daarvan het effect op de ICT-samenwerking?\n2. Hoe hebben de organisatievormen van de ICT-samenwerking en de wijze waarop daarin gewerkt wordt bijgedragen aan het resultaat?\n3. Wat zijn de opbrengsten en kosten van de ICT-samenwerking?\n4. Kan de samenwerking worden ontvlochten en zo ja, wat zijn daarvan de gevolgen?\n\n## Uitvoering\n\nRapporteurs: Ir. J.J. Bakker (lid RKC Bloemendaal) en D.J. Schoneveld (Berenschot, namens RKC Heemstede).\n";

const REPORT_TEXT: &str = "# Evaluatie van de samenwerking tussen Bloemendaal en Heemstede op het gebied van de automatisering en informatisering\n\n*Concept onderzoeksrapport (demo).*\n\nDe ambtelijke organisaties weten elkaar inmiddels goed te vinden. Met de outsourcing van de ICT-infrastructuur en het beheer daarvan zijn grote stappen gezet. De informatisering vertoont nog te weinig samenhang en doelgerichtheid. De informatieverstrekking aan de raden over de ICT-samenwerking als geheel bleek weinig samenhangend. De externe benchmark wijst uit dat de gemeenten ruim boven het gemiddelde kostenniveau voor ICT zitten.\n";

const CONCLUSIONS_TEXT: &str = "# Conclusies en aanbevelingen\n\nDe algemene conclusie luidt: de gemeenten zijn goed op weg, maar de bestuurlijke aansturing door de raden en de colleges behoeft veel meer aandacht.\n\nBeide colleges en beide gemeenteraden hebben weinig aandacht besteed aan de kaders waarbinnen de automatisering en de informatisering zich zouden moeten ontwikkelen, en er is weinig sturing geweest op de kosten en opbrengsten.\n";

struct DemoUser {
    email: &'static str,
    name: &'static str,
    grants: &'static [(Role, Body)],
}

#[derive(Clone, Copy)]
enum Body {
    Global,
    CommissionOf(usize),
    Municipality(usize),
}

const MUNICIPALITIES: [&str; 2] = ["Bloemendaal", "Heemstede"];
const COMMISSIONS: [&str; 2] = [
    "Rekenkamercommissie Bloemendaal",
    "Rekenkamercommissie Heemstede",
];

const USERS: &[DemoUser] = &[
    DemoUser {
        email: "admin@rkflow.demo",
        name: "Beheerder rkflow",
        grants: &[(Role::Admin, Body::Global)],
    },
    DemoUser {
        email: "glashouwer@rkc-bloemendaal.demo",
        name: "B.J. Glashouwer RE RI CISA",
        grants: &[(Role::Chair, Body::CommissionOf(0))],
    },
    DemoUser {
        email: "vaneijsden@rkc-heemstede.demo",
        name: "J.K.M. van Eijsden",
        grants: &[(Role::Chair, Body::CommissionOf(1))],
    },
    DemoUser {
        email: "bakker@rkc-bloemendaal.demo",
        name: "Ir. J.J. Bakker",
        grants: &[(Role::Member, Body::CommissionOf(0))],
    },
    DemoUser {
        email: "lid@rkc-heemstede.demo",
        name: "Lid RKC Heemstede (demo)",
        grants: &[(Role::Member, Body::CommissionOf(1))],
    },
    DemoUser {
        email: "secretaris@rkc-bloemendaal.demo",
        name: "Secretaris RKC Bloemendaal (demo)",
        grants: &[(Role::Secretary, Body::CommissionOf(0))],
    },
    DemoUser {
        email: "secretaris@rkc-heemstede.demo",
        name: "Secretaris RKC Heemstede (demo)",
        grants: &[(Role::Secretary, Body::CommissionOf(1))],
    },
    DemoUser {
        email: "schoneveld@berenschot.demo",
        name: "D.J. Schoneveld MSc PCP (Berenschot)",
        grants: &[],
    },
    DemoUser {
        email: "college@bloemendaal.demo",
        name: "Contactpersoon college Bloemendaal (demo)",
        grants: &[(Role::CollegeContact, Body::Municipality(0))],
    },
    DemoUser {
        email: "college@heemstede.demo",
        name: "Contactpersoon college Heemstede (demo)",
        grants: &[(Role::CollegeContact, Body::Municipality(1))],
    },
    DemoUser {
        email: "ambtelijk@bloemendaal.demo",
        name: "Ambtelijk contactpersoon Bloemendaal (demo)",
        grants: &[(Role::CivilServiceContact, Body::Municipality(0))],
    },
    DemoUser {
        email: "ambtelijk@heemstede.demo",
        name: "Ambtelijk contactpersoon Heemstede (demo)",
        grants: &[(Role::CivilServiceContact, Body::Municipality(1))],
    },
    DemoUser {
        email: "griffier@bloemendaal.demo",
        name: "Griffier Bloemendaal (demo)",
        grants: &[(Role::Griffier, Body::Municipality(0))],
    },
    DemoUser {
        email: "griffier@heemstede.demo",
        name: "Griffier Heemstede (demo)",
        grants: &[(Role::Griffier, Body::Municipality(1))],
    },
    DemoUser {
        email: "raadslid@bloemendaal.demo",
        name: "Raadslid Bloemendaal (demo)",
        grants: &[(Role::CouncilMember, Body::Municipality(0))],
    },
    DemoUser {
        email: "raadslid@heemstede.demo",
        name: "Raadslid Heemstede (demo)",
        grants: &[(Role::CouncilMember, Body::Municipality(1))],
    },
];

/// Seeds the demo into an empty database; returns the logins. Does nothing (and returns no
/// logins) when the database already holds an organisation.
pub async fn seed(api: &ApiState) -> anyhow::Result<Vec<(String, String)>> {
    let db = &api.db;
    if !organisation::municipalities(&db.conn).await?.is_empty() {
        tracing::info!("the database is not empty: the demo is not seeded again");
        return Ok(Vec::new());
    }
    let system = Origin {
        actor: None,
        client: Some("demo-seed".into()),
    };
    let now = api.clock.now();
    let mut municipalities = Vec::new();
    for name in MUNICIPALITIES {
        municipalities.push(organisation::create_municipality(db, &system, now, name).await?);
    }
    let mut commissions = Vec::new();
    for (index, name) in COMMISSIONS.iter().enumerate() {
        commissions.push(
            organisation::create_commission(db, &system, now, name, &[municipalities[index].id])
                .await?
                .commission,
        );
    }
    let mut actors = Vec::new();
    let mut logins = Vec::new();
    for demo_user in USERS {
        let hash = api
            .passwords
            .hash(DEMO_PASSWORD)
            .await
            .map_err(|e| anyhow!("hashing failed: {}", e.message))?;
        let created =
            accounts::create_user(db, &system, now, demo_user.email, demo_user.name, &hash).await?;
        let mut grants = Vec::new();
        for (role, body) in demo_user.grants {
            let scope = match body {
                Body::Global => Scope::Global,
                Body::CommissionOf(i) => Scope::Commission(commissions[*i].id.into()),
                Body::Municipality(i) => Scope::Municipality(municipalities[*i].id.into()),
            };
            let grant = Grant { role: *role, scope };
            accounts::grant_role(db, &system, now, created.id, grant).await?;
            grants.push(grant);
        }
        actors.push((created.id, Actor::user(created.id.into(), grants)));
        logins.push((demo_user.email.to_string(), DEMO_PASSWORD.to_string()));
    }
    let actor = |email: &str| -> (Origin, Actor) {
        let index = USERS
            .iter()
            .position(|u| u.email == email)
            .expect("demo user");
        let (id, actor) = &actors[index];
        (
            Origin {
                actor: Some(*id),
                client: Some("demo-seed".into()),
            },
            actor.clone(),
        )
    };
    seed_investigation(api, &commissions, &actor)
        .await
        .context("seeding the demo investigation")?;
    Ok(logins)
}

async fn seed_investigation(
    api: &ApiState,
    commissions: &[rkflow_store::entity::commission::Model],
    actor: &dyn Fn(&str) -> (Origin, Actor),
) -> anyhow::Result<()> {
    let db = &api.db;
    let now = api.clock.now();
    let (bakker_origin, bakker) = actor("bakker@rkc-bloemendaal.demo");
    let id = investigations::propose(
        db,
        &bakker_origin,
        now,
        &bakker,
        investigations::NewInvestigation {
            commission_ids: vec![commissions[0].id, commissions[1].id],
            title: TITLE.to_string(),
            research_questions: RESEARCH_QUESTIONS.iter().map(|q| q.to_string()).collect(),
            scope_start: chrono::NaiveDate::from_ymd_opt(2015, 1, 1),
            scope_end: chrono::NaiveDate::from_ymd_opt(2019, 6, 30),
        },
    )
    .await?
    .investigation
    .id();
    let run = |who: &'static str, command: Command, body: Option<VersionBody>| {
        let (origin, actor) = actor(who);
        async move {
            investigations::execute(db, &origin, api.clock.now(), &actor, id, command, body)
                .await
                .map(|_| ())
                .map_err(|err| anyhow!("demo command failed: {err}"))
        }
    };
    let user_id = |who: &str| actor(who).0.actor.expect("demo user id");
    run(
        "glashouwer@rkc-bloemendaal.demo",
        Command::AssignRapporteur {
            user: UserId(user_id("bakker@rkc-bloemendaal.demo")),
            commission: CommissionId(commissions[0].id),
        },
        None,
    )
    .await?;
    run(
        "vaneijsden@rkc-heemstede.demo",
        Command::AssignRapporteur {
            user: UserId(user_id("schoneveld@berenschot.demo")),
            commission: CommissionId(commissions[1].id),
        },
        None,
    )
    .await?;
    let markdown = |kind: DocumentKind, text: &str| -> anyhow::Result<(Command, VersionBody)> {
        let meta = content::markdown(text).map_err(|e| anyhow!("{e}"))?;
        Ok((
            Command::SubmitVersion {
                version: NewVersion {
                    kind,
                    title: None,
                    base_version: None,
                    content: meta,
                    note: None,
                    municipality: None,
                },
                new_document: DocumentId(Uuid::now_v7()),
                new_version: VersionId(Uuid::now_v7()),
            },
            VersionBody {
                bytes: text.as_bytes().to_vec(),
                file_name: None,
            },
        ))
    };
    let (command, body) = markdown(DocumentKind::Proposal, PROPOSAL_TEXT)?;
    run("bakker@rkc-bloemendaal.demo", command, Some(body)).await?;
    for chair in [
        "glashouwer@rkc-bloemendaal.demo",
        "vaneijsden@rkc-heemstede.demo",
    ] {
        run(
            chair,
            Command::Approve {
                comment: None,
                phase: None,
            },
            None,
        )
        .await?;
    }
    let (command, body) = markdown(DocumentKind::ResearchReport, REPORT_TEXT)?;
    run("schoneveld@berenschot.demo", command, Some(body)).await?;
    let (command, body) = markdown(DocumentKind::Conclusions, CONCLUSIONS_TEXT)?;
    run("bakker@rkc-bloemendaal.demo", command, Some(body)).await?;
    for (text, addressee) in RECOMMENDATIONS {
        run(
            "bakker@rkc-bloemendaal.demo",
            Command::AddRecommendation {
                id: RecommendationId(Uuid::now_v7()),
                text: text.to_string(),
                addressee,
            },
            None,
        )
        .await?;
    }
    run(
        "glashouwer@rkc-bloemendaal.demo",
        Command::SetRebuttalTerms {
            terms: RebuttalTerms {
                mode: ResponseMode::Joint,
                due_date: None,
            },
        },
        None,
    )
    .await?;
    Ok(())
}
