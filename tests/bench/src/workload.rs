//! The reference workload W1, "a district's season" (shared/WORKLOAD.md), generated
//! deterministically from a seed.
//!
//! At scale 1: one region of 4 districts of 10 communities, 50 field users, 2,000 workplaces,
//! 10,000 visits over 2025 and 3,000 child cases, each identified on one of the visits (a past
//! year: the hub refuses a visit or a follow-up dated after its today). The scale
//! multiplies workplaces, visits and child cases; the areas and the users stay as they are, since
//! they describe the organisation rather than its activity.
//!
//! Records come out in the order a field team would write them: users, workplaces, then visits in
//! the order they were made, each followed by the child cases identified on it. Records are made
//! as they are taken, so that a large workload never sits in memory (and the peak memory measured
//! is the store's).

use chrono::{DateTime, Days, FixedOffset, Months, NaiveDate, TimeDelta};
use rand::seq::{IteratorRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, VecDeque};
use uuid::Uuid;
use vigie_core::{
    AgeBasis, Answer, Area, CaseStatus, ChecklistAnswers, ChildCase, FollowUp, FollowUpSituation,
    ForcedLabourIndicator, Formality, GeoPoint, ReferenceData, Referral, Role, SchoolStatus,
    ServiceKind, Sex, User, Version, Visit, VisitAction, VisitKind, VisitStatus, Workforce,
    Workplace,
};

pub const DEFAULT_SEED: u64 = 42;

pub(crate) const COUNTRY: &str = "CI";

/// The sample area tree the repository ships (`reference/areas-CI.json`: the workload's region,
/// its 4 districts and 40 communities). A hub serves a country's records once its area tree is
/// published.
pub(crate) fn sample_areas() -> vigie_core::ReferenceFile {
    vigie_core::ReferenceFile::parse(include_str!("../../../reference/areas-CI.json"))
        .expect("the sample area tree parses")
}
pub(crate) const REGION: &str = "CI-R1";
pub(crate) const DISTRICTS: usize = 4;
pub(crate) const COMMUNITIES_PER_DISTRICT: usize = 10;
const MONITORS: usize = 30;
const INSPECTORS: usize = 15;
const SUPERVISORS: usize = 5;
const YEAR: i32 = 2025;

pub(crate) const CHECKLIST: &str = "labour-inspection";
pub(crate) const CHECKLIST_VERSION: u32 = 1;

pub(crate) const SECTORS: [(&str, &str); 10] = [
    ("cocoa", "Plantation"),
    ("mining", "Site minier"),
    ("fishing", "Campement de pêche"),
    ("domestic_work", "Ménage"),
    ("construction", "Chantier"),
    ("brick_kiln", "Briqueterie"),
    ("textile", "Atelier de couture"),
    ("street_vending", "Étal"),
    ("rubber", "Plantation d'hévéa"),
    ("cotton", "Champ de coton"),
];

/// What a child does in each sector, in the order of `SECTORS`.
pub(crate) const ACTIVITIES: [&str; 10] = [
    "récolte et écabossage du cacao",
    "lavage et tamisage du minerai",
    "tri et fumage du poisson",
    "travaux ménagers et garde d'enfants",
    "transport de briques et de sable",
    "moulage et cuisson des briques",
    "couture et teinture des pagnes",
    "vente ambulante au marché",
    "saignée des hévéas et ramassage du latex",
    "récolte et portage du coton",
];

pub(crate) const TASKS: [&str; 8] = [
    "désherbage",
    "portage",
    "transport d'eau",
    "récolte",
    "vente",
    "cuisine",
    "épandage",
    "gardiennage",
];

pub(crate) const FIRST_NAMES: [&str; 30] = [
    "Adjoa",
    "Akissi",
    "Amenan",
    "Affoué",
    "Ahou",
    "Aya",
    "Awa",
    "Mariam",
    "Fatou",
    "Aminata",
    "Éloïse",
    "Bintou",
    "Rokia",
    "Clémence",
    "Adèle",
    "Kouassi",
    "Kouadio",
    "Koffi",
    "Yao",
    "Konan",
    "Kouamé",
    "N'Dri",
    "Séverin",
    "Hervé",
    "Jérôme",
    "Adama",
    "Issouf",
    "Moussa",
    "Brahima",
    "Chérif",
];

