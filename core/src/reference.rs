//! Reference data the records are checked against: sectors, checklists and the rule set.
//!
//! The product ships a built-in set; checklists are versioned so that a record keeps meaning what
//! it meant when it was captured, whatever later versions change.

use crate::classify::RuleSet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sector {
    pub code: String,
    pub label_fr: String,
    pub label_en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub code: String,
    pub label_fr: String,
    pub label_en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    pub id: String,
    pub version: u32,
    pub items: Vec<ChecklistItem>,
}

impl Checklist {
    pub fn has_item(&self, code: &str) -> bool {
        self.items.iter().any(|i| i.code == code)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceData {
    sectors: Vec<Sector>,
    checklists: Vec<Checklist>,
    rule_set: RuleSet,
}

impl ReferenceData {
    pub fn new(sectors: Vec<Sector>, checklists: Vec<Checklist>, rule_set: RuleSet) -> Self {
        ReferenceData {
            sectors,
            checklists,
            rule_set,
        }
    }

    /// The reference data that ships with the product.
    pub fn builtin() -> ReferenceData {
        let sectors = [
            ("cocoa", "Cacao", "Cocoa"),
            ("mining", "Mines et carrières", "Mining and quarrying"),
            ("fishing", "Pêche", "Fishing"),
            ("domestic_work", "Travail domestique", "Domestic work"),
            ("construction", "Construction", "Construction"),
            ("brick_kiln", "Briqueterie", "Brick kilns"),
            ("textile", "Textile", "Textile"),
            ("street_vending", "Vente ambulante", "Street vending"),
            ("rubber", "Hévéa", "Rubber"),
            ("cotton", "Coton", "Cotton"),
            ("other", "Autre", "Other"),
        ]
        .iter()
        .map(|(code, fr, en)| Sector {
            code: (*code).into(),
            label_fr: (*fr).into(),
            label_en: (*en).into(),
        })
        .collect();

        let items = [
            (
                "LI01",
                "Registre du personnel tenu à jour",
                "Staff register kept up to date",
            ),
            (
                "LI02",
                "Âge des travailleurs vérifié à l'embauche",
                "Workers' ages checked at hiring",
            ),
            (
                "LI03",
                "Contrats écrits remis aux travailleurs",
                "Written contracts given to workers",
            ),
            (
                "LI04",
                "Salaires payés à temps et en entier",
                "Wages paid on time and in full",
            ),
            ("LI05", "Bulletins de paie remis", "Pay slips issued"),
            (
                "LI06",
                "Durée du travail conforme",
                "Working hours within the law",
            ),
            (
                "LI07",
                "Repos hebdomadaire respecté",
                "Weekly rest respected",
            ),
            (
                "LI08",
                "Heures supplémentaires volontaires et payées",
                "Overtime voluntary and paid",
            ),
            (
                "LI09",
                "Pièces d'identité conservées par les travailleurs",
                "Workers keep their identity papers",
            ),
            (
                "LI10",
                "Liberté de quitter l'emploi",
                "Workers free to leave",
            ),
            (
                "LI11",
                "Aucune dette envers l'employeur",
                "No debt owed to the employer",
            ),
            (
                "LI12",
                "Équipements de protection fournis",
                "Protective equipment provided",
            ),
            (
                "LI13",
                "Produits dangereux stockés en sécurité",
                "Hazardous substances stored safely",
            ),
            (
                "LI14",
                "Aucun enfant affecté à des travaux dangereux",
                "No child assigned to hazardous work",
            ),
            (
                "LI15",
                "Eau potable et sanitaires disponibles",
                "Drinking water and toilets available",
            ),
            (
                "LI16",
                "Premiers secours disponibles",
                "First aid available",
            ),
            (
                "LI17",
                "Logement décent s'il est fourni",
                "Decent housing where provided",
            ),
            (
                "LI18",
                "Aucune violence ou menace signalée",
                "No violence or threats reported",
            ),
            (
                "LI19",
                "Représentation des travailleurs possible",
                "Workers can be represented",
            ),
            (
                "LI20",
                "Affichage des droits des travailleurs",
                "Workers' rights displayed",
            ),
        ]
        .iter()
        .map(|(code, fr, en)| ChecklistItem {
            code: (*code).into(),
            label_fr: (*fr).into(),
            label_en: (*en).into(),
        })
        .collect();

        ReferenceData {
            sectors,
            checklists: vec![Checklist {
                id: "labour-inspection".into(),
                version: 1,
                items,
            }],
            rule_set: RuleSet::ilo_default(),
        }
    }

    pub fn has_sector(&self, code: &str) -> bool {
        self.sectors.iter().any(|s| s.code == code)
    }

    pub fn sectors(&self) -> &[Sector] {
        &self.sectors
    }

    pub fn checklist(&self, id: &str, version: u32) -> Option<&Checklist> {
        self.checklists
            .iter()
            .find(|c| c.id == id && c.version == version)
    }

    pub fn checklists(&self) -> &[Checklist] {
        &self.checklists
    }

    pub fn rule_set(&self) -> &RuleSet {
        &self.rule_set
    }
}