pub(crate) const FAMILY_NAMES: [&str; 24] = [
    "Kouamé",
    "N'Guessan",
    "Traoré",
    "Koné",
    "Aké",
    "Yao",
    "Konan",
    "Ouattara",
    "Coulibaly",
    "Bamba",
    "Diabaté",
    "Kouassi",
    "Yéo",
    "Soro",
    "Touré",
    "Dosso",
    "Fofana",
    "Assié",
    "Ehui",
    "Brou",
    "Amani",
    "Tanoh",
    "Djè",
    "Zézé",
];

pub(crate) const FINDINGS: [&str; 12] = [
    "Enfants aperçus près des séchoirs pendant les heures de classe.",
    "Le gérant affirme que les jeunes travailleurs ont tous plus de dix-huit ans.",
    "Aucun registre du personnel n'a pu être présenté.",
    "Équipements de protection insuffisants pour l'épandage des pesticides.",
    "Plusieurs travailleurs déclarent ne pas être payés depuis deux mois.",
    "Le chef de village a été informé de la visite et a coopéré.",
    "Des adolescents portent des charges lourdes sur de longues distances.",
    "L'école primaire la plus proche se trouve à cinq kilomètres.",
    "Les conditions d'hébergement des manœuvres sont précaires.",
    "Une sensibilisation des parents a été menée à l'issue de la visite.",
    "Des machettes sont utilisées sans surveillance par des enfants.",
    "Le propriétaire s'engage à régulariser les contrats d'ici la fin du mois.",
];

const INDICATOR_NOTES: [&str; 5] = [
    "Signalé par deux travailleurs.",
    "Constaté lors de l'entretien.",
    "Déclaré par le chef d'équipe.",
    "À vérifier à la prochaine visite.",
    "Observé sur le site.",
];

const BUYERS: [&str; 5] = [
    "Coopérative agricole de Soubré",
    "SARL Cacao Export",
    "Grossiste du marché d'Adjamé",
    "Usine de traitement de Bouaflé",
    "Négociant de Daloa",
];

pub(crate) const PROVIDERS: [&str; 6] = [
    "Centre social de Soubré",
    "École primaire publique de Méagui",
    "Centre de santé de Daloa",
    "ONG Enfance Solidaire",
    "Brigade de protection des mineurs",
    "Centre de formation professionnelle de Gagnoa",
];

const REFERRAL_OUTCOMES: [&str; 4] = [
    "",
    "Inscription à l'école confirmée.",
    "Prise en charge médicale effectuée.",
    "En attente de réponse du service.",
];

pub(crate) const FOLLOW_UP_NOTES: [&str; 5] = [
    "Enfant retrouvé à l'école.",
    "Toujours présent sur le site les week-ends.",
    "Famille déménagée, enfant introuvable.",
    "Le tuteur a reçu un appui pour les frais de scolarité.",
    "Situation inchangée, nouvelle visite prévue.",
];

/// The number of records of each kind at a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub users: usize,
    pub workplaces: usize,
    pub visits: usize,
    pub child_cases: usize,
}

impl Sizes {
    pub fn at(scale: f64) -> Sizes {
        let scaled = |n: f64| ((n * scale).round() as usize).max(1);
        Sizes {
            users: MONITORS + INSPECTORS + SUPERVISORS,
            workplaces: scaled(2_000.0),
            visits: scaled(10_000.0),
            child_cases: scaled(3_000.0),
        }
    }

    pub fn total(&self) -> usize {
        self.users + self.workplaces + self.visits + self.child_cases
    }
}

/// The codes of the workload's districts.
pub fn districts() -> Vec<String> {
    (1..=DISTRICTS).map(|d| format!("{REGION}-D{d}")).collect()
}

/// One generated record, of any kind.
#[derive(Debug, Clone)]
pub enum AnyRecord {
    User(User),
    Workplace(Workplace),
    Visit(Visit),
    ChildCase(ChildCase),
}

/// A community: its area and the centre its workplaces lie around.
struct Community {
    area: Area,
    latitude: f64,
    longitude: f64,
    /// Inspectors (of its district) and monitors (assigned to it), who may visit it.
    inspectors: Vec<Uuid>,
    monitors: Vec<Uuid>,
}

/// What a visit needs to know of the workplace it is made at.
struct Site {
    workplace: Uuid,
    point: GeoPoint,
    /// Index in `Workload::communities`.
    community: usize,
}

/// The generator: an iterator over the whole workload, in writing order.
pub struct Workload {
    rng: ChaCha8Rng,
    sizes: Sizes,
    communities: Vec<Community>,
    sites: Vec<Site>,
    /// Records made but not handed out yet: the users, then the child cases of the last visit.
    pending: VecDeque<AnyRecord>,
    next_workplace: usize,
    /// Seconds from the start of the year at which each visit starts, in order.
    visit_starts: Vec<u32>,
    /// How many child cases are identified on each visit.
    cases_per_visit: Vec<u8>,
    next_visit: usize,
    next_case: usize,
    hazard_codes: Vec<String>,
    checklist_items: Vec<String>,
}

/// A reproducible id of the same form as the store's own (UUIDv7), stamped with the time the
/// record was made: ids then sort by creation time as they do in the field, which matters to the
/// store's index on ids.
fn id_at(rng: &mut ChaCha8Rng, at: DateTime<FixedOffset>) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &rng.r#gen())
        .into_uuid()
}

fn year_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(YEAR, 1, 1).expect("valid date")
}

/// A time in the year, at the offset used in Côte d'Ivoire (UTC+0 all year).
fn time_in_year(seconds: u32) -> DateTime<FixedOffset> {
    let utc = FixedOffset::east_opt(0).expect("valid offset");
    (year_start().and_hms_opt(0, 0, 0).expect("valid time") + TimeDelta::seconds(seconds.into()))
        .and_local_timezone(utc)
        .single()
        .expect("a fixed offset has no gaps")
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).expect("non-empty list")
}

fn full_name(rng: &mut ChaCha8Rng) -> String {
    format!("{} {}", pick(rng, &FIRST_NAMES), pick(rng, &FAMILY_NAMES))
}

/// Splits `total` into `parts` random non-negative parts.
fn split(rng: &mut ChaCha8Rng, total: u32, parts: usize) -> Vec<u32> {
    let mut cuts: Vec<u32> = (1..parts).map(|_| rng.gen_range(0..=total)).collect();
    cuts.push(0);
    cuts.push(total);
    cuts.sort_unstable();
    cuts.windows(2).map(|w| w[1] - w[0]).collect()
}

impl Workload {
    /// The workload for a seed at a scale (1.0 = the sizes of shared/WORKLOAD.md).
    pub fn new(seed: u64, scale: f64) -> Workload {
        assert!(scale > 0.0 && scale.is_finite(), "scale must be positive");
        let reference = ReferenceData::builtin();
        let checklist_items = reference
            .checklist(CHECKLIST, CHECKLIST_VERSION)
            .expect("the built-in reference data has the inspection checklist")
            .items
            .iter()
            .map(|i| i.code.clone())
            .collect();
        let hazard_codes = reference
            .rule_set()
            .thresholds
            .hazardous_work
            .iter()
            .map(|h| h.code.clone())
            .collect();
        let mut w = Workload {
            rng: ChaCha8Rng::seed_from_u64(seed),
            sizes: Sizes::at(scale),
            communities: Vec::new(),
            sites: Vec::new(),
            pending: VecDeque::new(),
            next_workplace: 0,
            visit_starts: Vec::new(),
            cases_per_visit: Vec::new(),
            next_visit: 0,
            next_case: 0,
            hazard_codes,
            checklist_items,
        };
        w.make_communities();
        w.make_users();
        w.place_workplaces();
        w.plan_visits();
        w
    }

    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    fn make_communities(&mut self) {
        for district in districts() {
            for c in 1..=COMMUNITIES_PER_DISTRICT {
                let community = format!("{district}-C{c:02}");
                self.communities.push(Community {
                    area: Area::new(COUNTRY, REGION, &district, &community),
                    latitude: self.rng.gen_range(5.3..9.7),
                    longitude: self.rng.gen_range(-7.7..-3.3),
                    inspectors: Vec::new(),
                    monitors: Vec::new(),
                });
            }
        }
    }

    /// 30 monitors with one community each, the first 10 with a second one, so that every
    /// community has a monitor; 15 inspectors spread over the districts; 5 supervisors.
    fn make_users(&mut self) {
        let created = time_in_year(0);
        let mut order: Vec<usize> = (0..self.communities.len()).collect();
        order.shuffle(&mut self.rng);
        let extra = order.len() - MONITORS;
        for m in 0..MONITORS {
            let mut assigned = vec![order[m]];
            if m < extra {
                assigned.push(order[MONITORS + m]);
            }
            let codes: Vec<&str> = assigned
                .iter()
                .map(|&c| self.communities[c].area.community.as_str())
                .collect();
            let mut user = User::new(&full_name(&mut self.rng), Role::CommunityMonitor, &codes);
            user.id = id_at(&mut self.rng, created);
            for &c in &assigned {
                self.communities[c].monitors.push(user.id);
            }
            self.pending.push_back(AnyRecord::User(user));
        }
        for i in 0..INSPECTORS {
            let district = format!("{REGION}-D{}", i % DISTRICTS + 1);
            let mut user = User::new(&full_name(&mut self.rng), Role::Inspector, &[&district]);
            user.id = id_at(&mut self.rng, created);
            for c in self
                .communities
                .iter_mut()
                .filter(|c| c.area.district == district)
            {
                c.inspectors.push(user.id);
            }
            self.pending.push_back(AnyRecord::User(user));
        }
        for _ in 0..SUPERVISORS {
            let mut user = User::new(&full_name(&mut self.rng), Role::Supervisor, &[REGION]);
            user.id = id_at(&mut self.rng, created);
            self.pending.push_back(AnyRecord::User(user));
        }
    }

    /// Places the workplaces: visits need to know where each one is before any is handed out.
    fn place_workplaces(&mut self) {
        let created = time_in_year(0);
        for _ in 0..self.sizes.workplaces {
            let rng = &mut self.rng;
            let c = rng.gen_range(0..self.communities.len());
            let community = &self.communities[c];
            let point = GeoPoint {
                latitude: (community.latitude + rng.gen_range(-0.25..0.25)).clamp(5.0, 10.0),
                longitude: (community.longitude + rng.gen_range(-0.25..0.25)).clamp(-8.0, -3.0),
                accuracy_m: Some(rng.gen_range(3.0..30.0)),
            };
            self.sites.push(Site {
                workplace: id_at(rng, created),
                point,
                community: c,
            });
        }
    }

    fn make_workplace(&mut self, index: usize) -> Workplace {
        let rng = &mut self.rng;
        let site = &self.sites[index];
        let area = &self.communities[site.community].area;
        let (sector, label) = *SECTORS.choose(rng).expect("non-empty list");
        let formality = if rng.gen_bool(0.3) {
            Formality::Formal
        } else {
            Formality::Informal
        };
        let name = format!("{label} {}", pick(rng, &FAMILY_NAMES));
        let mut w = Workplace::new(&name, sector, formality, area.clone());
        w.id = site.workplace;
        w.location.point = Some(site.point);
        w.owner_name = full_name(rng);
        w.owner_contact = format!(
            "+225 07 {:02} {:02} {:02} {:02}",
            rng.gen_range(0..100),
            rng.gen_range(0..100),
            rng.gen_range(0..100),
            rng.gen_range(0..100)
        );
        let buyers = rng.gen_range(0..=2);
        w.buyers = BUYERS
            .iter()
            .choose_multiple(rng, buyers)
            .into_iter()
            .map(|b| b.to_string())
            .collect();
        if rng.gen_bool(0.3) {
            w.notes = pick(rng, &FINDINGS).to_string();
        }
        w
    }

    /// Draws when each visit starts (working hours, any day of the year) and on which visits
    /// the child cases are identified.
    fn plan_visits(&mut self) {
        let rng = &mut self.rng;
        self.visit_starts = (0..self.sizes.visits)
            .map(|_| {
                let day: u32 = rng.gen_range(0..365);
                let minute: u32 = rng.gen_range(7 * 60..16 * 60);
                day * 86_400 + minute * 60
            })
            .collect();
        self.visit_starts.sort_unstable();
        self.cases_per_visit = vec![0; self.sizes.visits];
        for _ in 0..self.sizes.child_cases {
            let v = rng.gen_range(0..self.sizes.visits);
            self.cases_per_visit[v] = self.cases_per_visit[v].saturating_add(1);
        }
    }

    fn make_visit(&mut self, index: usize) -> Visit {
        let started_at = time_in_year(self.visit_starts[index]);
        let rng = &mut self.rng;
        let site = &self.sites[rng.gen_range(0..self.sites.len())];
        let community = &self.communities[site.community];
        let kind = match rng.gen_range(0..100) {
            0..40 => VisitKind::LabourInspection,
            40..85 => VisitKind::CommunityMonitoring,
            _ => VisitKind::FollowUp,
        };
        let visitors: Vec<Uuid> = match kind {
            VisitKind::LabourInspection => community.inspectors.clone(),
            VisitKind::CommunityMonitoring => community.monitors.clone(),
            VisitKind::FollowUp => [&community.inspectors[..], &community.monitors[..]].concat(),
        };
        let visitor_id = *visitors.choose(rng).expect("every community has visitors");

        let total = rng.gen_range(0..=200);
        let children = (f64::from(total) * rng.gen_range(0.0..0.3)) as u32;
        let cells = split(rng, children, 6);
        let adults = split(rng, total - children, 2);
        let mut workforce = Workforce::default();
        for (sex, (bands, adults)) in [&mut workforce.female, &mut workforce.male]
            .into_iter()
            .zip(cells.chunks(3).zip(adults))
        {
            sex.under_12 = bands[0] as i32;
            sex.age_12_14 = bands[1] as i32;
            sex.age_15_17 = bands[2] as i32;
            sex.adults = adults as i32;
        }

        let answers = self
            .checklist_items
            .iter()
            .map(|code| {
                let answer = match rng.gen_range(0..10) {
                    0..6 => Answer::Yes,
                    6..9 => Answer::No,
                    _ => Answer::NotApplicable,
                };
                (code.clone(), answer)
            })
            .collect();

        let indicators = rng.gen_range(0..=3);
        let forced_labour = ForcedLabourIndicator::ALL
            .iter()
            .choose_multiple(rng, indicators)
            .into_iter()
            .map(|&i| (i, pick(rng, &INDICATOR_NOTES).to_string()))
            .collect();

        // About 200 characters of notes.
        let mut findings = String::new();
        while findings.chars().count() < 180 {
            if !findings.is_empty() {
                findings.push(' ');
            }
            findings.push_str(pick(rng, &FINDINGS));
        }

        // A warning or an order is an inspector's (`rights::Step::Inspection`).
        let all_actions: &[VisitAction] = if community.inspectors.contains(&visitor_id) {
            &[
                VisitAction::Advice,
                VisitAction::Warning,
                VisitAction::Order,
                VisitAction::Referral,
            ]
        } else {
            &[VisitAction::Advice, VisitAction::Referral]
        };
        let actions = rng.gen_range(0..=2);
        let actions: BTreeSet<VisitAction> = if actions == 0 {
            [VisitAction::None].into()
        } else {
            all_actions
                .iter()
                .copied()
                .choose_multiple(rng, actions)
                .into_iter()
                .collect()
        };

        let follow_up_due = rng
            .gen_bool(0.3)
            .then(|| started_at.date_naive() + Days::new(rng.gen_range(14..=90)));

        Visit {
            id: id_at(rng, started_at),
            version: Version::default(),
            kind,
            workplace_id: site.workplace,
            visitor_id,
            area: community.area.clone(),
            started_at,
            ended_at: Some(started_at + TimeDelta::minutes(rng.gen_range(20..=240))),
            gps: Some(GeoPoint {
                latitude: site.point.latitude + rng.gen_range(-0.001..0.001),
                longitude: site.point.longitude + rng.gen_range(-0.001..0.001),
                accuracy_m: Some(rng.gen_range(3.0..50.0)),
            }),
            workforce,
            checklist: ChecklistAnswers {
                checklist: CHECKLIST.into(),
                version: CHECKLIST_VERSION as i32,
                answers,
            },
            forced_labour,
            findings,
            actions,
            follow_up_due,
            status: VisitStatus::Submitted,
            review_comment: String::new(),
            reviewed_by: None,
            children_identified: BTreeSet::new(),
            captured_with: Default::default(),
            breaches: Vec::new(),
        }
    }

    fn make_child_case(&mut self, visit: &Visit) -> ChildCase {
        self.next_case += 1;
        let rng = &mut self.rng;
        let identified_on = visit.started_at.date_naive();
        let family = pick(rng, &FAMILY_NAMES);
        let name = format!("{} {family}", pick(rng, &FIRST_NAMES));
        let sex = if rng.gen_bool(0.5) {
            Sex::Female
        } else {
            Sex::Male
        };
        let mut case = ChildCase::new(
            &format!("{}-{:06}", visit.area.community, self.next_case),
            &name,
            sex,
            visit.area.clone(),
            identified_on,
            visit.visitor_id,
        );
        case.id = id_at(rng, visit.started_at);

        let born = NaiveDate::from_ymd_opt(rng.gen_range(2008..=2021), 1, 1).expect("valid date")
            + Days::new(rng.gen_range(0..365));
        // A child born early in 2008 may be 18 when identified: such a birth is moved to the
        // first day on which the child is still 17, so that every case is of a child.
        let earliest = identified_on - Months::new(18 * 12) + Days::new(1);
        case.date_of_birth = Some(born.max(earliest));
        case.age_basis = *[
            AgeBasis::BirthCertificate,
            AgeBasis::IdentityDocument,
            AgeBasis::SchoolRecord,
            AgeBasis::DeclaredByGuardian,
            AgeBasis::DeclaredByChild,
            AgeBasis::ObservedByMonitor,
        ]
        .choose(rng)
        .expect("non-empty list");
        case.guardian = format!("{} {family}", pick(rng, &FIRST_NAMES));
        case.household = format!("{}-M{:04}", visit.area.community, rng.gen_range(1..=9999));
        case.workplace_id = Some(visit.workplace_id);
        case.identified_on_visit = Some(visit.id);
        case.school = *[
            SchoolStatus::Attending,
            SchoolStatus::AttendingIrregularly,
            SchoolStatus::DroppedOut,
            SchoolStatus::NeverEnrolled,
            SchoolStatus::Unknown,
        ]
        .choose(rng)
        .expect("non-empty list");
        case.activity = pick(rng, &ACTIVITIES).to_string();
        let tasks = rng.gen_range(1..=2);
        case.tasks = TASKS
            .iter()
            .choose_multiple(rng, tasks)
            .into_iter()
            .map(|t| t.to_string())
            .collect();
        case.hours_per_week = rng.gen_range(0..=60);
        case.night_work = rng.gen_bool(0.1);
        let hazards = rng.gen_range(0..=4);
        case.hazards = self
            .hazard_codes
            .iter()
            .choose_multiple(rng, hazards)
            .into_iter()
            .cloned()
            .collect();

        let services = [
            ServiceKind::Education,
            ServiceKind::Health,
            ServiceKind::SocialProtection,
            ServiceKind::LegalOrPolice,
            ServiceKind::Vocational,
        ];
        for _ in 0..rng.gen_range(0..=3) {
            let date = identified_on + Days::new(rng.gen_range(0..=60));
            let referral = Referral {
                service: *services.choose(rng).expect("non-empty list"),
                provider: pick(rng, &PROVIDERS).to_string(),
                date,
                outcome: pick(rng, &REFERRAL_OUTCOMES).to_string(),
            };
            case.referrals
                .insert(id_at(rng, visit.started_at), referral);
        }
        case.status = match (case.referrals.is_empty(), rng.gen_bool(0.5)) {
            (true, _) => CaseStatus::Identified,
            (false, true) => CaseStatus::Referred,
            (false, false) => CaseStatus::ReceivingServices,
        };

        let situations = [
            FollowUpSituation::StillWorking,
            FollowUpSituation::AtRisk,
            FollowUpSituation::Withdrawn,
            FollowUpSituation::InSchool,
            FollowUpSituation::NotFound,
        ];
        let mut date = identified_on;
        // No follow-up is planned once the child is of age.
        let adult = case.reaches_age_on(18);
        for _ in 0..rng.gen_range(0..=5) {
            date = date + Days::new(rng.gen_range(15..=60));
            let follow_up = FollowUp {
                date,
                situation: *situations.choose(rng).expect("non-empty list"),
                notes: pick(rng, &FOLLOW_UP_NOTES).to_string(),
                next_due: Some(date + Days::new(rng.gen_range(30..=90)))
                    .filter(|next| adult.is_none_or(|adult| *next < adult)),
            };
            case.followups
                .insert(id_at(rng, visit.started_at), follow_up);
        }
        case
    }
}

impl Iterator for Workload {
    type Item = AnyRecord;

    fn next(&mut self) -> Option<AnyRecord> {
        if let Some(record) = self.pending.pop_front() {
            return Some(record);
        }
        if self.next_workplace < self.sites.len() {
            let index = self.next_workplace;
            self.next_workplace += 1;
            return Some(AnyRecord::Workplace(self.make_workplace(index)));
        }
        if self.next_visit == self.sizes.visits {
            return None;
        }
        let index = self.next_visit;
        self.next_visit += 1;
        let mut visit = self.make_visit(index);
        for _ in 0..self.cases_per_visit[index] {
            let case = self.make_child_case(&visit);
            visit.children_identified.insert(case.id);
            self.pending.push_back(AnyRecord::ChildCase(case));
        }
        Some(AnyRecord::Visit(visit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use vigie_core::Record;

    const SCALE: f64 = 0.05;

    fn valid<R: Record>(record: &R, reference: &ReferenceData) {
        let mut record = record.clone();
        record.derive(reference);
        if let Err(e) = record.validate(reference) {
            panic!("{} {} is invalid: {e}", R::KIND, record.id());
        }
    }

    #[test]
    fn same_seed_same_records_other_seed_other_records() {
        let debug = |seed| -> Vec<String> {
            Workload::new(seed, SCALE)
                .map(|r| format!("{r:?}"))
                .collect()
        };
        assert_eq!(debug(DEFAULT_SEED), debug(DEFAULT_SEED));
        assert_ne!(debug(DEFAULT_SEED), debug(DEFAULT_SEED + 1));
    }

    #[test]
    fn records_are_valid_and_consistent() {
        let reference = ReferenceData::builtin();
        let workload = Workload::new(DEFAULT_SEED, SCALE);
        let sizes = workload.sizes();
        let (mut users, mut workplaces, mut cases) = (0, 0, 0);
        // Child cases named by each visit, and the visits' start times, to check each case against
        // the visit it was identified on.
        let mut visits: HashMap<Uuid, (BTreeSet<Uuid>, DateTime<FixedOffset>)> = HashMap::new();
        let mut last_start = None;
        for record in workload {
            match record {
                AnyRecord::User(u) => {
                    valid(&u, &reference);
                    users += 1;
                }
                AnyRecord::Workplace(w) => {
                    valid(&w, &reference);
                    workplaces += 1;
                }
                AnyRecord::Visit(v) => {
                    valid(&v, &reference);
                    assert_eq!(v.checklist.answers.len(), 20);
                    assert!(v.forced_labour.len() <= 3);
                    assert!(last_start <= Some(v.started_at), "visits come in order");
                    last_start = Some(v.started_at);
                    visits.insert(v.id, (v.children_identified.clone(), v.started_at));
                }
                AnyRecord::ChildCase(c) => {
                    valid(&c, &reference);
                    let visit = c.identified_on_visit.expect("identified on a visit");
                    let (children, started) = &visits[&visit];
                    assert!(children.contains(&c.id));
                    assert_eq!(c.identified_on, started.date_naive());
                    assert!((0..=17).contains(&c.age_on(c.identified_on).expect("age")));
                    assert!(c.hazards.len() <= 4 && c.referrals.len() <= 3);
                    assert!(c.followups.len() <= 5);
                    cases += 1;
                }
            }
        }
        assert_eq!(users, sizes.users);
        assert_eq!(workplaces, sizes.workplaces);
        assert_eq!(visits.len(), sizes.visits);
        assert_eq!(cases, sizes.child_cases);
        let named: usize = visits.values().map(|(children, _)| children.len()).sum();
        assert_eq!(named, cases);
    }
}
